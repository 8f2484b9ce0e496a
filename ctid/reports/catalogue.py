"""The report catalogue: name -> how to build it and which ``--group-by`` values it takes (the first
is the default). Call-volume reports are here; people, money and CRM reports in sibling modules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ctid import kpi
from ctid.reports.definitions import definitions
from ctid.reports.engine import (
    ReportContext,
    col,
    key_kind,
    key_text,
    kpi_values,
    merge,
    scope_of,
)
from ctid.reports.labels import label, title
from ctid.reports.money import campaigns_report, cost_report, funnel_report
from ctid.reports.params import ReportParams
from ctid.reports.people import agents_report, load_report, missed_report
from ctid.reports.result import Chart, ReportResult, Table
from ctid.reports.rollup import kpi_rows, wait_histogram

Builder = Callable[[ReportContext, ReportParams], Awaitable[ReportResult]]


@dataclass(frozen=True)
class ReportSpec:
    build: Builder
    group_by: tuple[str, ...]
    summary: str  # one line for `ctid report --help`, the panel and the OpenAPI document


#: Figures of the call-volume reports: (figure key, kind).
_VOLUME = {
    "summary": [("offered", "int"), ("answered", "int"), ("missed", "int"), ("short_abandons", "int"),
                ("answer_rate", "percent"), ("service_level", "percent"), ("asa", "duration"),
                ("avg_talk", "duration"), ("outbound", "int"), ("cost", "money")],
    "by-group": [("offered", "int"), ("answered", "int"), ("missed", "int"), ("answer_rate", "percent"),
                 ("asa", "duration"), ("avg_talk", "duration"), ("transfers", "int")],
    "by-hour": [("offered", "int"), ("answered", "int"), ("missed", "int"), ("answer_rate", "percent"),
                ("asa", "duration")],
    "by-weekday": [("offered", "int"), ("answered", "int"), ("missed", "int"), ("answer_rate", "percent"),
                   ("asa", "duration")],
    "answer-rate": [("offered", "int"), ("answered", "int"), ("short_abandons", "int"), ("answer_rate", "percent"),
                    ("outbound", "int"), ("outbound_connected", "int"), ("outbound_rate", "percent")],
    "service-level": [("offered", "int"), ("answered_in_sl", "int"), ("abandoned_in_sl", "int"),
                      ("abandoned", "int"), ("service_level", "percent"), ("asa", "duration")],
    "abandon": [("offered", "int"), ("abandoned", "int"), ("short_abandons", "int"), ("abandon_rate", "percent"),
                ("abandoned_in_sl", "int"), ("avg_abandon_wait", "duration")],
}
_TERMS = {
    "summary": ("offered", "answered", "missed", "answer_rate", "service_level", "asa", "avg_talk", "cost"),
    "by-group": ("offered", "answered", "missed", "answer_rate", "asa", "avg_talk", "transfers"),
    "by-hour": ("offered", "answered", "missed", "answer_rate", "asa"),
    "by-weekday": ("offered", "answered", "missed", "answer_rate", "asa"),
    "answer-rate": ("offered", "answered", "answer_rate", "outbound"),
    "service-level": ("offered", "answered", "missed", "service_level", "asa"),
    "abandon": ("offered", "missed", "abandon_rate"),
}
_CHARTS = {
    "summary": ("stacked", ("answered", "missed")),
    "by-group": ("stacked", ("answered", "missed")),
    "by-hour": ("stacked", ("answered", "missed")),
    "by-weekday": ("stacked", ("answered", "missed")),
    "answer-rate": ("line", ("answer_rate",)),
    "service-level": ("line", ("service_level",)),
    "abandon": ("bar", ("abandoned", "short_abandons")),
}


def _fill_keys(group_by: str | None) -> list[Any]:
    if group_by == "hour":
        return list(range(24))
    if group_by == "weekday":
        return list(range(1, 8))
    return []


async def volume_report(ctx: ReportContext, params: ReportParams) -> ReportResult:
    """summary, by-group, by-hour, by-weekday, answer-rate, service-level, abandon: the same
    aggregate, per key, with the figures each report is about."""
    lang, name, group_by = params.lang, params.name, params.group_by
    scope = scope_of(params)
    figures = _VOLUME[name]
    key = None if group_by == "none" else group_by
    rows = await kpi_rows(ctx, scope, key) if key else []
    total = merge(rows) if key else (await kpi_rows(ctx, scope, None))[0]
    by_key = {row.key: kpi_values(row, ctx.settings) for row in rows}
    for filler in _fill_keys(key):
        by_key.setdefault(filler, kpi_values({}, ctx.settings))
    ordered = sorted(by_key.items(), key=lambda item: (item[0] is None, str(item[0]) if key not in
                                                       ("hour", "weekday") else item[0]))
    columns = [col(key or "key", key_kind(key), lang)] if key else []
    columns += [col(fig, kind, lang) for fig, kind in figures]
    table_rows = []
    for value, figs in ordered:
        row = {key: key_text(key, value, lang)} if key else {}
        row.update({fig: figs[fig] for fig, _ in figures})
        table_rows.append(row)
    totals_figs = kpi_values(total, ctx.settings)
    totals = {fig: totals_figs[fig] for fig, _ in figures}
    if key:
        totals[key] = label("total", lang)
    else:
        table_rows = [totals]
        totals = None
    table = Table(name, title(name, lang), columns, table_rows, totals)
    charts = []
    if key:
        kind, series = _CHARTS[name]
        charts.append(Chart(kind, title(name, lang), name, key, series))
    return ReportResult(name, title(name, lang), params.to_json(), definitions(ctx.settings, lang, *_TERMS[name]),
                        [table], charts)


async def queue_report(ctx: ReportContext, params: ReportParams) -> ReportResult:
    """Per group (or hour / day): offered, answered, abandoned, ASA, wait p50 / p90 / max, SL."""
    lang, key = params.lang, params.group_by
    scope = scope_of(params)
    rows = await kpi_rows(ctx, scope, key)
    hist = await wait_histogram(ctx, scope, key)
    all_hist = [pair for pairs in hist.values() for pair in pairs]
    total = merge(rows)
    figures = [("offered", "int"), ("answered", "int"), ("abandoned", "int"), ("short_abandons", "int"),
               ("asa", "duration"), ("wait_p50", "duration"), ("wait_p90", "duration"), ("wait_max", "duration"),
               ("service_level", "percent")]

    def figs(row: Any, pairs: list[tuple[float, int]]) -> dict[str, Any]:
        values = kpi_values(row, ctx.settings)
        values["wait_p50"] = kpi.percentile(pairs, 50)
        values["wait_p90"] = kpi.percentile(pairs, 90)
        return {fig: values[fig] for fig, _ in figures}

    by_key = {row.key: figs(row, hist.get(row.key, [])) for row in rows}
    for filler in _fill_keys(key):
        by_key.setdefault(filler, figs({}, []))
    table_rows = [{key: key_text(key, k, lang), **v} for k, v in
                  sorted(by_key.items(), key=lambda item: (item[0] is None, item[0] if key == "hour" else str(item[0])))]
    totals = {key: label("total", lang), **figs(total, all_hist)}
    columns = [col(key, key_kind(key), lang)] + [col(fig, kind, lang) for fig, kind in figures]
    table = Table("queue", title("queue", lang), columns, table_rows, totals)
    return ReportResult("queue", title("queue", lang), params.to_json(),
                        definitions(ctx.settings, lang, "offered", "missed", "asa", "percentiles", "service_level"),
                        [table], [Chart("line", label("asa", lang), "queue", key, ("asa", "wait_p90"))])


_KEYED = ("day", "group", "agent", "hour", "weekday", "campaign", "none")

#: Every report by name; the first ``group_by`` value is the default.
CATALOGUE: dict[str, ReportSpec] = {
    "summary": ReportSpec(volume_report, ("none", "day", "group", "agent", "campaign"),
                          "offered, answered, missed, answer rate, SL, ASA, talk, cost"),
    "load": ReportSpec(load_report, ("day", "agent"), "time per presence status and occupancy"),
    "queue": ReportSpec(queue_report, ("group", "hour", "day"), "waits: ASA, p50 / p90, longest, SL"),
    "by-group": ReportSpec(volume_report, ("group",), "groups compared"),
    "by-hour": ReportSpec(volume_report, ("hour",), "calls through the day"),
    "by-weekday": ReportSpec(volume_report, ("weekday",), "calls through the week"),
    "answer-rate": ReportSpec(volume_report, _KEYED, "inbound and outbound answer rates"),
    "service-level": ReportSpec(volume_report, _KEYED, "answered within the threshold"),
    "abandon": ReportSpec(volume_report, _KEYED, "abandoned and short-abandoned calls"),
    "agents": ReportSpec(agents_report, ("agent",), "manager quality per agent"),
    "missed": ReportSpec(missed_report, ("day", "group", "agent"), "missed calls and callback follow-up"),
    "campaigns": ReportSpec(campaigns_report, ("campaign", "utm_source", "utm_medium", "utm_campaign", "channel",
                                               "line"), "calls, new contacts, cost, won per campaign"),
    "cost": ReportSpec(cost_report, ("direction", "agent", "group", "campaign", "day", "cost_source"), "call cost"),
    "funnel": ReportSpec(funnel_report, ("none", "campaign"), "calls → target → CRM leads → won"),
}
