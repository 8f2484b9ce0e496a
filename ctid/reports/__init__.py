"""Reports: the KPI engine behind `ctid report`, `GET /api/reports/{name}`, the panel's Reports view
and the live KPIs pushed to supervisors (docs/reports.md)."""
