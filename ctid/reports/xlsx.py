"""XLSX rendering with XlsxWriter: one sheet per table with typed cells (numbers, percentages as
0.0 %, durations as Excel times [h]:mm:ss, dates as dates), bold frozen header, autofilter, and a
Definitions sheet."""

from __future__ import annotations

import io
import re
from datetime import date

from ctid.reports.definitions import HEADINGS
from ctid.reports.result import ReportResult


def _sheet_name(text: str, used: set[str]) -> str:
    name = re.sub(r"[\[\]:*?/\\]", " ", text)[:31] or "Sheet"
    base, n = name, 2
    while name.lower() in used:
        name = f"{base[:28]} {n}"
        n += 1
    used.add(name.lower())
    return name


def render_xlsx(result: ReportResult) -> bytes:
    import xlsxwriter

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    book.set_properties({"title": result.title, "comments": "ctid report"})
    formats = {
        "header": book.add_format({"bold": True, "bottom": 1}),
        "total": book.add_format({"bold": True, "top": 1}),
        "int": book.add_format({"num_format": "0"}),
        "float": book.add_format({"num_format": "0.##"}),
        "percent": book.add_format({"num_format": "0.0%"}),
        "duration": book.add_format({"num_format": "[h]:mm:ss"}),
        "money": book.add_format({"num_format": "#,##0.00"}),
        "date": book.add_format({"num_format": "yyyy-mm-dd"}),
        "text": book.add_format({}),
    }
    used: set[str] = set()
    for table in result.tables:
        sheet = book.add_worksheet(_sheet_name(table.title, used))
        for x, column in enumerate(table.columns):
            sheet.write_string(0, x, column.label, formats["header"])
            sheet.set_column(x, x, max(10, min(40, len(column.label) + 2)))
        rows = [*table.rows, *([table.totals] if table.totals else [])]
        for y, row in enumerate(rows, start=1):
            for x, column in enumerate(table.columns):
                value = row.get(column.key)
                kind = column.kind
                if value is None:
                    sheet.write_blank(y, x, None, formats[kind])
                elif kind == "duration":
                    sheet.write_number(y, x, value / 86400, formats["duration"])
                elif kind in ("int", "float", "percent", "money") and isinstance(value, int | float):
                    sheet.write_number(y, x, value, formats[kind])
                elif kind == "date" and isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\d", value):
                    sheet.write_datetime(y, x, date.fromisoformat(value), formats["date"])
                else:
                    sheet.write_string(y, x, str(value))
        sheet.freeze_panes(1, 0)
        if table.rows:
            sheet.autofilter(0, 0, len(table.rows), len(table.columns) - 1)
    sheet = book.add_worksheet(_sheet_name(HEADINGS[result.params.get("lang", "en")][0], used))
    sheet.set_column(0, 0, 18)
    sheet.set_column(1, 1, 120)
    sheet.write_string(0, 0, result.title, formats["header"])
    params = result.params
    sheet.write_string(0, 1, f"{params['from']} .. {params['to']}"
                       + "".join(f", {k} {params[k]}" for k in ("group_by", "agent", "group") if params.get(k)))
    for y, (term, text) in enumerate(result.definitions, start=2):
        sheet.write_string(y, 0, term, formats["header"])
        sheet.write_string(y, 1, text)
    for y, note in enumerate(result.notes, start=3 + len(result.definitions)):
        sheet.write_string(y, 1, note)
    book.close()
    return out.getvalue()
