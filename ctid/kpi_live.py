"""Live KPIs computed by the server from the switchboard's state (not by the browser): calls ringing
now, agents by state, and today's figures (local day of ``reports.timezone``) with the formulas of
the reports (ctid.kpi). Pushed to supervisors as ``kpisUpdated`` when they change, at most every
``reports.live_interval`` seconds; today's figures are seeded from the store at start, so a restart
does not reset "today"."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import trio

from ctid import kpi
from ctid.model import Call, CallState, Direction, Outcome, iso, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Today:
    """What one call of today contributes."""

    day: date
    inbound: bool
    answered: bool  # an agent answered (the call may still be talking)
    ended: bool
    wait: float | None
    talk: float | None
    group: str | None


class LiveKPIs:
    """``observe`` every switchboard change; ``snapshot()`` is the ``kpisUpdated`` payload."""

    def __init__(self, switchboard: Any, settings: Any, clock: Callable[[], datetime] = utcnow):
        self.switchboard = switchboard
        self.settings = settings
        self.zone = ZoneInfo(settings.timezone)
        self.clock = clock
        self._today: dict[str, _Today] = {}
        self._changed = trio.Event()
        self.published = 0

    def today(self) -> date:
        return self.clock().astimezone(self.zone).date()

    def local_midnight(self) -> datetime:
        return datetime.combine(self.today(), time(), self.zone).astimezone(UTC)

    # -- input -----------------------------------------------------------------------------------
    def note(self, call: Call) -> None:
        start = call.started_at or call.answered_at
        if start is None or call.state is CallState.RINGING:
            self._today.pop(call.id, None)
            return
        answered = call.outcome is Outcome.ANSWERED if call.state is CallState.ENDED else call.answered_at is not None
        if answered and self.settings.answered_min_talk_seconds and call.state is CallState.ENDED:
            answered = (call.talk_seconds or 0) >= self.settings.answered_min_talk_seconds
        self._today[call.id] = _Today(
            day=start.astimezone(self.zone).date(), inbound=call.direction is Direction.INBOUND, answered=answered,
            ended=call.state is CallState.ENDED, wait=call.wait_seconds, talk=call.talk_seconds, group=call.group)

    def seed(self, calls: Iterable[Call]) -> None:
        for call in calls:
            self.note(call)

    def observe(self, changes: Any) -> None:
        """Take a switchboard ``Changes``; wakes the publisher when anything it shows moved."""
        for call in changes.calls:
            self.note(call)
        if changes.calls or changes.agents:
            self._changed.set()

    # -- output ----------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        s = self.settings
        today = self.today()
        items = [t for t in self._today.values() if t.day == today]
        for stale in [cid for cid, t in self._today.items() if t.day < today]:
            del self._today[stale]
        inbound = [t for t in items if t.inbound]
        answered = [t for t in inbound if t.answered]
        unanswered = [t for t in inbound if t.ended and not t.answered]
        short = [t for t in unanswered if (t.wait or 0) < s.short_abandon_seconds]
        abandoned = [t for t in unanswered if (t.wait or 0) >= s.short_abandon_seconds]
        offered = len(answered) + len(abandoned)
        in_sl = sum(1 for t in answered if (t.wait or 0) <= s.service_level_seconds)
        ab_in_sl = sum(1 for t in abandoned if (t.wait or 0) <= s.service_level_seconds)
        talks = [t.talk for t in items if t.ended and t.answered and t.talk is not None]
        waits = [t.wait for t in answered if t.wait is not None]
        sb = self.switchboard
        live = [c for c in sb.calls.values() if c.state is not CallState.ENDED]
        ringing = [c for c in live if c.state is CallState.RINGING]
        queues: dict[str, dict[str, Any]] = {}
        for call in ringing:
            queue = queues.setdefault(call.group or "", {"ringing": 0, "oldest_since": None})
            queue["ringing"] += 1
            since = iso(call.started_at)
            if since and (queue["oldest_since"] is None or since < queue["oldest_since"]):
                queue["oldest_since"] = since
        agents = list(sb.agents.values())
        oldest = min((q["oldest_since"] for q in queues.values() if q["oldest_since"]), default=None)
        return {
            "at": iso(self.clock()),
            "day": today.isoformat(),
            "timezone": s.timezone,
            "now": {
                "ringing": len(ringing),
                "talking": sum(1 for c in live if c.state in (CallState.TALKING, CallState.HELD)),
                "oldest_ringing_since": oldest,
                "queues": queues,
                "agents": {
                    "busy": sum(1 for a in agents if a.busy),
                    "available": sum(1 for a in agents if a.free),
                    "away": sum(1 for a in agents if not a.busy and a.status.value == "away"),
                    "dnd": sum(1 for a in agents if not a.busy and a.status.value == "dnd"),
                    "online": sum(1 for a in agents if a.busy or a.status.value != "offline"),
                },
            },
            "today": {
                "offered": offered,
                "answered": len(answered),
                "missed": len(abandoned),
                "short_abandons": len(short),
                "answer_rate": kpi.ratio(len(answered), offered),
                "service_level": kpi.service_level(in_sl, ab_in_sl, offered, len(abandoned), s.abandon_treatment),
                "asa": sum(waits) / len(waits) if waits else None,
                "avg_talk": sum(talks) / len(talks) if talks else None,
                "outbound": sum(1 for t in items if not t.inbound),
            },
            "definitions": {
                "service_level_seconds": s.service_level_seconds,
                "short_abandon_seconds": s.short_abandon_seconds,
                "abandon_treatment": s.abandon_treatment,
            },
        }

    async def run(self, publish: Callable[[dict[str, Any]], None], *,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Publish a snapshot after changes: at once, then at most every ``live_interval`` seconds."""
        task_status.started()
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            try:
                publish(self.snapshot())
                self.published += 1
            except Exception:  # a publishing failure must not stop the live KPIs
                log.exception("publishing the live KPIs failed")
            await trio.sleep(self.settings.live_interval)
