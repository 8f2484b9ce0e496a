"""Per-call leg bookkeeping for MegaFon's timestamp-less, racing ``event`` pushes.

MegaFon sends one ``event`` per leg without a time, over concurrent HTTP requests, so a leg's
``CANCELLED`` can arrive before its ``INCOMING`` (reference §6.1). The core orders such events by
receipt time; :class:`LegTracker` keeps each leg's own order right by moving a late, earlier-stage
event (RING after the leg's LEG_END, say) to just before the event that overtook it.

A queue may ring the same phone twice in one call (waterfall, round robin). The second ring's posts
are byte-identical to the first's, so the tracker counts rings per phone: a RING after that phone's
ring both rang and ended starts ring 2, whose events get keys suffixed ``:ring2`` (the first ring
keeps the post's own key, so a redelivered post while the ring lasts stays a duplicate).

It also runs the settle window: once every known leg of a call has ended and neither a new leg nor
``history`` came for ``settle_seconds``, the caller's own leg is closed with a synthetic
``leg_end`` (the caller leg exists when ``contact`` announced the call; without it the agents' leg
ends already ended the call). A leg end, unlike ``end``, lets the call revive if the PBX rings
someone again later; then the window re-arms once the revived legs have ended, and closes the call
again. ``history``, when it comes, stays authoritative and corrects everything. A
call announced only by ``contact`` that never reaches an agent is closed the same way after
``queue_timeout``, so tenants without history export do not keep it ringing forever.

Every push asks the tracker whether its number is talking on another call, and the settle loop,
woken by every push, asks which call is due next. The tracker answers both from indexes it keeps up
to date on each change of a call (a set of talking calls per number; a heap of settle deadlines),
not by scanning every tracked call: with 20,000 calls tracked a push costs about what it costs with
ten (the heap adds a log n).
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ctid.model import CallEvent, Direction, EventKind, Outcome, utcnow

_RANK = {EventKind.RING: 0, EventKind.ANSWER: 1, EventKind.TRANSFER: 2, EventKind.LEG_END: 3}
_NUDGE = timedelta(milliseconds=1)


@dataclass(slots=True)
class _Round:
    """One ring of one phone in a call: rank -> receipt time of the first event of that stage."""

    ranks: dict[int, datetime] = field(default_factory=dict)
    unanswered_end: bool = False  # ended by CANCELLED: an ACCEPTED after it is a new ring's

    def is_new_ring(self, event: CallEvent) -> bool:
        """Whether ``event`` starts another ring of the same phone rather than belonging to this one.

        A phone that rang and stopped and then rings again (a waterfall or round-robin queue coming
        back to it) sends a second INCOMING that is byte-identical to the first. It is a new ring only
        after this ring both rang and ended; a RING arriving after the END of a ring whose RING was not
        seen yet is that ring's own, overtaken RING. Likewise an ACCEPTED after a CANCELLED. An
        ACCEPTED after a ring that was answered and COMPLETED is that ring's redelivered ACCEPTED, a
        duplicate: taking it for a new ring re-opened the ended call as talking. (The price: a second
        answered ring of the same phone whose ACCEPTED overtakes its INCOMING shows that ring as
        ringing until its COMPLETED or ``history``.)
        """
        if 3 not in self.ranks:
            return False
        if event.kind is EventKind.RING:
            return 0 in self.ranks
        if event.kind is EventKind.ANSWER:
            return self.unanswered_end and 1 not in self.ranks
        return False


@dataclass(slots=True)
class _Call:
    direction: Direction | None = None
    remote: str | None = None
    line: str | None = None
    legs: dict[tuple[str, int], _Round] = field(default_factory=dict)  # (leg, ring number) -> ring
    rings: dict[str, int] = field(default_factory=dict)  # leg -> its current ring number
    answered_by: str | None = None
    last_end: datetime | None = None
    settle_at: float | None = None  # trio clock deadline
    done: bool = False  # history seen: it is authoritative, nothing is settled any more
    settled: int = 0  # synthetic caller leg ends emitted (a call can revive after one)
    settled_open: bool = False  # the latest synthetic end has not been followed by a new leg
    caller_leg: bool = False  # an event of the caller's own leg came (``contact``, a push with no user)
    touched: int = 0  # when last observed: LegTracker._calls holds calls in this order
    armed: int = 0  # the id of this call's live entry in LegTracker._deadlines (0: none)

    def open_legs(self) -> int:
        return sum(1 for ring in self.legs.values() if 3 not in ring.ranks)


class LegTracker:
    """Remembers recent calls' legs (bounded) for ordering and for the settle window."""

    def __init__(self, connector: str, settle_seconds: float, *, queue_timeout: float = 900,
                 max_calls: int = 20_000):
        self.connector = connector
        self.settle_seconds = settle_seconds
        self.queue_timeout = queue_timeout
        self.max_calls = max_calls
        self._calls: OrderedDict[str, _Call] = OrderedDict()  # least recently observed first
        self._seq = itertools.count(1)  # for _Call.touched and _Call.armed
        # Indexes over _calls, updated on every change of the fields they depend on:
        # number -> calls answered and not over (what talking_with asks for), and where each is filed;
        self._talking: dict[str | None, set[str]] = {}
        self._talking_as: dict[str, str | None] = {}
        # (settle_at, armed, pbx call id) of every armed call, plus stale entries (disarmed, re-armed
        # or evicted calls) that are dropped when they reach the top or when they outnumber the live.
        self._deadlines: list[tuple[float, int, str]] = []

    def _call(self, pbx_call_id: str) -> _Call:
        call = self._calls.get(pbx_call_id)
        if call is None:
            call = self._calls[pbx_call_id] = _Call()
            while len(self._calls) > self.max_calls:
                evicted, _ = self._calls.popitem(last=False)
                self._unfile(evicted)  # its deadline entry goes stale by itself
        else:
            self._calls.move_to_end(pbx_call_id)
        call.touched = next(self._seq)
        return call

    def _arm(self, pbx_call_id: str, call: _Call, at: float | None) -> None:
        """Set ``call.settle_at``, keeping the deadline heap in step."""
        call.settle_at = at
        if at is None:
            call.armed = 0
            return
        call.armed = next(self._seq)
        heapq.heappush(self._deadlines, (at, call.armed, pbx_call_id))
        if len(self._deadlines) > 2 * len(self._calls) + 64:  # mostly stale: rebuild (amortized O(1))
            self._deadlines = [(c.settle_at, c.armed, i) for i, c in self._calls.items()
                               if c.armed and c.settle_at is not None]  # armed: settle_at is set
            heapq.heapify(self._deadlines)

    def _live(self, entry: tuple[float, int, str]) -> _Call | None:
        """The call a deadline entry belongs to, if the entry is still that call's deadline."""
        call = self._calls.get(entry[2])
        return call if call is not None and call.armed == entry[1] else None

    def _refile(self, pbx_call_id: str, call: _Call) -> None:
        """File the call under its number in ``_talking`` exactly while it is answered and not over."""
        talking = (bool(call.answered_by) and not call.done and not call.settled_open
                   and self._calls.get(pbx_call_id) is call)  # an evicted call is not tracked
        filed = pbx_call_id in self._talking_as
        if filed and (not talking or self._talking_as[pbx_call_id] != call.remote):
            self._unfile(pbx_call_id)
            filed = False
        if talking and not filed:
            self._talking_as[pbx_call_id] = call.remote
            self._talking.setdefault(call.remote, set()).add(pbx_call_id)

    def _unfile(self, pbx_call_id: str) -> None:
        if pbx_call_id in self._talking_as:
            remote = self._talking_as.pop(pbx_call_id)
            ids = self._talking[remote]
            ids.discard(pbx_call_id)
            if not ids:
                del self._talking[remote]

    def knows(self, pbx_call_id: str) -> bool:
        return pbx_call_id in self._calls

    def talking_with(self, remote: str, *, besides: str) -> bool:
        """Whether a call other than ``besides`` with the number ``remote`` is answered and not over."""
        ids = self._talking.get(remote)  # never empty: an emptied set is removed
        return ids is not None and (len(ids) > 1 or besides not in ids)

    def observe(self, event: CallEvent, now: float) -> CallEvent:
        """Record a leg event; return it, moved before any later-stage event of its leg already seen."""
        call = self._call(event.pbx_call_id)
        event = self._observe(call, event, now)
        self._refile(event.pbx_call_id, call)
        return event

    def _observe(self, call: _Call, event: CallEvent, now: float) -> CallEvent:
        call.direction = call.direction or event.direction
        call.remote = call.remote or event.remote_number
        call.line = call.line or event.line_number
        if event.kind is EventKind.SUMMARY:
            call.done = True
            self._arm(event.pbx_call_id, call, None)
            return event
        if not event.leg_id and not event.agent_login:
            call.caller_leg = True  # the core's fold gives this event the caller's leg
        rank = _RANK.get(event.kind)
        leg = event.agent_login or (event.extra.get("pbx_user") if event.extra else None)
        if call.settled_open and event.kind in (EventKind.RING, EventKind.ANSWER) and leg is not None:
            call.settled_open = False  # revived: a phone rings again after the synthetic end
        if rank is None or leg is None:
            if event.kind is EventKind.RING and not call.legs and not call.done and not call.settled:
                # announced by `contact` only: if no agent ever rings and no history comes, close
                # the caller's leg after the queue timeout (a later ring revives the call)
                self._arm(event.pbx_call_id, call, now + self.queue_timeout)
            return event
        number = call.rings.get(leg, 1)
        ring = call.legs.setdefault((leg, number), _Round())
        if ring.is_new_ring(event):
            number = call.rings[leg] = number + 1
            ring = call.legs[(leg, number)] = _Round()
        if number > 1:  # the first ring keeps the post's own key (a redelivery stays a duplicate)
            event = dataclasses.replace(event, key=f"{event.key}:ring{number}")
        ranks = ring.ranks
        later = [at for r, at in ranks.items() if r > rank]
        if later and min(later) <= event.received_at:
            event = dataclasses.replace(event, received_at=min(later) - _NUDGE)
        ranks.setdefault(rank, event.received_at)
        if event.kind is EventKind.LEG_END and event.outcome not in (None, Outcome.ANSWERED):
            ring.unanswered_end = True
        if event.kind is EventKind.ANSWER and event.agent_login:
            call.answered_by = event.agent_login
        if event.kind is EventKind.LEG_END:
            if call.last_end is None or event.received_at > call.last_end:
                call.last_end = event.received_at
        if not call.done and not call.settled_open:
            self._arm(event.pbx_call_id, call, now + self.settle_seconds if call.open_legs() == 0 else None)
        return event

    def next_deadline(self) -> float | None:
        heap = self._deadlines
        while heap and self._live(heap[0]) is None:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def due(self, now: float) -> list[CallEvent]:
        """Caller ``leg_end`` events for calls whose legs have all been quiet for the settle window.

        A call whose caller leg never appeared (no ``contact``, every push named a phone) gets none:
        its agents' leg ends ended it already, so the event would change nothing but cost a commit.
        It is settled all the same (no longer counted as talking)."""
        # Only a call that is neither done nor settled_open is ever armed (observe and this method
        # disarm both), so every live entry at or before ``now`` is a call to settle.
        heap, ready = self._deadlines, []
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            call = self._live(entry)
            if call is not None:
                ready.append((call.touched, entry[2], call))
        ready.sort(key=lambda item: item[0])  # in the order of _calls, as they always came out
        out = []
        for _, pbx_call_id, call in ready:
            call.settled += 1
            call.settled_open = True
            self._arm(pbx_call_id, call, None)
            self._refile(pbx_call_id, call)
            if call.caller_leg:
                out.append(self._settle_event(pbx_call_id, call))
        return out

    def _settle_event(self, pbx_call_id: str, call: _Call) -> CallEvent:
        """The caller's synthetic ``leg_end`` of a call just settled (``call.settled`` counted)."""
        if call.answered_by:
            outcome = Outcome.ANSWERED
        elif call.direction is Direction.OUTBOUND:
            outcome = Outcome.NO_ANSWER
        else:
            outcome = Outcome.MISSED
        return CallEvent(
            connector=self.connector,
            pbx_call_id=pbx_call_id,
            kind=EventKind.LEG_END,
            # one key per synthetic end: the end after a revival is a new fact
            key=f"settle:{pbx_call_id}" + (f":{call.settled}" if call.settled > 1 else ""),
            at=None,
            received_at=call.last_end or utcnow(),
            direction=call.direction,
            remote_number=call.remote,
            line_number=call.line,
            agent_login=None,  # the caller's leg, whoever talked
            outcome=outcome,
            extra={"source": "settle", "settle_seconds": self.settle_seconds, "answered_by": call.answered_by},
        )
