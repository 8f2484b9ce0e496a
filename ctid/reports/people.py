"""People reports: agents (manager quality), missed calls with their callback follow-up, and load
(time per presence status, occupancy)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ctid import kpi
from ctid.reports import followup as fu
from ctid.reports import queries as q
from ctid.reports.definitions import definitions
from ctid.reports.engine import ReportContext, col, key_kind, key_text, kpi_values, scope_of
from ctid.reports.followup import CUSTOMER, IN_SLA, LATE, NOT_REACHED
from ctid.reports.labels import label, title
from ctid.reports.params import ReportParams
from ctid.reports.presence import STATUSES
from ctid.reports.result import Chart, ReportResult, Table
from ctid.reports.rollup import kpi_rows, missed_sources, presence_seconds


async def missed_figures(ctx: ReportContext, params: ReportParams, key: str) -> tuple[dict[Any, dict[str, Any]],
                                                                                    dict[str, Any]]:
    """The missed-call figures per ``key`` (day / group / agent) and in total, merged over the kept and
    live sources (docs/reports.md, follow-up of a missed call): one pass per source."""
    field = {"day": "local_date", "group": "group_name", "agent": "agent"}[key]
    sums: dict[Any, dict[str, Any]] = {}
    hist: dict[Any, list[tuple[int, int]]] = {}
    for source in await missed_sources(ctx, scope_of(params)):
        for row in await ctx.rows(fu.aggregate(source, field, ctx.settings)):
            into = sums.setdefault(row.key, {})
            for name, value in row._mapping.items():
                if name not in ("key", "minute") and value is not None:
                    into[name] = into.get(name, 0) + value
            if row.minute is not None:
                hist.setdefault(row.key, []).append((row.minute, int(row.delay_n)))
    total: dict[str, Any] = {}
    for v in sums.values():
        for name, value in v.items():
            total[name] = total.get(name, 0) + value

    def figures(v: dict[str, Any], pairs: list[tuple[int, int]]) -> dict[str, Any]:
        n = lambda name: int(v.get(name) or 0)  # noqa: E731
        return {"missed": n("missed"), "out_of_hours": n("out_of_hours"), **{c: n(c) for c in fu.CLASSES},
                "reached_in_sla": kpi.ratio(n("reached_in_sla_n"), n("working_n")),
                "callback_avg": kpi.mean(v.get("delay_sum"), n("delay_n")),
                "callback_median": kpi.percentile(pairs, 50)}

    everything = [pair for pairs in hist.values() for pair in pairs]
    return {k: figures(v, hist.get(k, [])) for k, v in sums.items()}, figures(total, everything)


async def missed_report(ctx: ReportContext, params: ReportParams) -> ReportResult:
    lang, key = params.lang, params.group_by
    settings = ctx.settings
    figures = [("missed", "int"), ("out_of_hours", "int"), (IN_SLA, "int"), (LATE, "int"), (CUSTOMER, "int"),
               (NOT_REACHED, "int"), ("reached_in_sla", "percent"), ("callback_avg", "duration"),
               ("callback_median", "duration")]
    by_key, total = await missed_figures(ctx, params, key)
    table_rows = [{key: key_text(key, k, lang), **v}
                  for k, v in sorted(by_key.items(), key=lambda item: (item[0] is None, str(item[0])))]
    columns = [col(key, key_kind(key), lang)] + [col(f, kind, lang) for f, kind in figures]
    summary = Table("missed", title("missed", lang), columns, table_rows, {key: label("total", lang), **total})
    open_rows = []
    for source in await missed_sources(ctx, scope_of(params)):
        open_rows.extend(await ctx.rows(fu.not_reached(source, settings)))
    open_rows = sorted(open_rows, key=lambda r: r.started_epoch or 0)[-500:]
    detail = Table("followups", title("followups", lang),
                   [col("number", "text", lang), col("missed_at", "text", lang), col("group", "text", lang),
                    col("agent", "text", lang)],
                   [{"number": r.remote_number,
                     "missed_at": _local_text(ctx, r.started_epoch),
                     "group": r.group_name, "agent": ctx.agent_names.get(r.agent, r.agent)} for r in open_rows])
    return ReportResult("missed", title("missed", lang), params.to_json(),
                        definitions(settings, lang, "missed", "callbacks"), [summary, detail],
                        [Chart("stacked", title("missed", lang), "missed", key, (IN_SLA, LATE, CUSTOMER, NOT_REACHED))])


def _local_text(ctx: ReportContext, epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).astimezone(ctx.zone).strftime("%Y-%m-%d %H:%M:%S")


async def agents_report(ctx: ReportContext, params: ReportParams) -> ReportResult:
    lang = params.lang
    scope = q.Scope(params.date_from, params.date_to, agent=None, group=params.group)
    rows = await kpi_rows(ctx, scope, "agent")
    callbacks: dict[str, tuple[int, float]] = {}
    for source in await missed_sources(ctx, scope):
        for row in await ctx.rows(fu.callbacks_by_agent(source, ctx.settings)):
            n, delay = callbacks.get(row.agent, (0, 0.0))
            callbacks[row.agent] = (n + int(row.n), delay + float(row.delay or 0))
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
        done, delay = callbacks.get(row.key, (0, 0.0))
        values["callbacks"] = done
        values["callback_avg"] = delay / done if done else None
        table_rows.append({"agent": ctx.agent_names.get(row.key, row.key), **{f: values[f] for f, _ in figures}})
    table_rows.sort(key=lambda r: str(r["agent"]))
    columns = [col("agent", "text", lang)] + [col(f, kind, lang) for f, kind in figures]
    return ReportResult("agents", title("agents", lang), params.to_json(),
                        definitions(ctx.settings, lang, "agent", "answered", "asa", "avg_talk", "short_calls", "transfers",
                                    "outbound", "callbacks", "rating"),
                        [Table("agents", title("agents", lang), columns, table_rows)], [])




async def load_report(ctx: ReportContext, params: ReportParams) -> ReportResult:
    """Hours per presence status per day (or agent) from the presence history, and occupancy."""
    lang, key = params.lang, params.group_by
    spent: dict[Any, dict[str, float]] = {}
    for (day, agent, status), seconds in (await presence_seconds(ctx, params.date_from, params.date_to,
                                                                 params.agent)).items():
        bucket = day if key == "day" else agent
        spent.setdefault(bucket, dict.fromkeys(STATUSES, 0.0))[status] += seconds
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
    return ReportResult("load", title("load", lang), params.to_json(), definitions(ctx.settings, lang, "presence"),
                        [Table("load", title("load", lang), columns, table_rows, totals)],
                        [Chart("stacked", title("load", lang), "load", key, ("available_h", "away_h", "dnd_h"))])
