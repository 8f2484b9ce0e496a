"""Running a report: the context it reads (database, KPI settings, agents, CRM), the shared
row builders, and :func:`run_report`, which checks nothing (``ctid.reports.params`` did) and
returns a :class:`~ctid.reports.result.ReportResult`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import trio
from sqlalchemy import Engine

from ctid import kpi
from ctid.errors import CtidError, StoreError
from ctid.reports.labels import label
from ctid.reports.params import ReportParams
from ctid.reports.queries import Knobs, Scope
from ctid.reports.result import Column, ReportResult


@dataclass
class ReportContext:
    """What reports read. ``sales_facts`` is the CRM's ``sales_facts`` (or None without one)."""

    engine: Engine
    settings: Any  # ctid.config.models.ReportsConfig
    agent_names: dict[str, str] = field(default_factory=dict)
    sales_facts: Callable[[Sequence[str], datetime, datetime], Any] | None = None
    limiter: trio.CapacityLimiter | None = None
    rollup: bool = True  # answer from the daily rollup where it can (ctid.reports.rollup)

    @property
    def knobs(self) -> Knobs:
        return Knobs.from_config(self.settings)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone)

    def local_start(self, day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=self.zone).astimezone(UTC)

    async def rows(self, statement: Any) -> list[Any]:
        """Run one report statement in a worker thread; database errors become StoreError."""

        def run() -> list[Any]:
            from sqlalchemy.exc import SQLAlchemyError

            try:
                with self.engine.connect() as conn:
                    return list(conn.execute(statement))
            except SQLAlchemyError as exc:
                raise StoreError(f"the report query failed: {type(exc).__name__}") from exc

        return await trio.to_thread.run_sync(run, limiter=self.limiter)


def scope_of(params: ReportParams) -> Scope:
    return Scope(params.date_from, params.date_to, agent=params.agent, group=params.group)


def col(key: str, kind: str, lang: str) -> Column:
    return Column(key, label(key, lang), kind)


def kpi_values(row: Any, settings: Any) -> dict[str, Any]:
    """Figures of one aggregate row of :func:`ctid.reports.queries.kpis` (docs/reports.md, formulas)."""
    get = row._mapping.get if hasattr(row, "_mapping") else row.get
    n = lambda name: int(get(name) or 0)  # noqa: E731
    offered = n("offered_all") - n("short_abandons")
    answered, abandoned = n("answered"), n("abandoned")
    rating_n = n("rating_n")
    return {
        "offered": offered,
        "answered": answered,
        "missed": abandoned,
        "abandoned": abandoned,
        "short_abandons": n("short_abandons"),
        "answer_rate": kpi.ratio(answered, offered),
        "abandon_rate": kpi.ratio(abandoned, offered),
        "answered_in_sl": n("answered_in_sl"),
        "abandoned_in_sl": n("abandoned_in_sl"),
        "service_level": kpi.service_level(n("answered_in_sl"), n("abandoned_in_sl"), offered, abandoned,
                                           settings.abandon_treatment),
        "asa": kpi.mean(get("wait_sum"), answered),
        "wait_max": get("wait_max"),
        "avg_abandon_wait": kpi.mean(get("abandon_wait_sum"), abandoned),
        "avg_talk": kpi.mean(get("talk_sum"), answered),
        "avg_hold": kpi.mean(get("hold_sum"), answered),
        "talk": float(get("talk_sum") or 0.0),
        "short_calls": n("short_calls"),
        "short_share": kpi.ratio(n("short_calls"), answered),
        "target": n("target"),
        "transfers": n("transfers"),
        "outbound": n("outbound"),
        "outbound_connected": n("outbound_connected"),
        "outbound_rate": kpi.ratio(n("outbound_connected"), n("outbound")),
        "rating": kpi.mean(get("rating_sum"), rating_n),
        "ratings": rating_n,
        "cost": round(float(get("cost_sum")), 2) if get("cost_sum") is not None else None,
    }


def merge(rows: Sequence[Any]) -> dict[str, Any]:
    """The total of per-key aggregate rows (every figure is a sum or count, the longest wait a max),
    so a grouped report needs no second pass over the calls."""
    total: dict[str, Any] = {}
    for row in rows:
        for name, value in row._mapping.items():
            if name == "key" or value is None:
                continue
            if name == "wait_max":
                total[name] = max(total.get(name, value), value)
            else:
                total[name] = total.get(name, 0) + value
    return total


def key_text(group_by: str | None, value: Any, lang: str) -> Any:
    """How a grouping key is shown: weekday names, ``(none)`` for a missing key."""
    if value is None or value == "":
        return label("none", lang)
    if group_by == "weekday":
        from ctid.reports.labels import WEEKDAYS

        return WEEKDAYS[lang][int(value) - 1]
    if group_by == "hour":
        return f"{int(value):02d}:00"
    return value


def key_kind(group_by: str | None) -> str:
    return "date" if group_by == "day" else "text"


async def run_report(ctx: ReportContext, params: ReportParams) -> ReportResult:
    """Build report ``params.name`` (parameters already checked by ``ctid.reports.params.parse``)."""
    from ctid.reports.catalogue import CATALOGUE

    spec = CATALOGUE[params.name]
    try:
        result = await spec.build(ctx, params)
    except CtidError:
        raise
    result.generated_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return result


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
