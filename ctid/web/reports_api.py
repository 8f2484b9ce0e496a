"""``GET /api/reports`` (the catalogue) and ``GET /api/reports/{name}`` (a report as JSON, CSV, XLSX,
HTML or text): supervisors and admins only; bad parameters are 400 with a stable error id."""

from __future__ import annotations

from quart import Response, jsonify, request

from ctid.errors import ForbiddenError
from ctid.reports.catalogue import CATALOGUE
from ctid.reports.render import CONTENT_TYPES
from ctid.web.openapi import document

_QUERY = {
    "from": {"type": "string", "format": "date", "description": "first local date (default: today)"},
    "to": {"type": "string", "format": "date", "description": "last local date, inclusive (default: from)"},
    "group_by": {"type": "string", "description": "grouping key; each report lists its own (GET /api/reports)"},
    "agent": {"type": "string"}, "group": {"type": "string"},
    "format": {"enum": ["json", "csv", "xlsx", "html", "table"], "default": "json"},
    "lang": {"enum": ["en", "ru"], "default": "en"},
}
document(path="/api/reports", method="GET", tag="reports", summary="The report catalogue (supervisors)",
         errors={403: "agents may not read reports"},
         response={"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object"}}}})
document(path="/api/reports/{name}", method="GET", tag="reports", query=_QUERY,
         summary="A report over a period (supervisors): JSON, or a CSV / XLSX / HTML / text download",
         response={"type": "object", "description": "docs/reports.md: report, params, definitions, tables, charts"},
         media_types={media.split(";")[0]: {"type": "string", "description": f"format={fmt}"}
                      for fmt, media in CONTENT_TYPES.items() if fmt != "json"},
         path_params={"name": {"enum": list(CATALOGUE)}},
         errors={400: "unknown_report, bad_period, period_too_long, bad_format, bad_group_by, bad_filter, bad_lang",
                 403: "agents may not read reports"})


def register_reports(app, daemon) -> None:
    from ctid.reports.service import context_for, produce

    def supervisor() -> None:
        from ctid.auth import bearer

        token = bearer(request.headers.get("Authorization"))  # never from the URL (docs/security.md)
        who = daemon.auth.authenticate(token)
        if not who.is_supervisor:
            raise ForbiddenError("reports are for supervisors and admins", error_id="forbidden")

    @app.get("/api/reports")
    async def reports_catalogue():
        supervisor()
        return jsonify({"items": [{"name": name, "group_by": list(spec.group_by), "summary": spec.summary}
                                  for name, spec in CATALOGUE.items()]})

    @app.get("/api/reports/<name>")
    async def report(name: str):
        supervisor()
        args = request.args
        fmt = args.get("format") or "json"
        ctx = context_for(daemon.settings, daemon.store.engine, daemon.crm, daemon.store.limiter)
        body, content_type, file_name = await produce(
            ctx, name, fmt, date_from=args.get("from"), date_to=args.get("to"), group_by=args.get("group_by"),
            agent=args.get("agent"), group=args.get("group"), lang=args.get("lang"))
        response = Response(body, content_type=content_type)
        if fmt != "json":
            response.headers["Content-Disposition"] = f'attachment; filename="{file_name}"'
        response.headers["Cache-Control"] = "no-store"
        return response
