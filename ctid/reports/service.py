"""Wiring of the report engine for the CLI and the web: a ReportContext from the configuration,
one call that checks parameters, runs the report and renders it."""

from __future__ import annotations

from typing import Any

from ctid.reports.engine import ReportContext, run_report
from ctid.reports.params import check_format, parse
from ctid.reports.render import CONTENT_TYPES, filename, render


def sales_facts_of(crm: Any) -> Any:
    """The CRM's ``sales_facts`` when it declares the capability, else None."""
    if crm is None:
        return None
    supports = getattr(crm, "supports", None)
    if callable(supports) and supports("sales_facts"):
        return crm.sales_facts
    return None


def context_for(settings: Any, engine: Any, crm: Any = None, limiter: Any = None) -> ReportContext:
    """``settings``: the whole ctid.config Settings (``settings.core``)."""
    core = settings.core
    names = {agent_id: agent.name for agent_id, agent in core.agents.items()}
    return ReportContext(engine, core.reports, names, sales_facts_of(crm), limiter)


async def produce(ctx: ReportContext, name: Any, fmt: Any, **raw: Any) -> tuple[bytes, str, str]:
    """Check the parameters (RequestError with a stable id), run the report and render it.
    Returns (body, content type, file name)."""
    fmt = check_format(fmt)
    params = parse(name, max_days=ctx.settings.max_days, **raw)
    result = await run_report(ctx, params)
    return render(result, fmt), CONTENT_TYPES[fmt], filename(result, fmt)
