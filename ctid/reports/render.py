"""Text renderings of a ReportResult: the terminal table (rich), CSV (UTF-8 with BOM, for Excel)
and JSON. XLSX and HTML are in ``xlsx.py`` and ``html.py``; :func:`render` picks by format."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from ctid.reports.definitions import HEADINGS
from ctid.reports.result import Column, ReportResult, Table

DASH = "—"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def fmt(value: Any, kind: str) -> str:
    """A value as people read it: percentages with one decimal, durations m:ss / h:mm:ss."""
    if value is None:
        return DASH
    if kind == "percent":
        return f"{value * 100:.1f} %"
    if kind == "duration":
        return fmt_duration(value)
    if kind == "money":
        return f"{value:,.2f}".replace(",", " ")
    if kind == "float":
        return f"{value:g}" if isinstance(value, float) else str(value)
    if kind == "int" and isinstance(value, int | float):
        return str(int(value))
    return str(value)


def _rows(table: Table) -> list[dict[str, Any]]:
    return [*table.rows, *([table.totals] if table.totals else [])]


def render_table(result: ReportResult, width: int = 160) -> str:
    """The terminal table: one rich table per report table, numbers right-aligned, then definitions."""
    from rich import box
    from rich.console import Console
    from rich.table import Table as RichTable

    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, color_system=None, highlight=False)
    params = result.params
    console.print(f"{result.title}: {params['from']} .. {params['to']}"
                  + "".join(f", {k} {params[k]}" for k in ("group_by", "agent", "group") if params.get(k)))
    for table in result.tables:
        rich = RichTable(title=table.title if len(result.tables) > 1 else None, box=box.SIMPLE_HEAD,
                         show_footer=False)
        for column in table.columns:
            rich.add_column(column.label, justify="left" if column.kind in ("text", "date") else "right")
        for row in table.rows:
            rich.add_row(*(fmt(row.get(c.key), c.kind) for c in table.columns))
        if table.totals:
            rich.add_section()
            rich.add_row(*(fmt(table.totals.get(c.key), c.kind) if c.key in table.totals else "" for c in table.columns))
        console.print(rich)
    heading, note_word = HEADINGS[result.params.get("lang", "en")]
    for note in result.notes:
        console.print(f"{note_word}: {note}")
    console.print(f"{heading}:")
    for term, text in result.definitions:
        console.print(f"  {term}: {text}", soft_wrap=False)
    return out.getvalue()


def _csv_header(column: Column) -> list[str]:
    if column.kind == "duration":
        return [f"{column.label} (s)", column.label]
    if column.kind == "percent":
        return [f"{column.label} (%)"]
    return [column.label]


def _csv_value(value: Any, column: Column) -> list[Any]:
    if column.kind == "duration":
        return ["" if value is None else f"{value:.1f}", "" if value is None else fmt_duration(value)]
    if value is None:
        return [""]
    if column.kind == "percent":
        return [f"{value * 100:.1f}"]
    if column.kind == "money":
        return [f"{value:.2f}"]
    return [value]


def render_csv(result: ReportResult, delimiter: str = ",") -> bytes:
    """CSV in UTF-8 with a BOM (Excel then reads Cyrillic right); several tables are separated by a
    blank line and a title line; the definitions close the file."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    for index, table in enumerate(result.tables):
        if index:
            writer.writerow([])
            writer.writerow([table.title])
        writer.writerow([h for c in table.columns for h in _csv_header(c)])
        for row in _rows(table):
            writer.writerow([v for c in table.columns for v in _csv_value(row.get(c.key), c)])
    writer.writerow([])
    for term, text in result.definitions:
        writer.writerow([f"# {term}", text])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def render_json(result: ReportResult) -> bytes:
    return json.dumps(result.to_json(), ensure_ascii=False, indent=2).encode("utf-8")


CONTENT_TYPES = {
    "table": "text/plain; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def render(result: ReportResult, fmt_name: str) -> bytes:
    if fmt_name == "table":
        return render_table(result).encode("utf-8")
    if fmt_name == "csv":
        return render_csv(result)
    if fmt_name == "json":
        return render_json(result)
    if fmt_name == "xlsx":
        from ctid.reports.xlsx import render_xlsx

        return render_xlsx(result)
    from ctid.reports.html import render_html

    return render_html(result).encode("utf-8")


def filename(result: ReportResult, fmt_name: str) -> str:
    ext = "txt" if fmt_name == "table" else fmt_name
    return f"ctid-{result.name}-{result.params['from']}-{result.params['to']}.{ext}"
