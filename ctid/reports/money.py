"""Money reports: campaigns (calls, new contacts, cost, spend, won, ROI), call cost, and the sales
funnel with the CRM's stages read through ``CRMAdapter.sales_facts``."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from ctid import kpi
from ctid.errors import CtidError
from ctid.reports import queries as q
from ctid.reports.definitions import definitions, note
from ctid.reports.engine import ReportContext, col, key_kind, key_text, kpi_values, scope_of
from ctid.reports.labels import label, title
from ctid.reports.params import ReportParams
from ctid.reports.result import Chart, ReportResult, Table
from ctid.reports.rollup import cost_rows, kpi_rows, new_contacts

log = logging.getLogger(__name__)

#: Days after the period's end within which CRM records still count for its callers.
ATTRIBUTION_DAYS = 30


async def crm_facts(ctx: ReportContext, params: ReportParams, phones: list[str]) -> tuple[list[Any] | None, str]:
    """The CRM's sales facts for ``phones`` over the period (+ attribution window), or None and why not."""
    if ctx.sales_facts is None:
        return None, note("no_crm", params.lang)
    if not phones:
        return [], ""
    since = ctx.local_start(params.date_from)
    until = ctx.local_start(params.date_to + timedelta(days=1)) + timedelta(days=ATTRIBUTION_DAYS)
    try:
        return list(await ctx.sales_facts(sorted(set(phones)), since, until)), ""
    except CtidError as exc:
        log.warning("sales facts for the %s report failed: %s", params.name, exc)
        return None, note("crm_failed", params.lang, error=exc.error_id)


def _fact_counts(facts: list[Any]) -> dict[str, Any]:
    seen: dict[str, set[str]] = {}
    revenue = 0.0
    for fact in facts:
        seen.setdefault(fact.kind, set()).add(fact.record_id)
        if fact.kind == "won" and fact.amount is not None:
            revenue += fact.amount
    opportunities = seen.get("opportunity", set()) | seen.get("won", set()) | seen.get("lost", set())
    return {"contacts": len(seen.get("contact", set())), "leads": len(seen.get("lead", set())),
            "opportunities": len(opportunities), "won": len(seen.get("won", set())), "revenue": round(revenue, 2)}


async def campaigns_report(ctx: ReportContext, params: ReportParams) -> ReportResult:
    lang, key = params.lang, params.group_by
    scope = scope_of(params)
    rows = await kpi_rows(ctx, scope, key)
    new = await new_contacts(ctx, scope, key)
    # the callers' numbers are only needed to ask the CRM
    callers = await ctx.rows(q.callers(scope, ctx.knobs, key)) if ctx.sales_facts is not None else []
    facts, note = await crm_facts(ctx, params, [row.remote_number for row in callers])
    first_key: dict[str, tuple[float, Any]] = {}
    for row in callers:  # a caller belongs to the campaign of their first target call
        if row.remote_number not in first_key or row.first_epoch < first_key[row.remote_number][0]:
            first_key[row.remote_number] = (row.first_epoch, row.key)
    crm: dict[Any, list[Any]] = {}
    for fact in facts or []:
        if fact.phone in first_key:
            crm.setdefault(first_key[fact.phone][1], []).append(fact)
    spend = {c.name: c.spend for c in ctx.settings.campaigns} if key == "campaign" else {}
    figures = [("offered", "int"), ("new_contacts", "int"), ("answered", "int"), ("missed", "int"),
               ("target", "int"), ("cost", "money"), ("spend", "money"), ("leads", "int"), ("won", "int"),
               ("revenue", "money"), ("cost_per_call", "money"), ("cpl", "money"), ("roi", "percent")]
    table_rows = []
    totals = dict.fromkeys((f for f, _ in figures), 0)
    for row in rows:
        values = kpi_values(row, ctx.settings)
        counts = _fact_counts(crm.get(row.key, [])) if facts is not None else {}
        money = (values["cost"] or 0.0) + spend.get(row.key, 0.0)
        item = {"offered": values["offered"], "new_contacts": new.get(row.key, 0), "answered": values["answered"],
                "missed": values["missed"], "target": values["target"], "cost": values["cost"],
                "spend": spend.get(row.key) if key == "campaign" else None,
                "leads": counts.get("leads"), "won": counts.get("won"), "revenue": counts.get("revenue")}
        table_rows.append({key: key_text(key, row.key, lang), **item, **_unit_costs(money, item)})
        for f in ("offered", "new_contacts", "answered", "missed", "target", "cost", "spend", "leads", "won",
                  "revenue"):
            totals[f] = (totals[f] or 0) + (item[f] or 0)
    table_rows.sort(key=lambda r: -r["offered"])
    total_money = (totals["cost"] or 0.0) + (totals["spend"] or 0.0)
    totals.update(_unit_costs(total_money, totals))
    if facts is None:
        totals.update(leads=None, won=None, revenue=None, cpl=None, roi=None)
    totals[key] = label("total", lang)
    columns = [col(key, "text", lang)] + [col(f, kind, lang) for f, kind in figures]
    return ReportResult("campaigns", title("campaigns", lang), params.to_json(),
                        definitions(ctx.settings, lang, "campaign", "offered", "answered", "target", "cost"),
                        [Table("campaigns", title("campaigns", lang), columns, table_rows, totals)],
                        [Chart("bar", title("campaigns", lang), "campaigns", key, ("offered", "answered"))],
                        notes=[note] if note else [])


def _unit_costs(money: float, item: dict[str, Any]) -> dict[str, Any]:
    revenue = item.get("revenue")
    return {"cost_per_call": kpi.ratio(money, item["offered"]) if money else None,
            "cpl": kpi.ratio(money, item.get("leads")) if money and item.get("leads") else None,
            "roi": kpi.ratio((revenue or 0.0) - money, money) if money and revenue is not None else None}


async def cost_report(ctx: ReportContext, params: ReportParams) -> ReportResult:
    lang, key = params.lang, params.group_by
    rows = await cost_rows(ctx, scope_of(params), key)
    table_rows = []
    for row in sorted(rows, key=lambda r: (r.key is None, str(r.key), r.cost_currency or "")):
        name = ctx.agent_names.get(row.key, row.key) if key == "agent" else row.key
        table_rows.append({key: key_text(key, name, lang), "currency": row.cost_currency, "calls": row.calls,
                           "priced": row.priced, "billed_minutes": round(float(row.talk or 0) / 60, 2),
                           "cost": round(float(row.cost), 2) if row.cost is not None else None,
                           "avg_cost": kpi.ratio(row.cost, row.priced)})
    columns = [col(key, key_kind(key), lang), col("currency", "text", lang), col("calls", "int", lang),
               col("priced", "int", lang), col("billed_minutes", "float", lang), col("cost", "money", lang),
               col("avg_cost", "money", lang)]
    return ReportResult("cost", title("cost", lang), params.to_json(), definitions(ctx.settings, lang, "cost"),
                        [Table("cost", title("cost", lang), columns, table_rows)],
                        [Chart("bar", title("cost", lang), "cost", key, ("cost",))])


async def funnel_report(ctx: ReportContext, params: ReportParams) -> ReportResult:
    lang = params.lang
    key = None if params.group_by == "none" else params.group_by
    scope = scope_of(params)
    totals_rows = await kpi_rows(ctx, scope, key)
    # distinct target callers: only with a CRM to ask (a costly distinct count over the period otherwise)
    callers = await ctx.rows(q.callers(scope, ctx.knobs, key)) if ctx.sales_facts is not None else []
    facts, note = await crm_facts(ctx, params, [row.remote_number for row in callers])
    stages = ["offered", "answered", "target", "target_callers", "contacts", "leads", "opportunities", "won"]
    groups: dict[Any, dict[str, Any]] = {}
    for row in totals_rows:
        values = kpi_values(row, ctx.settings)
        groups[row.key if key else None] = {s: values[s] for s in ("offered", "answered", "target")}
    numbers: dict[Any, set[str]] = {}
    for row in callers:
        numbers.setdefault(row.key if key else None, set()).add(row.remote_number)
    table_rows = []
    for group, values in sorted(groups.items(), key=lambda item: str(item[0])):
        phones = numbers.get(group, set())
        counts = _fact_counts([f for f in facts or [] if f.phone in phones]) if facts is not None else {}
        figures = {**values, "target_callers": len(phones) if facts is not None else None, **counts}
        previous = None
        for stage in stages:
            count = figures.get(stage)
            row = {"stage": label(stage, lang), "count": count,
                   "conversion": kpi.ratio(count, previous) if previous is not None and count is not None else None}
            if key:
                row = {key: key_text(key, group, lang), **row}
            table_rows.append(row)
            previous = count if count is not None else previous
        if not key and facts is not None:
            table_rows.append({"stage": label("revenue", lang), "count": counts.get("revenue"), "conversion": None})
    columns = ([col(key, "text", lang)] if key else []) + [col("stage", "text", lang), col("count", "float", lang),
                                                           col("conversion", "percent", lang)]
    return ReportResult("funnel", title("funnel", lang), params.to_json(),
                        definitions(ctx.settings, lang, "offered", "answered", "target", "funnel"),
                        [Table("funnel", title("funnel", lang), columns, table_rows)],
                        [Chart("hbar", title("funnel", lang), "funnel", "stage", ("count",))] if not key else [],
                        notes=[note] if note else [])

