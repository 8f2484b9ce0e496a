"""People reports: agents (manager quality), missed calls with their callback follow-up, and load
(time per presence status, occupancy)."""

from __future__ import annotations

import statistics
from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from typing import Any

from ctid import kpi
from ctid.reports import queries as q
from ctid.reports.engine import ReportContext, col, definitions, key_kind, key_text, kpi_values, scope_of
from ctid.reports.labels import label, title
from ctid.reports.params import ReportParams
from ctid.reports.result import Chart, ReportResult, Table
from ctid.reports.rollup import kpi_rows, missed_rows

#: Follow-up classes of a missed call.
IN_SLA, LATE, CUSTOMER, NOT_REACHED = "called_back_in_sla", "called_back_late", "customer_called", "not_reached"


def _working(settings: Any, minute: int | None, weekday: int | None) -> bool:
    if minute is None or weekday is None:
        return True
    start, end = settings.working_hours.split("-")
    lo = int(start[:2]) * 60 + int(start[3:])
    hi = int(end[:2]) * 60 + int(end[3:])
    return weekday in settings.working_days and lo <= minute < hi


def classify(row: Any, settings: Any) -> tuple[str, float | None]:
    """The follow-up class of one missed call row and the delay (seconds from its end) when reached."""
    if row.next_epoch is None:
        return NOT_REACHED, None
    delay = max(row.next_epoch - (row.ended_epoch or row.started_epoch or row.next_epoch), 0.0)
    if row.next_direction != q.OUTBOUND:
        return CUSTOMER, delay
    return (IN_SLA if delay <= settings.callback_sla_minutes * 60 else LATE), delay


async def followups(ctx: ReportContext, params: ReportParams) -> list[Any]:
    """Missed calls of the period that were not short abandons."""
    rows = await missed_rows(ctx, scope_of(params))
    short = ctx.settings.short_abandon_seconds
    return [row for row in rows if (row.wait_seconds or 0) >= short]


async def missed_report(ctx: ReportContext, params: ReportParams) -> ReportResult:
    lang, key = params.lang, params.group_by
    settings = ctx.settings
    rows = await followups(ctx, params)
    figures = [("missed", "int"), ("out_of_hours", "int"), (IN_SLA, "int"), (LATE, "int"), (CUSTOMER, "int"),
               (NOT_REACHED, "int"), ("reached_in_sla", "percent"), ("callback_avg", "duration"),
               ("callback_median", "duration")]
    field = {"day": "local_date", "group": "group_name", "agent": "agent"}[key]
    buckets: dict[Any, list[Any]] = {}
    for row in rows:
        buckets.setdefault(getattr(row, field), []).append(row)

    def figs(items: list[Any]) -> dict[str, Any]:
        counts = dict.fromkeys((IN_SLA, LATE, CUSTOMER, NOT_REACHED), 0)
        delays: list[float] = []
        out_of_hours = 0
        in_hours = 0
        reached_in_sla = 0
        for row in items:
            cls, delay = classify(row, settings)
            counts[cls] += 1
            if delay is not None and cls != CUSTOMER:
                delays.append(delay)
            if _working(settings, row.local_minute, row.local_weekday):
                in_hours += 1
                reached_in_sla += cls == IN_SLA
            else:
                out_of_hours += 1
        return {"missed": len(items), "out_of_hours": out_of_hours, **counts,
                "reached_in_sla": kpi.ratio(reached_in_sla, in_hours),
                "callback_avg": statistics.fmean(delays) if delays else None,
                "callback_median": statistics.median(delays) if delays else None}

    table_rows = [{key: key_text(key, k, lang), **figs(v)}
                  for k, v in sorted(buckets.items(), key=lambda item: (item[0] is None, str(item[0])))]
    columns = [col(key, key_kind(key), lang)] + [col(f, kind, lang) for f, kind in figures]
    summary = Table("missed", title("missed", lang), columns, table_rows, {key: label("total", lang), **figs(rows)})
    open_rows = sorted((r for r in rows if r.next_epoch is None), key=lambda r: r.started_epoch or 0)[-500:]
    detail = Table("followups", title("followups", lang),
                   [col("number", "text", lang), col("missed_at", "text", lang), col("group", "text", lang),
                    col("agent", "text", lang)],
                   [{"number": r.remote_number,
                     "missed_at": _local_text(ctx, r.started_epoch),
                     "group": r.group_name, "agent": ctx.agent_names.get(r.agent, r.agent)} for r in open_rows])
    return ReportResult("missed", title("missed", lang), params.to_json(),
                        definitions(settings, "missed", "callbacks"), [summary, detail],
                        [Chart("stacked", title("missed", lang), "missed", key, (IN_SLA, LATE, CUSTOMER, NOT_REACHED))])


def _local_text(ctx: ReportContext, epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).astimezone(ctx.zone).strftime("%Y-%m-%d %H:%M:%S")


async def agents_report(ctx: ReportContext, params: ReportParams) -> ReportResult:
    lang = params.lang
    scope = q.Scope(params.date_from, params.date_to, agent=None, group=params.group)
    rows = await kpi_rows(ctx, scope, "agent")
    callbacks: dict[str, list[float]] = {}
    for row in await followups(ctx, params):
        cls, delay = classify(row, ctx.settings)
        if cls in (IN_SLA, LATE) and row.next_dialer:
            callbacks.setdefault(row.next_dialer, []).append(delay or 0.0)
    figures = [("answered", "int"), ("missed", "int"), ("answer_rate", "percent"), ("asa", "duration"),
               ("avg_talk", "duration"), ("avg_hold", "duration"), ("short_calls", "int"), ("short_share", "percent"),
               ("transfers", "int"), ("outbound", "int"), ("outbound_connected", "int"), ("callbacks", "int"),
               ("callback_avg", "duration"), ("rating", "float"), ("ratings", "int")]
    table_rows = []
    for row in rows:
        if row.key is None or (params.agent and row.key != params.agent):
            continue
        values = kpi_values(row, ctx.settings)
        values["answer_rate"] = kpi.ratio(values["answered"], values["answered"] + values["missed"])
        done = callbacks.get(row.key, [])
        values["callbacks"] = len(done)
        values["callback_avg"] = sum(done) / len(done) if done else None
        table_rows.append({"agent": ctx.agent_names.get(row.key, row.key), **{f: values[f] for f, _ in figures}})
    table_rows.sort(key=lambda r: str(r["agent"]))
    columns = [col("agent", "text", lang)] + [col(f, kind, lang) for f, kind in figures]
    return ReportResult("agents", title("agents", lang), params.to_json(),
                        definitions(ctx.settings, "agent", "answered", "asa", "avg_talk", "short_calls", "transfers",
                                    "outbound", "callbacks", "rating"),
                        [Table("agents", title("agents", lang), columns, table_rows)], [])


STATUSES = ("available", "away", "dnd")


async def load_report(ctx: ReportContext, params: ReportParams) -> ReportResult:
    """Hours per presence status per day (or agent) from the presence history, and occupancy."""
    lang, key = params.lang, params.group_by
    start = ctx.local_start(params.date_from)
    end = ctx.local_start(params.date_to + timedelta(days=1))
    changes = await ctx.rows(q.presence_changes(start, end))
    spent: dict[Any, dict[str, float]] = {}
    # local midnights of the period as epoch seconds: pieces are split there without time-zone math
    days = [params.date_from + timedelta(days=i) for i in range(params.days + 1)]
    bounds = [ctx.local_start(day).timestamp() for day in days]
    labels = [day.isoformat() for day in days]
    lo, hi = start.timestamp(), end.timestamp()

    def add(agent: str, status: str, since_at: datetime, until_at: datetime) -> None:
        if status not in STATUSES or params.agent not in (None, agent):
            return
        since, until = max(since_at.timestamp(), lo), min(until_at.timestamp(), hi)
        index = bisect_right(bounds, since) - 1
        while since < until:  # split at local midnights
            piece_end = min(until, bounds[index + 1])
            bucket = labels[index] if key == "day" else agent
            spent.setdefault(bucket, dict.fromkeys(STATUSES, 0.0))[status] += piece_end - since
            since, index = piece_end, index + 1

    now = datetime.now(UTC)
    by_agent: dict[str, list[Any]] = {}
    for row in changes:
        by_agent.setdefault(row.agent_id, []).append(row)
    for agent, items in by_agent.items():
        for current, following in zip(items, [*items[1:], None], strict=True):
            until = following.at if following is not None else min(end, now)
            add(agent, current.status, current.at, until)
    handle: dict[Any, float] = {}
    scope = q.Scope(params.date_from, params.date_to, params.agent if key == "day" else None, params.group)
    for row in await kpi_rows(ctx, scope, key):
        if row.get("key") is None or (key == "agent" and params.agent not in (None, row["key"])):
            continue
        handle[row["key"]] = float(row.get("talk_sum") or 0) + float(row.get("hold_sum") or 0) + \
            float(row.get("outbound_talk") or 0)
    buckets = sorted(set(spent) | set(handle), key=str)
    table_rows = []
    for bucket in buckets:
        times = spent.get(bucket, dict.fromkeys(STATUSES, 0.0))
        on_calls = handle.get(bucket, 0.0)
        name = ctx.agent_names.get(bucket, bucket) if key == "agent" else bucket
        table_rows.append({key: name, "available_h": times["available"], "away_h": times["away"],
                           "dnd_h": times["dnd"], "handle_h": on_calls,
                           "occupancy": kpi.ratio(on_calls, times["available"])})
    columns = [col(key, key_kind(key), lang), col("available_h", "duration", lang), col("away_h", "duration", lang),
               col("dnd_h", "duration", lang), col("handle_h", "duration", lang), col("occupancy", "percent", lang)]
    sums = {f: sum(r[f] for r in table_rows) for f in ("available_h", "away_h", "dnd_h", "handle_h")}
    totals = {key: label("total", lang), **sums, "occupancy": kpi.ratio(sums["handle_h"], sums["available_h"])}
    return ReportResult("load", title("load", lang), params.to_json(), definitions(ctx.settings, "presence"),
                        [Table("load", title("load", lang), columns, table_rows, totals)],
                        [Chart("stacked", title("load", lang), "load", key, ("available_h", "away_h", "dnd_h"))])
