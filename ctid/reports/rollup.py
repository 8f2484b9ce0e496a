"""The daily rollup of the KPI aggregates: closed local days are summed once into ``report_rollup``
(per hour for the dims ``total`` and ``group``, per day for ``agent`` and ``campaign``), so a report
over months reads thousands of rollup rows instead of a million calls (bench/reports.py).

:func:`kpi_rows` answers ``queries.kpis(scope, knobs, key)`` from the rollup for the built days and
from ``calls`` for the rest (today, or a scope the rollup cannot answer, e.g. one agent), merged.
Correctness: a day is rebuilt when any call of it changed after the last check (``calls.updated_at``),
and the whole rollup is dropped when the KPI settings or the time zone change (a fingerprint in
``settings``). Rows are sums, so the merge of both parts equals one live query.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, delete, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ctid.errors import StoreError
from ctid.reports import queries as q
from ctid.store.schema import (
    calls,
    report_cost_rollup,
    report_missed,
    report_presence,
    report_rollup,
    report_rollup_days,
    report_wait_rollup,
    settings,
)

FINGERPRINT = "reports.rollup.fingerprint"
CHECKED = "reports.rollup.checked_at"
#: Calls written this close to a check may not be visible to it yet: the next check looks back so far.
MARGIN = timedelta(seconds=30)
SUMS = tuple(c.name for c in report_rollup.columns if c.name not in ("local_date", "dim", "dim_value",
                                                                      "local_hour"))
#: dim -> (its key expression over calls, per hour?)
DIMS = {"total": (literal(""), True), "group": (func.coalesce(calls.c.group_name, ""), True),
        "agent": (func.coalesce(calls.c.answered_by, calls.c.agent, ""), False),
        "campaign": (func.coalesce(calls.c.campaign, ""), False)}


class KPIRow(dict):
    """An aggregate row (``row.key``, ``row.answered`` ..., ``row._mapping``) like a SQL row's."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def _mapping(self) -> dict[str, Any]:
        return self


def fingerprint(knobs: q.Knobs, timezone: str) -> str:
    data = json.dumps([knobs.__class__.__name__, [getattr(knobs, f) for f in knobs.__slots__], timezone])
    return hashlib.sha256(data.encode()).hexdigest()[:16]


# -- statements (compiled for MS SQL in tests) -----------------------------------------------------------

def build_statement(first: date, last: date, knobs: q.Knobs, dim: str) -> Any:
    """The rollup rows of ``dim`` for the days ``first`` .. ``last``."""
    key, hourly = DIMS[dim]
    hour = calls.c.local_hour if hourly else literal(-1)
    scope = q.Scope(first, last)
    return (select(calls.c.local_date, key.label("dim_value"), hour.label("local_hour"), *q.kpi_columns(knobs))
            .where(*q.where(scope)).group_by(calls.c.local_date, key, *([calls.c.local_hour] if hourly else [])))


#: Keys of the cost report kept per day ("day" reads the ``direction`` rows per date).
COST_DIMS = ("direction", "agent", "group", "campaign", "cost_source")

#: Wait histogram dims -> the grouping key over calls (None: the whole centre).
WAIT_DIMS = {"total": None, "group": "group", "hour": "hour"}


def wait_build_statement(first: date, last: date, knobs: q.Knobs, key: str | None) -> Any:
    """Answered inbound calls per day, ``key`` and whole second of wait."""
    seconds = q.wait_seconds_int()
    expr = q.KEYS[key] if key else literal("")
    cond = [*q.where(q.Scope(first, last)), calls.c.direction == q.INBOUND, q.answered(knobs)]
    return (select(calls.c.local_date, expr.label("key"), seconds.label("seconds"), func.count().label("n"))
            .where(*cond).group_by(calls.c.local_date, expr, seconds))


def wait_read_statement(first: date, last: date, dim: str, value: str | None = None) -> Any:
    w = report_wait_rollup.c
    cond = [w.dim == dim, w.local_date >= first.isoformat(), w.local_date <= last.isoformat()]
    if value is not None:
        cond.append(w.dim_value == value)
    return (select(w.dim_value.label("key"), w.wait_s.label("seconds"), func.sum(w.n).label("n"))
            .where(*cond).group_by(w.dim_value, w.wait_s))


def read_statement(first: date, last: date, dim: str, by: str | None, value: str | None = None) -> Any:
    """Sums of the rollup rows of ``dim`` in ``first`` .. ``last`` per ``by`` (a rollup column)."""
    r = report_rollup.c
    columns = [func.max(r.wait_max).label("wait_max") if name == "wait_max" else func.sum(r[name]).label(name)
               for name in SUMS]
    cond = [r.dim == dim, r.local_date >= first.isoformat(), r.local_date <= last.isoformat()]
    if value is not None:
        cond.append(r.dim_value == value)
    if by is None:
        return select(*columns).where(*cond)
    return select(r[by].label("key"), *columns).where(*cond).group_by(r[by])


def changed_calls(since: datetime) -> Any:
    """Local date and number of the calls written after ``since`` (no DISTINCT: SQLite would then scan
    the report index for it instead of the few recent rows of ``ix_calls_updated_at``)."""
    return select(calls.c.local_date, calls.c.remote_number).where(calls.c.updated_at > since)


def days_of_numbers(numbers: list[str]) -> Any:
    """Local dates of the calls with these numbers (a new answered call changes the follow-up of the
    caller's earlier missed calls)."""
    return select(calls.c.local_date).where(calls.c.remote_number.in_(numbers))


# -- maintenance -----------------------------------------------------------------------------------------

def _setting(conn: Connection, key: str) -> str | None:
    return conn.execute(select(settings.c.value).where(settings.c.key == key)).scalar()


def _put_setting(conn: Connection, key: str, value: str) -> None:
    if conn.execute(update(settings).where(settings.c.key == key).values(value=value)).rowcount == 0:
        conn.execute(insert(settings).values(key=key, value=value))


def built_days(engine: Any, first: date, last: date, knobs: q.Knobs, timezone: str, today: date) -> set[str]:
    """Make sure every closed day of ``first`` .. ``last`` (before ``today``) is in the rollup, as far as
    the database lets us; return the days the rollup holds (blocking: run in a worker thread)."""
    from ctid.store.engine import WRITE

    now = datetime.now(UTC)
    wanted = fingerprint(knobs, timezone)
    try:
        with engine.connect() as conn:
            conn.execution_options(**{WRITE: True})
            with conn.begin():
                if _setting(conn, FINGERPRINT) != wanted:  # other settings: every sum may differ
                    conn.execute(delete(report_rollup))
                    conn.execute(delete(report_wait_rollup))
                    conn.execute(delete(report_missed))
                    conn.execute(delete(report_cost_rollup))
                    conn.execute(delete(report_presence))
                    conn.execute(delete(report_rollup_days))
                    _put_setting(conn, FINGERPRINT, wanted)
                    _put_setting(conn, CHECKED, now.isoformat())
                else:
                    checked = _setting(conn, CHECKED)
                    since = datetime.fromisoformat(checked) - MARGIN if checked else datetime.min.replace(tzinfo=UTC)
                    changed = conn.execute(changed_calls(since)).all()
                    stale_days = {row.local_date for row in changed if row.local_date}
                    numbers = sorted({row.remote_number for row in changed if row.remote_number})
                    for start in range(0, len(numbers), 500):  # their earlier missed calls' follow-up may differ
                        stale_days.update(r[0] for r in conn.execute(days_of_numbers(numbers[start:start + 500]))
                                          if r[0])
                    stale = sorted(stale_days)
                    for start in range(0, len(stale), 500):
                        chunk = stale[start:start + 500]
                        conn.execute(delete(report_rollup).where(report_rollup.c.local_date.in_(chunk)))
                        conn.execute(delete(report_wait_rollup).where(report_wait_rollup.c.local_date.in_(chunk)))
                        conn.execute(delete(report_missed).where(report_missed.c.local_date.in_(chunk)))
                        conn.execute(delete(report_cost_rollup).where(report_cost_rollup.c.local_date.in_(chunk)))
                        conn.execute(delete(report_presence).where(report_presence.c.local_date.in_(chunk)))
                        conn.execute(delete(report_rollup_days).where(report_rollup_days.c.local_date.in_(chunk)))
                    _put_setting(conn, CHECKED, now.isoformat())
        end = min(last, today - timedelta(days=1))
        # Sums are computed on a reading connection and written in a short transaction of their own:
        # on SQLite the writer lock (which the event writer needs too) is held only for the inserts.
        with engine.connect() as reader:
            have = {row[0] for row in reader.execute(select(report_rollup_days.c.local_date).where(
                report_rollup_days.c.local_date >= first.isoformat(),
                report_rollup_days.c.local_date <= end.isoformat()))}
            missing = [d for d in _days(first, end) if d.isoformat() not in have]
            for run_first, run_last in _runs(missing):
                computed = _compute(reader, run_first, run_last, knobs, ZoneInfo(timezone))
                reader.rollback()  # end the read snapshot before writing
                try:
                    with engine.connect() as writer:
                        writer.execution_options(**{WRITE: True})
                        with writer.begin():
                            _store(writer, computed, run_first, run_last, now)
                    have.update(d.isoformat() for d in _days(run_first, run_last))
                except IntegrityError:  # another report built these days meanwhile
                    continue
        return have
    except SQLAlchemyError as exc:
        raise StoreError(f"the report rollup failed: {type(exc).__name__}") from exc


def _compute(conn: Connection, first: date, last: date, knobs: q.Knobs,
             zone: ZoneInfo) -> dict[Any, list[dict[str, Any]]]:
    """The rollup rows of the days ``first`` .. ``last``, per table (reads only)."""
    from ctid.reports.presence import fold_from

    out: dict[Any, list[dict[str, Any]]] = {}
    out[report_presence] = [{"local_date": day, "agent_id": agent[:100], "status": status, "seconds": seconds}
                            for (day, agent, status), seconds in fold_from(conn, first, last, zone).items()]
    new = {(row.local_date, row.key or ""): row.n
           for row in conn.execute(q.new_contacts(q.Scope(first, last), "campaign", by_day=True))}
    for dim in DIMS:
        rows = []
        for row in conn.execute(build_statement(first, last, knobs, dim)):
            values = dict(row._mapping)
            values.pop("offered", None)
            item = {"local_date": values.pop("local_date"), "dim": dim, "dim_value": (values.pop("dim_value") or "")[:200],
                    "local_hour": values.pop("local_hour")}
            item.update({name: (values.get(name) or 0) if report_rollup.c[name].type.python_type is int
                         else values.get(name) for name in SUMS})
            if dim == "campaign":
                item["new_contacts"] = new.get((item["local_date"], item["dim_value"]), 0)
            rows.append(item)
        out.setdefault(report_rollup, []).extend(rows)
    out[report_missed] = [dict(row._mapping) for row in conn.execute(q.missed_followups(q.Scope(first, last), knobs))]
    for dim in COST_DIMS:
        rows = [{"local_date": row.local_date, "dim": dim, "dim_value": (str(row.key) if row.key is not None else "")[:200],
                 "currency": row.cost_currency or "", "calls": row.calls, "priced": row.priced, "cost": row.cost,
                 "talk": row.talk}
                for row in conn.execute(q.cost_by(q.Scope(first, last), dim, by_day=True))]
        out.setdefault(report_cost_rollup, []).extend(rows)
    for dim, key in WAIT_DIMS.items():
        rows = [{"local_date": row.local_date, "dim": dim, "dim_value": (str(row.key) if row.key is not None else "")[:200],
                 "wait_s": row.seconds, "n": row.n}
                for row in conn.execute(wait_build_statement(first, last, knobs, key))]
        out.setdefault(report_wait_rollup, []).extend(rows)
    return out


def _store(conn: Connection, computed: dict[Any, list[dict[str, Any]]], first: date, last: date,
           now: datetime) -> None:
    for table, rows in computed.items():
        for start in range(0, len(rows), 500):
            conn.execute(insert(table), rows[start:start + 500])
    conn.execute(insert(report_rollup_days), [{"local_date": d.isoformat(), "built_at": now} for d in _days(first, last)])


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)] if first <= last else []


def _runs(days: list[date]) -> list[tuple[date, date]]:
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and runs[-1][1] + timedelta(days=1) == day and (day - runs[-1][0]).days < 31:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


# -- reading ---------------------------------------------------------------------------------------------

def plan(scope: q.Scope, key: str | None) -> tuple[str, str | None, str | None] | None:
    """(dim, rollup column to group by, dim value) answering ``kpis(scope, key)``, or None."""
    if scope.agent is not None:
        return None
    by = {None: None, "day": "local_date", "hour": "local_hour", "weekday": "local_date"}
    if scope.group is not None:
        if key in by or key == "group":
            return "group", by.get(key, "dim_value"), scope.group
        return None
    if key in by:
        return "total", by[key], None
    if key in ("group", "agent", "campaign"):
        return key, "dim_value", None
    return None


async def kpi_rows(ctx: Any, scope: q.Scope, key: str | None) -> list[KPIRow]:
    """``queries.kpis(scope, knobs, key)`` rows, from the rollup where it can answer."""
    import trio

    knobs = ctx.knobs
    how = plan(scope, key)
    if how is None or not getattr(ctx, "rollup", True):
        return [KPIRow(row._mapping) for row in await ctx.rows(q.kpis(scope, knobs, key))]
    dim, by, value = how
    today = datetime.now(UTC).astimezone(ctx.zone).date()
    have = await trio.to_thread.run_sync(built_days, ctx.engine, scope.first, scope.last, knobs,
                                         ctx.settings.timezone, today, limiter=ctx.limiter)
    parts: list[KPIRow] = []
    if have:
        first, last = min(have), max(have)
        for row in await ctx.rows(read_statement(date.fromisoformat(first), date.fromisoformat(last), dim, by,
                                                 value)):
            item = KPIRow(row._mapping)
            if by == "local_hour" and item.get("key") == -1:
                continue
            if key == "weekday":
                item["key"] = date.fromisoformat(item["key"]).isoweekday()
            elif key == "group" or (by == "dim_value"):
                item["key"] = item["key"] or None
            parts.append(item)
    live_days = [d for d in _days(scope.first, scope.last) if d.isoformat() not in have]
    for run_first, run_last in _runs(live_days):
        part = q.Scope(run_first, run_last, scope.agent, scope.group)
        parts.extend(KPIRow(row._mapping) for row in await ctx.rows(q.kpis(part, knobs, key)))
    return _merge_by_key(parts, key is not None)


def _merge_by_key(rows: list[KPIRow], keyed: bool) -> list[KPIRow]:
    merged: dict[Any, KPIRow] = {}
    for row in rows:
        k = row.get("key") if keyed else None
        into = merged.setdefault(k, KPIRow({"key": k} if keyed else {}))
        for name, value in row.items():
            if name == "key" or value is None:
                continue
            if name == "wait_max":
                into[name] = max(into.get(name, value), value)
            else:
                into[name] = into.get(name, 0) + value
    if not merged and not keyed:
        return [KPIRow()]
    return list(merged.values())


async def wait_histogram(ctx: Any, scope: q.Scope, key: str | None) -> dict[Any, list[tuple[int, int]]]:
    """``queries.wait_histogram(scope, knobs, key)`` as {key: [(seconds, count)]}, from the rollup
    for built days (whole centre, per group or per hour; no agent filter) and calls for the rest."""
    import trio

    knobs = ctx.knobs
    out: dict[Any, list[tuple[int, int]]] = {}
    usable = scope.agent is None and key in (None, "group", "hour") and (scope.group is None or key in (None, "group"))
    have: set[str] = set()
    if usable and getattr(ctx, "rollup", True):
        today = datetime.now(UTC).astimezone(ctx.zone).date()
        have = await trio.to_thread.run_sync(built_days, ctx.engine, scope.first, scope.last, knobs,
                                             ctx.settings.timezone, today, limiter=ctx.limiter)
    if have:
        dim = "group" if (key == "group" or scope.group is not None) else (key or "total")
        value = scope.group if scope.group is not None else None
        for row in await ctx.rows(wait_read_statement(date.fromisoformat(min(have)), date.fromisoformat(max(have)),
                                                      dim, value)):
            k = None if key is None else (int(row.key) if key == "hour" else (row.key or None))
            out.setdefault(k, []).append((row.seconds, int(row.n)))
    live = [d for d in _days(scope.first, scope.last) if d.isoformat() not in have]
    for run_first, run_last in _runs(live):
        part = q.Scope(run_first, run_last, scope.agent, scope.group)
        for row in await ctx.rows(q.wait_histogram(part, knobs, key)):
            out.setdefault(row.key if key else None, []).append((row.seconds, row.n))
    return out


async def new_contacts(ctx: Any, scope: q.Scope, key: str) -> dict[Any, int]:
    """``queries.new_contacts(scope, key)`` as {key: count}: from the rollup's campaign rows for built
    days (per campaign, no agent / group filter), from calls for the rest."""
    import trio

    out: dict[Any, int] = {}
    have: set[str] = set()
    if key == "campaign" and scope.agent is None and scope.group is None and getattr(ctx, "rollup", True):
        today = datetime.now(UTC).astimezone(ctx.zone).date()
        have = await trio.to_thread.run_sync(built_days, ctx.engine, scope.first, scope.last, ctx.knobs,
                                             ctx.settings.timezone, today, limiter=ctx.limiter)
    if have:
        r = report_rollup.c
        statement = (select(r.dim_value.label("key"), func.sum(r.new_contacts).label("n"))
                     .where(r.dim == "campaign", r.local_date >= min(have), r.local_date <= max(have))
                     .group_by(r.dim_value))
        for row in await ctx.rows(statement):
            out[row.key or None] = out.get(row.key or None, 0) + int(row.n or 0)
    for run_first, run_last in _runs([d for d in _days(scope.first, scope.last) if d.isoformat() not in have]):
        part = q.Scope(run_first, run_last, scope.agent, scope.group)
        for row in await ctx.rows(q.new_contacts(part, key)):
            out[row.key] = out.get(row.key, 0) + row.n
    return out


async def missed_sources(ctx: Any, scope: q.Scope) -> list[Any]:
    """Sources with the columns of ``queries.missed_followups``: the kept rows of built days, and the
    live query for each run of other days (ctid.reports.followup aggregates over each)."""
    import trio

    today = datetime.now(UTC).astimezone(ctx.zone).date()
    have: set[str] = set()
    if getattr(ctx, "rollup", True):
        have = await trio.to_thread.run_sync(built_days, ctx.engine, scope.first, scope.last, ctx.knobs,
                                             ctx.settings.timezone, today, limiter=ctx.limiter)
    sources: list[Any] = []
    if have:
        m = report_missed.c
        cond = [m.local_date >= min(have), m.local_date <= max(have)]
        if scope.agent is not None:  # missed calls have no answering agent: the call's agent
            cond.append(m.agent == scope.agent)
        if scope.group is not None:
            cond.append(m.group_name == scope.group)
        sources.append(select(report_missed).where(*cond).subquery("kept"))
    for run_first, run_last in _runs([d for d in _days(scope.first, scope.last) if d.isoformat() not in have]):
        part = q.Scope(run_first, run_last, scope.agent, scope.group)
        sources.append(q.missed_followups(part, ctx.knobs).subquery("live"))
    return sources


async def missed_rows(ctx: Any, scope: q.Scope) -> list[Any]:
    """Every ``queries.missed_followups`` row of the scope (kept and live), for tests and exports."""
    rows: list[Any] = []
    for source in await missed_sources(ctx, scope):
        rows.extend(await ctx.rows(select(source)))
    return rows


async def cost_rows(ctx: Any, scope: q.Scope, key: str) -> list[KPIRow]:
    """``queries.cost_by(scope, key)`` rows (key, cost_currency, calls, priced, cost, talk): kept ones for
    built days (no agent / group filter), live for the rest, summed per key and currency."""
    import trio

    have: set[str] = set()
    if scope.agent is None and scope.group is None and getattr(ctx, "rollup", True):
        today = datetime.now(UTC).astimezone(ctx.zone).date()
        have = await trio.to_thread.run_sync(built_days, ctx.engine, scope.first, scope.last, ctx.knobs,
                                             ctx.settings.timezone, today, limiter=ctx.limiter)
    parts: list[tuple[Any, Any, Any]] = []
    if have:
        r = report_cost_rollup.c
        by = r.local_date if key == "day" else r.dim_value
        statement = (select(by.label("key"), r.currency, func.sum(r.calls).label("calls"),
                            func.sum(r.priced).label("priced"), func.sum(r.cost).label("cost"),
                            func.sum(r.talk).label("talk"))
                     .where(r.dim == ("direction" if key == "day" else key), r.local_date >= min(have),
                            r.local_date <= max(have))
                     .group_by(by, r.currency))
        for row in await ctx.rows(statement):
            parts.append((row.key or None, row.currency or None, row))
    for run_first, run_last in _runs([d for d in _days(scope.first, scope.last) if d.isoformat() not in have]):
        part = q.Scope(run_first, run_last, scope.agent, scope.group)
        for row in await ctx.rows(q.cost_by(part, key)):
            parts.append((row.key, row.cost_currency, row))
    merged: dict[tuple[Any, Any], KPIRow] = {}
    for k, currency, row in parts:
        into = merged.setdefault((k, currency), KPIRow(key=k, cost_currency=currency, calls=0, priced=0, cost=None,
                                                       talk=0.0))
        into["calls"] += int(row.calls or 0)
        into["priced"] += int(row.priced or 0)
        into["talk"] += float(row.talk or 0)
        if row.cost is not None:
            into["cost"] = (into["cost"] or 0.0) + float(row.cost)
    return list(merged.values())


async def keep_built(engine: Any, reports: Any, limiter: Any = None, *, interval: float = 3600.0,
                     task_status: Any = None) -> None:
    """Build the rollup of the closed days of the last ``reports.max_days`` ahead of any report, at
    start and then every ``interval`` seconds (``ctid serve`` runs this): a report over months then
    reads sums only. Failures are logged and retried at the next round."""
    import logging

    import trio

    from ctid.errors import CtidError

    log = logging.getLogger(__name__)
    if task_status is not None:
        task_status.started()
    while True:
        today = datetime.now(UTC).astimezone(ZoneInfo(reports.timezone)).date()
        try:
            await trio.to_thread.run_sync(built_days, engine, today - timedelta(days=reports.max_days - 1),
                                          today - timedelta(days=1), q.Knobs.from_config(reports),
                                          reports.timezone, today, limiter=limiter)
        except CtidError as exc:
            log.warning("building the report rollup failed (retried in %.0f s): %s", interval, exc)
        await trio.sleep(interval)


async def presence_seconds(ctx: Any, first: date, last: date, agent: str | None) -> dict[tuple[str, str, str], float]:
    """{(local date, agent, status): seconds} of the period: kept for built days, folded for the rest."""
    import trio

    from ctid.reports.presence import fold_from

    have: set[str] = set()
    if getattr(ctx, "rollup", True):
        today = datetime.now(UTC).astimezone(ctx.zone).date()
        have = await trio.to_thread.run_sync(built_days, ctx.engine, first, last, ctx.knobs, ctx.settings.timezone,
                                             today, limiter=ctx.limiter)
    out: dict[tuple[str, str, str], float] = {}
    if have:
        r = report_presence.c
        cond = [r.local_date >= min(have), r.local_date <= max(have)]
        if agent is not None:
            cond.append(r.agent_id == agent)
        for row in await ctx.rows(select(r.local_date, r.agent_id, r.status, r.seconds).where(*cond)):
            out[(row.local_date, row.agent_id, row.status)] = float(row.seconds)

    def fold_live(run_first: date, run_last: date) -> dict[tuple[str, str, str], float]:
        with ctx.engine.connect() as conn:
            return fold_from(conn, run_first, run_last, ctx.zone)

    for run_first, run_last in _runs([d for d in _days(first, last) if d.isoformat() not in have]):
        found = await trio.to_thread.run_sync(fold_live, run_first, run_last, limiter=ctx.limiter)
        out.update({cell: s for cell, s in found.items() if agent in (None, cell[1])})
    return out
