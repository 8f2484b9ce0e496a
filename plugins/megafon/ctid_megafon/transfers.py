"""Transferred calls: the second leg (``second_callid``) joins its primary call, whatever order pushes race in.

``TRANSFERRED`` (callid A, ``second_callid`` B) says that leg B, rung at the transfer target, belongs
to call A. It names who transferred, not the target: the TRANSFER is held until the next agent of
the call rings or answers, then emitted with that agent as target (reference §3.3, §6.3).

B's own pushes race A's over separate HTTP requests (§6.1), so B's ``INCOMING`` can arrive before
the ``TRANSFERRED`` that explains it. Emitted at once, it would open a phantom call B that nothing
ever ends. So a push for a call id ctid has not seen yet, from a number that is talking on another
call right now, waits up to ``window`` seconds: a ``TRANSFERRED`` naming it releases it into the
primary call; otherwise it is released as a call of its own (a second call from a number that is
already talking, say a company's shared caller id, is rare, and its pop-up comes ``window`` late).
A ``TRANSFERRED`` later than the window no longer joins that leg: its events have already made a
call of their own, which keeps receiving them and ends normally.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ctid.model import CallEvent, EventKind
from ctid_megafon.legs import LegTracker

_NUDGE = timedelta(milliseconds=1)
MEMORY = 20_000  # calls whose transfer aliases / pending transfers / verdicts are remembered


def remember(table: dict[str, Any], key: str, value: Any) -> None:
    """Insert into a bounded, insertion-ordered table (oldest entries go first)."""
    table.pop(key, None)
    table[key] = value
    while len(table) > MEMORY:
        del table[next(iter(table))]


@dataclass(slots=True)
class _Held:
    until: float  # trio clock
    events: list[CallEvent] = field(default_factory=list)


class Transfers:
    """Aliases (second leg -> primary call), TRANSFERs waiting for a target, and held early legs."""

    def __init__(self, legs: LegTracker, window: float):
        self.legs = legs
        self.window = window
        self.aliases: dict[str, str] = {}  # second_callid -> primary callid
        self._pending: dict[str, CallEvent] = {}  # primary callid -> TRANSFER waiting for its target
        self._held: dict[str, _Held] = {}  # unknown callid -> its events, waiting for a TRANSFERRED
        self._own: dict[str, None] = {}  # callids released as calls of their own (never aliased later)
        self._replay: dict[str, list[CallEvent]] = {}  # second leg -> what its TRANSFERRED released
        # (until, seq, callid, held) per held leg, so each push need not look at every held leg;
        # a leg claimed by its TRANSFERRED leaves a stale entry, dropped when it reaches the top.
        self._until: list[tuple[float, int, str, _Held]] = []
        self._seq = itertools.count()

    def primary(self, callid: str) -> str:
        return self.aliases.get(callid, callid)

    # -- incoming pushes -------------------------------------------------------------------------
    def hold(self, event: CallEvent, now: float) -> bool:
        """Keep ``event`` back if it may be an early push of a transfer's second leg."""
        callid = event.pbx_call_id
        held = self._held.get(callid)
        if held is not None:
            held.events.append(event)
            return True
        if (self.window <= 0 or callid in self.aliases or callid in self._own or self.legs.knows(callid)
                or not event.remote_number or event.kind in (EventKind.TRANSFER, EventKind.SUMMARY)):
            return False
        if not self.legs.talking_with(event.remote_number, besides=callid):
            return False
        held = self._held[callid] = _Held(until=now + self.window, events=[event])
        heapq.heappush(self._until, (held.until, next(self._seq), callid, held))
        return True

    def transferred(self, event: CallEvent) -> list[CallEvent]:
        """Record a TRANSFER (already moved to its primary call); return the second leg's held events."""
        second = event.leg_id
        if second and second not in self._own:
            remember(self.aliases, second, event.pbx_call_id)
        if second not in self._replay:
            remember(self._pending, event.pbx_call_id, event)
        held = self._held.pop(second, None) if second else None
        return held.events if held is not None else []

    def released(self, second: str | None, events: list[CallEvent]) -> list[CallEvent]:
        """What a TRANSFERRED released, again when it is redelivered (its first answer may have failed)."""
        if second is None:
            return events
        if events:
            remember(self._replay, second, events)
            return events
        return list(self._replay.get(second, []))

    def target(self, event: CallEvent) -> CallEvent | None:
        """The pending TRANSFER of ``event``'s call, completed with ``event``'s agent as target."""
        pending = self._pending.get(event.pbx_call_id)
        if (pending is None or event.kind not in (EventKind.RING, EventKind.ANSWER) or not event.agent_login
                or event.agent_login == pending.agent_login):
            return None
        del self._pending[event.pbx_call_id]
        # The transfer started the target's leg: it comes before that leg's first event even when
        # the leg's pushes overtook the TRANSFERRED.
        at = min(pending.received_at, event.received_at - _NUDGE)
        return dataclasses.replace(pending, target_login=event.agent_login, received_at=at)

    # -- held legs that no TRANSFERRED claimed ---------------------------------------------------
    def next_deadline(self) -> float | None:
        heap = self._until
        while heap and self._held.get(heap[0][2]) is not heap[0][3]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def expired(self, now: float) -> list[CallEvent]:
        """Events of held legs whose window passed: they are calls of their own."""
        heap, due = self._until, []
        while heap and heap[0][0] <= now:
            _, seq, callid, held = heapq.heappop(heap)
            if self._held.get(callid) is held:
                due.append((seq, callid))
        due.sort()  # in the order they were held
        out: list[CallEvent] = []
        for _, callid in due:
            out.extend(self._held.pop(callid).events)
            remember(self._own, callid, None)
        return out


def joined(event: CallEvent, primary: str) -> CallEvent:
    """``event`` of a second leg, moved into its primary call (its own id kept as ``leg_callid``)."""
    if primary == event.pbx_call_id:
        return event
    return dataclasses.replace(event, pbx_call_id=primary, extra={**event.extra, "leg_callid": event.pbx_call_id})
