"""The follow-up of missed calls, aggregated in SQL: classes (called back in time / late / customer
called again / not reached), working hours, callback delays and their histogram, callbacks per agent.
Every statement runs over a *source* with the columns of ``queries.missed_followups``: the kept rows
of closed days (``report_missed``) or the live query for the other days; results are merged."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, and_, case, cast, func, literal, or_, select

from ctid.reports.queries import OUTBOUND

IN_SLA, LATE, CUSTOMER, NOT_REACHED = "called_back_in_sla", "called_back_late", "customer_called", "not_reached"
CLASSES = (IN_SLA, LATE, CUSTOMER, NOT_REACHED)


def _one(cond: Any) -> Any:
    return func.sum(case((cond, 1), else_=0))


def _delay(src: Any) -> Any:
    """Seconds from the missed call's end to its follow-up (never negative)."""
    d = src.c.next_epoch - func.coalesce(src.c.ended_epoch, src.c.started_epoch, src.c.next_epoch)
    return case((d < 0, literal(0.0)), else_=d)


def _working(src: Any, settings: Any) -> Any:
    start, end = settings.working_hours.split("-")
    lo = int(start[:2]) * 60 + int(start[3:])
    hi = int(end[:2]) * 60 + int(end[3:])
    return or_(src.c.local_minute.is_(None), src.c.local_weekday.is_(None),
               and_(src.c.local_weekday.in_(list(settings.working_days)), src.c.local_minute >= lo,
                    src.c.local_minute < hi))


def _classes(src: Any, settings: Any) -> dict[str, Any]:
    reached = src.c.next_epoch.is_not(None)
    ours = and_(reached, src.c.next_direction == OUTBOUND)
    sla = settings.callback_sla_minutes * 60
    return {IN_SLA: and_(ours, _delay(src) <= sla), LATE: and_(ours, _delay(src) > sla),
            CUSTOMER: and_(reached, or_(src.c.next_direction.is_(None), src.c.next_direction != OUTBOUND)),
            NOT_REACHED: src.c.next_epoch.is_(None)}


def _counted(src: Any, settings: Any) -> Any:
    """Short abandons are not missed calls."""
    return func.coalesce(src.c.wait_seconds, 0) >= settings.short_abandon_seconds


def aggregate(src: Any, key: str | None, settings: Any) -> Any:
    """Per ``key`` column of the source (or in total) and minute of callback delay: missed, out of hours,
    each class, reached in time in working hours, working-hours missed, Σ and count of our callbacks'
    delays. Sum the rows of a key for its figures; ``minute`` and ``delay_n`` give the histogram."""
    classes = _classes(src, settings)
    working = _working(src, settings)
    ours = or_(classes[IN_SLA], classes[LATE])
    columns = [
        func.count().label("missed"),
        _one(~working).label("out_of_hours"),
        *(_one(cond).label(name) for name, cond in classes.items()),
        _one(and_(working, classes[IN_SLA])).label("reached_in_sla_n"),
        _one(working).label("working_n"),
        func.sum(case((ours, _delay(src)), else_=None)).label("delay_sum"),
        _one(ours).label("delay_n"),
    ]
    # our callbacks' delay in whole minutes (NULL for the other classes): the median's histogram comes
    # out of the same pass over the missed calls
    minute = case((ours, cast(_delay(src) / 60, Integer) * 60), else_=None)
    expr = src.c[key] if key else literal("")
    return (select(expr.label("key"), minute.label("minute"), *columns).select_from(src)
            .where(_counted(src, settings)).group_by(expr, minute))


def delay_histogram(src: Any, key: str | None, settings: Any) -> Any:
    """Our callbacks per whole minute of delay (per ``key``), for the median (``seconds`` = minutes × 60)."""
    classes = _classes(src, settings)
    seconds = cast(_delay(src) / 60, Integer) * 60
    expr = src.c[key] if key else literal("")
    return (select(expr.label("key"), seconds.label("seconds"), func.count().label("n")).select_from(src)
            .where(_counted(src, settings), or_(classes[IN_SLA], classes[LATE])).group_by(expr, seconds))


def callbacks_by_agent(src: Any, settings: Any) -> Any:
    """Callbacks done (our follow-ups, in time or late) per agent who made them, with Σ delay."""
    classes = _classes(src, settings)
    return (select(src.c.next_dialer.label("agent"), func.count().label("n"), func.sum(_delay(src)).label("delay"))
            .select_from(src)
            .where(_counted(src, settings), or_(classes[IN_SLA], classes[LATE]), src.c.next_dialer.is_not(None))
            .group_by(src.c.next_dialer))


def not_reached(src: Any, settings: Any, limit: int = 500) -> Any:
    """The latest missed calls nobody reached yet."""
    return (select(src.c.remote_number, src.c.started_epoch, src.c.group_name, src.c.agent).select_from(src)
            .where(_counted(src, settings), src.c.next_epoch.is_(None))
            .order_by(src.c.started_epoch.desc()).limit(limit))
