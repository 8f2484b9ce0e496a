"""Time per presence status per local day and agent, folded from the presence history (the load
report, and its daily rollup ``report_presence``)."""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from ctid.reports import queries as q

#: Statuses the load report counts time for (offline is the rest of the day).
STATUSES = ("available", "away", "dnd")


def fold(before: list[Any], changes: list[Any], first: date, last: date, zone: ZoneInfo,
         now: datetime) -> dict[tuple[str, str, str], float]:
    """{(local date, agent, status): seconds} over the local days ``first`` .. ``last``. ``before``: each
    agent's last change before ``first``; ``changes``: the changes of the period, ordered per agent."""
    days = [first + timedelta(days=i) for i in range((last - first).days + 2)]
    bounds = [datetime.combine(day, time(), zone).astimezone(UTC).timestamp() for day in days]
    labels = [day.isoformat() for day in days]
    lo, hi = bounds[0], bounds[-1]
    spent: dict[tuple[str, str, str], float] = {}
    last_before = {row.agent_id: row for row in before}
    by_agent: dict[str, list[Any]] = {agent: [row] for agent, row in sorted(last_before.items())}
    for row in changes:
        by_agent.setdefault(row.agent_id, []).append(row)
    end = min(hi, now.timestamp())
    for agent, items in by_agent.items():
        for current, following in zip(items, [*items[1:], None], strict=True):
            if current.status not in STATUSES:
                continue
            since = max(current.at.timestamp(), lo)
            until = min(following.at.timestamp() if following is not None else end, hi)
            index = bisect_right(bounds, since) - 1
            while since < until:  # split at local midnights
                piece_end = min(until, bounds[index + 1])
                cell = (labels[index], agent, current.status)
                spent[cell] = spent.get(cell, 0.0) + piece_end - since
                since, index = piece_end, index + 1
    return spent


def fold_from(conn: Connection, first: date, last: date, zone: ZoneInfo) -> dict[tuple[str, str, str], float]:
    """:func:`fold` of the stored history (blocking)."""
    start = datetime.combine(first, time(), zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), zone).astimezone(UTC)
    before = list(conn.execute(q.presence_before(start)))
    changes = list(conn.execute(q.presence_changes(start, end)))
    return fold(before, changes, first, last, zone, datetime.now(UTC))
