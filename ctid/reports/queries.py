"""Every SQL statement of the reports, each built by one function from plain values (SQLAlchemy
Core), portable to SQLite, PostgreSQL and MS SQL: group by the stored local columns, count with
``sum(case ...)``, divide in Python, percentiles from a per-second histogram (docs/reports.md).
``BUILDERS`` lists them; ``tests/reports/test_queries_mssql.py`` compiles each one for MS SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Integer, Select, and_, case, cast, func, literal, or_, select

from ctid.store.schema import calls, presence_history

INBOUND = "inbound"
OUTBOUND = "outbound"


@dataclass(frozen=True, slots=True)
class Knobs:
    """The KPI settings a statement depends on (``reports:`` in the configuration)."""

    service_level_seconds: float = 20
    short_abandon_seconds: float = 5
    answered_min_talk_seconds: float = 0
    short_call_seconds: float = 10
    target_talk_seconds: float = 30

    @classmethod
    def from_config(cls, reports: Any) -> Knobs:
        return cls(reports.service_level_seconds, reports.short_abandon_seconds, reports.answered_min_talk_seconds,
                   reports.short_call_seconds, reports.target_talk_seconds)


@dataclass(frozen=True, slots=True)
class Scope:
    """Which calls: local dates ``first`` .. ``last`` (inclusive), optionally one agent / group."""

    first: date
    last: date
    agent: str | None = None
    group: str | None = None


def _one(cond: Any) -> Any:
    return func.sum(case((cond, 1), else_=0))


def _sum_if(cond: Any, value: Any) -> Any:
    return func.sum(case((cond, value), else_=None))


def wait_seconds_int() -> Any:
    """Whole seconds of wait (the histogram bucket)."""
    return cast(func.coalesce(calls.c.wait_seconds, 0), Integer)


def answered(knobs: Knobs, table: Any = calls) -> Any:
    return _answered(knobs, table)


def _answered(knobs: Knobs, table: Any = calls) -> Any:
    cond = table.c.outcome == "answered"
    if knobs.answered_min_talk_seconds > 0:
        cond = and_(cond, func.coalesce(table.c.talk_seconds, 0) >= knobs.answered_min_talk_seconds)
    return cond


def _ended(table: Any = calls) -> Any:
    return table.c.state == "ended"


def where(scope: Scope, table: Any = calls) -> list[Any]:
    conditions = [table.c.local_date >= scope.first.isoformat(), table.c.local_date <= scope.last.isoformat(),
                  _ended(table)]
    if scope.agent is not None:
        conditions.append(or_(table.c.answered_by == scope.agent, table.c.agent == scope.agent))
    if scope.group is not None:
        conditions.append(table.c.group_name == scope.group)
    return conditions


def kpi_columns(knobs: Knobs) -> list[Any]:
    """The aggregate columns every call report starts from (one pass over the period's calls)."""
    c = calls.c
    inbound = c.direction == INBOUND
    answered = and_(inbound, _answered(knobs))
    unanswered = and_(inbound, ~_answered(knobs))
    wait = func.coalesce(c.wait_seconds, 0)
    short_abandon = and_(unanswered, wait < knobs.short_abandon_seconds)
    abandoned = and_(unanswered, wait >= knobs.short_abandon_seconds)
    talk = func.coalesce(c.talk_seconds, 0)
    outbound = c.direction == OUTBOUND
    return [
        _one(inbound).label("offered_all"),
        _one(answered).label("answered"),
        _one(short_abandon).label("short_abandons"),
        _one(abandoned).label("abandoned"),
        _one(and_(answered, wait <= knobs.service_level_seconds)).label("answered_in_sl"),
        _one(and_(abandoned, wait <= knobs.service_level_seconds)).label("abandoned_in_sl"),
        _sum_if(abandoned, c.wait_seconds).label("abandon_wait_sum"),
        _sum_if(answered, c.wait_seconds).label("wait_sum"),
        func.max(case((answered, c.wait_seconds), else_=None)).label("wait_max"),
        _sum_if(answered, c.talk_seconds).label("talk_sum"),
        _sum_if(answered, c.hold_seconds).label("hold_sum"),
        _one(and_(answered, talk < knobs.short_call_seconds)).label("short_calls"),
        _one(and_(answered, talk >= knobs.target_talk_seconds)).label("target"),
        func.sum(c.transfers).label("transfers"),
        _one(outbound).label("outbound"),
        _one(and_(outbound, c.outcome == "answered")).label("outbound_connected"),
        _sum_if(outbound, c.talk_seconds).label("outbound_talk"),
        func.sum(c.rating).label("rating_sum"),
        func.count(c.rating).label("rating_n"),
        func.sum(c.cost).label("cost_sum"),
    ]


#: Grouping keys a report may use (``--group-by``), as expressions over ``calls``.
KEYS: dict[str, Any] = {
    "day": calls.c.local_date,
    "hour": calls.c.local_hour,
    "weekday": calls.c.local_weekday,
    "group": calls.c.group_name,
    "agent": func.coalesce(calls.c.answered_by, calls.c.agent),
    "campaign": calls.c.campaign,
    "channel": calls.c.channel,
    "utm_source": calls.c.utm_source,
    "utm_medium": calls.c.utm_medium,
    "utm_campaign": calls.c.utm_campaign,
    "line": calls.c.line_number,
    "direction": calls.c.direction,
    "cost_source": calls.c.cost_source,
}


def kpis(scope: Scope, knobs: Knobs, key: str | None = None) -> Select:
    """The KPI aggregates of the scope's calls, per ``key`` (``KEYS``) or in total."""
    columns = kpi_columns(knobs)
    if key is None:
        return select(*columns).where(*where(scope))
    expr = KEYS[key]
    return select(expr.label("key"), *columns).where(*where(scope)).group_by(expr).order_by(expr)


def wait_histogram(scope: Scope, knobs: Knobs, key: str | None = None) -> Select:
    """Answered inbound calls per whole second of wait (per ``key``), for exact percentiles in Python."""
    seconds = cast(func.coalesce(calls.c.wait_seconds, 0), Integer)
    cond = [*where(scope), calls.c.direction == INBOUND, _answered(knobs)]
    expr = KEYS[key] if key else literal("all")
    return (select(expr.label("key"), seconds.label("seconds"), func.count().label("n")).where(*cond)
            .group_by(expr, seconds))


def missed_followups(scope: Scope, knobs: Knobs) -> Select:
    """Each missed inbound call of the scope (short abandons included, flagged by its wait) with the
    first answered call with the same number after it: when, which direction, who answered."""
    m = calls.alias("m")
    f = calls.alias("f")
    nxt = (select(func.min(f.c.started_epoch))
           .where(f.c.remote_number == m.c.remote_number, f.c.started_epoch > m.c.started_epoch,
                  f.c.outcome == "answered")
           .scalar_subquery())
    g = calls.alias("g")
    base = (select(m.c.id, m.c.local_date, m.c.group_name, m.c.agent, m.c.wait_seconds, m.c.started_epoch,
                   m.c.ended_epoch, m.c.local_minute, m.c.local_weekday, m.c.remote_number,
                   nxt.label("next_epoch"))
            .where(*where(scope, m), m.c.direction == INBOUND, ~_answered(knobs, m), m.c.remote_number.is_not(None))
            .subquery("missed"))
    return (select(base, g.c.direction.label("next_direction"), g.c.answered_by.label("next_agent"),
                   g.c.agent.label("next_dialer"))
            .select_from(base.outerjoin(g, and_(g.c.remote_number == base.c.remote_number,
                                                g.c.started_epoch == base.c.next_epoch,
                                                g.c.outcome == "answered"))))


def new_contacts(scope: Scope, key: str, by_day: bool = False) -> Select:
    """Inbound calls of the scope that are a caller's first: the PBX said so (``new_contact``), or,
    where it said nothing, no earlier call with that number is stored."""
    c = calls.c
    p = calls.alias("p")
    earlier = select(p.c.id).where(p.c.remote_number == c.remote_number, p.c.started_epoch < c.started_epoch)
    first = or_(c.new_contact == True,  # noqa: E712  (SQL, not Python truthiness)
                and_(c.new_contact.is_(None), c.remote_number.is_not(None), ~earlier.exists()))
    expr = KEYS[key]
    days = [c.local_date] if by_day else []
    return (select(*days, expr.label("key"), func.count().label("n"))
            .where(*where(scope), c.direction == INBOUND, first).group_by(*days, expr))


def callers(scope: Scope, knobs: Knobs, key: str | None) -> Select:
    """Distinct caller numbers of answered target calls (for the CRM funnel), with their key."""
    c = calls.c
    expr = KEYS[key] if key else literal("all")
    talk = func.coalesce(c.talk_seconds, 0)
    return (select(c.remote_number, expr.label("key"), func.min(c.started_epoch).label("first_epoch"))
            .where(*where(scope), c.direction == INBOUND, _answered(knobs), talk >= knobs.target_talk_seconds,
                   c.remote_number.is_not(None))
            .group_by(c.remote_number, expr))


def cost_by(scope: Scope, key: str, by_day: bool = False) -> Select:
    """Calls, priced calls, cost and talk per ``key`` and currency (and local date)."""
    c = calls.c
    expr = KEYS[key]
    days = [c.local_date] if by_day else []
    return (select(*days, expr.label("key"), c.cost_currency, func.count().label("calls"),
                   func.count(c.cost).label("priced"), func.sum(c.cost).label("cost"),
                   func.sum(func.coalesce(c.talk_seconds, 0)).label("talk"))
            .where(*where(scope)).group_by(*days, expr, c.cost_currency))


def presence_changes(since: datetime, until: datetime) -> Select:
    """The presence changes of ``[since, until)``, ordered per agent (folded into time per state)."""
    h = presence_history.c
    return select(h.agent_id, h.status, h.at).where(h.at >= since, h.at < until).order_by(h.agent_id, h.at, h.id)


def presence_before(since: datetime) -> Select:
    """Each agent's last presence change before ``since``: its state when the period starts."""
    last = (select(presence_history.c.agent_id, func.max(presence_history.c.at).label("at"))
            .where(presence_history.c.at < since).group_by(presence_history.c.agent_id).subquery("last"))
    h = presence_history.c
    return (select(h.agent_id, h.status, h.at)
            .select_from(presence_history.join(last, and_(h.agent_id == last.c.agent_id, h.at == last.c.at)))
            .order_by(h.agent_id, h.at, h.id))


_S = Scope(date(2026, 1, 1), date(2026, 1, 31), agent="a", group="g")
_K = Knobs(answered_min_talk_seconds=3)

#: name -> a zero-argument builder of an example statement (compiled for every dialect in tests).
BUILDERS = {
    "kpis": lambda: kpis(_S, _K),
    **{f"kpis_by_{key}": (lambda key=key: kpis(_S, _K, key)) for key in KEYS},
    "wait_histogram": lambda: wait_histogram(_S, _K, "group"),
    "wait_histogram_total": lambda: wait_histogram(_S, _K),
    "missed_followups": lambda: missed_followups(_S, _K),
    "new_contacts": lambda: new_contacts(_S, "campaign"),
    "new_contacts_by_day": lambda: new_contacts(_S, "campaign", by_day=True),
    "callers": lambda: callers(_S, _K, "campaign"),
    "cost_by": lambda: cost_by(_S, "agent"),
    "cost_by_day": lambda: cost_by(_S, "direction", by_day=True),
    "callers_total": lambda: callers(_S, _K, None),
    "presence_changes": lambda: presence_changes(datetime(2026, 1, 1).astimezone(), datetime(2026, 2, 1).astimezone()),
    "presence_before": lambda: presence_before(datetime(2026, 1, 1).astimezone()),
}
