"""HTML rendering: one self-contained file (inline CSS and SVG charts from pygal with its script
removed, no CDN), readable offline and printable; the same tables and definitions as the XLSX."""

from __future__ import annotations

from html import escape
from typing import Any

from ctid.reports.definitions import HEADINGS
from ctid.reports.render import fmt
from ctid.reports.result import Chart, ReportResult, Table

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1b1f24}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}.meta{color:#57606a;margin:0 0 16px}
table{border-collapse:collapse;margin:8px 0 16px}th,td{padding:4px 10px;border-bottom:1px solid #d0d7de}
th{text-align:left;background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;border-top:2px solid #57606a}.chart{max-width:900px}
dl{font-size:13px;color:#3d444d}dt{font-weight:600}dd{margin:0 0 6px 16px}.note{color:#9a6700}
@media print{body{margin:0}.chart{page-break-inside:avoid}}
"""


def _pygal():
    """pygal, without the legacy ``sys.meta_path`` finder it installs for its map plugins (unused
    here): that finder makes every later failed import lookup raise an ImportWarning."""
    import sys

    import pygal

    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "PluginImportFixer"]
    return pygal


def chart_svg(chart: Chart, table: Table) -> str:
    """An SVG chart of ``table`` (pygal, no JavaScript: native <title> tooltips remain)."""
    pygal = _pygal()
    from pygal.style import Style

    style = Style(background="white", plot_background="white", font_family="system-ui, sans-serif",
                  colors=("#2f6feb", "#d1242f", "#9a6700", "#1a7f37", "#8250df", "#57606a"))
    kinds = {"bar": pygal.Bar, "stacked": pygal.StackedBar, "line": pygal.Line, "hbar": pygal.HorizontalBar}
    labels = {c.key: c.label for c in table.columns}
    col_kind = {c.key: c.kind for c in table.columns}
    graph = kinds.get(chart.kind, pygal.Bar)(style=style, js=[], width=900, height=360, explicit_size=False,
                                            legend_at_bottom=True, x_label_rotation=30 if len(table.rows) > 12 else 0,
                                            print_values=False, show_legend=len(chart.series) > 1 or chart.kind == "hbar",
                                            disable_xml_declaration=True)
    graph.title = chart.title
    graph.x_labels = [str(row.get(chart.x, "")) for row in table.rows]
    for key in chart.series:
        scale = 100 if col_kind.get(key) == "percent" else 1
        values: list[Any] = [None if row.get(key) is None else round(row[key] * scale, 2) for row in table.rows]
        graph.add(labels.get(key, key) + (" %" if scale == 100 else ""), values)
    return graph.render(is_unicode=True)


def _table_html(table: Table) -> str:
    head = "".join(f"<th>{escape(c.label)}</th>" for c in table.columns)
    body = []
    rows = [(row, "") for row in table.rows] + ([(table.totals, ' class="total"')] if table.totals else [])
    for row, attr in rows:
        cells = "".join(
            f'<td{"" if c.kind in ("text", "date") else " class=n"}>{escape(fmt(row.get(c.key), c.kind)) if c.key in row else ""}</td>'
            for c in table.columns)
        body.append(f"<tr{attr}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(result: ReportResult) -> str:
    params = result.params
    meta = f"{params['from']} .. {params['to']}" + "".join(
        f", {k} {params[k]}" for k in ("group_by", "agent", "group") if params.get(k))
    parts = [f"<!doctype html><html lang={escape(params.get('lang') or 'en')}><head><meta charset=utf-8>",
             f"<title>{escape(result.title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{escape(result.title)}</h1><p class=meta>{escape(meta)} · {escape(result.generated_at)}</p>"]
    tables = {t.key: t for t in result.tables}
    for chart in result.charts:
        table = tables.get(chart.table)
        if table is not None and table.rows:
            parts.append(f'<div class="chart">{chart_svg(chart, table)}</div>')
    for table in result.tables:
        parts.append(f"<h2>{escape(table.title)}</h2>{_table_html(table)}")
    parts.extend(f"<p class=note>{escape(note)}</p>" for note in result.notes)
    parts.append(f"<h2>{escape(HEADINGS[result.params.get('lang', 'en')][0])}</h2><dl>")
    parts.extend(f"<dt>{escape(term)}</dt><dd>{escape(text)}</dd>" for term, text in result.definitions)
    parts.append("</dl></body></html>")
    return "".join(parts)
