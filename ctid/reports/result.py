"""What a report produces, independent of the output format: tables of typed columns, chart specs
and the definitions block (every figure's formula and the settings used)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Column kinds: how a value is typed in XLSX, aligned in tables and formatted everywhere.
KINDS = ("text", "int", "float", "percent", "duration", "money", "date")


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    kind: str = "int"


@dataclass(slots=True)
class Table:
    key: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "columns": [{"key": c.key, "label": c.label, "kind": c.kind} for c in self.columns],
            "rows": self.rows,
            "totals": self.totals,
        }


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart of one table: ``x`` is the category column, ``series`` the value columns."""

    kind: str  # "bar" | "stacked" | "line" | "hbar"
    title: str
    table: str
    x: str
    series: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "title": self.title, "table": self.table, "x": self.x,
                "series": list(self.series)}


@dataclass(slots=True)
class ReportResult:
    name: str
    title: str
    params: dict[str, Any]
    definitions: list[tuple[str, str]]
    tables: list[Table]
    charts: list[Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    generated_at: str = ""

    def table(self, key: str) -> Table:
        return next(t for t in self.tables if t.key == key)

    def to_json(self) -> dict[str, Any]:
        return {
            "report": self.name,
            "title": self.title,
            "params": self.params,
            "generated_at": self.generated_at,
            "definitions": [{"term": term, "definition": text} for term, text in self.definitions],
            "tables": [t.to_json() for t in self.tables],
            "charts": [c.to_json() for c in self.charts],
            "notes": list(self.notes),
        }
