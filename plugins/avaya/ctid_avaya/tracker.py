"""Delta3 party tracking: Detail / CallLost records become ctid's live call events.

Delta3 has no "call ended" record (reference §2.5): a call is over when every party attached to it
(PartyA / PartyB ends) got CallLost. Targets are ringing attempts, not parties: a target that
drops out of the list without answering is a leg end (a hunt group's loser). The mapping to ring,
answer, hold and transfer is the reference's suggestion [guess]; it is all in this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ctid.limits import ascii_digits
from ctid.model import CallEvent, Direction, EventKind, Outcome, utcnow
from ctid_avaya.calllog import LegIndex, pbx_call_id_for
from ctid_avaya.delta3 import AttemptReject, CallLost, Detail, Party

CONNECTED = 2
GONE_STATES = frozenset({0, 3, 21, 23, 24})  # idle, disconnecting, IC disconnecting, completed (+tone)
CAUSE_BUSY = 17
FORGET_ABOVE = 5000  # calls tracked at once before silent ones are forgotten
SILENT = timedelta(hours=12)  # no record for this long: its CallLost was lost (ctid's stale-call rule ended it)


@dataclass(slots=True)
class _Call:
    key: tuple[str, str]
    pbx_call_id: str
    direction: Direction
    agent: str | None = None  # outbound / internal caller: the dialing agent's login
    parties: dict[str, Party] = field(default_factory=dict)
    ringing: dict[str, str] = field(default_factory=dict)  # end id -> login
    talking: str | None = None
    talking_end: str | None = None
    held: bool = False
    answered: bool = False
    generation: int = 0
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    cause: int = 0
    remote: str | None = None
    line: str | None = None
    group: str | None = None
    updated: datetime | None = None


class Tracker:
    """Per-unit state of the calls in progress, fed the records of one DevLink3 stream."""

    def __init__(self, instance: str, zone, index: LegIndex, *, login_for: Callable[[str], str],
                 hunt_groups: dict[str, str], now: Callable[[], datetime] = utcnow):
        self.instance = instance
        self.zone = zone
        self.index = index
        self.login_for = login_for
        self.hunt_groups = {k.strip().lower(): v for k, v in hunt_groups.items()}
        self.now = now
        self.calls: dict[tuple[str, str], _Call] = {}
        self._by_end: dict[str, tuple[str, str]] = {}
        self.generation = 0

    # -- records ---------------------------------------------------------------------------------
    def feed(self, record) -> list[CallEvent]:
        if len(self.calls) > FORGET_ABOVE:
            self._forget_silent()
        if isinstance(record, Detail):
            return self._detail(record)
        if isinstance(record, CallLost):
            return self._lost(record)
        if isinstance(record, AttemptReject):
            return self._reject(record)
        return []

    def _event(self, call: _Call, kind: EventKind, who: str, **fields) -> CallEvent:
        count = call.counts.get((kind.value, who), 0)
        call.counts[(kind.value, who)] = count + 1
        return CallEvent(
            connector=self.instance, pbx_call_id=call.pbx_call_id, kind=kind,
            key=f"dl3:{call.pbx_call_id}:{kind.value}:{who}:{count}", at=self.now(),
            direction=call.direction, remote_number=call.remote, line_number=call.line, group=call.group,
            extra={"source": "devlink3"}, **fields,
        )

    def _new_call(self, detail: Detail) -> _Call | None:
        a = detail.party_a
        others = [p for p in (detail.party_b, *detail.targets) if p is not None]
        if a.is_trunk and a.inbound:
            direction, remote, line = Direction.INBOUND, a.cli or None, a.did or None
        elif a.is_phone and any(p.is_trunk for p in others):
            trunk = next(p for p in others if p.is_trunk)
            direction, remote, line = Direction.OUTBOUND, trunk.target_number or a.target_number or None, None
        elif a.is_phone and any(p.is_phone for p in others):
            direction, remote, line = Direction.INTERNAL, a.identity, None
        else:
            return None  # not resolvable yet (an extension still dialling, a voicemail leg ...)
        local = self.now().astimezone(self.zone).replace(tzinfo=None)
        leg = a.leg
        pbx = (self.index.active(leg, self.now()) if leg else None) or (
            pbx_call_id_for(leg, local) if leg else f"{detail.node}-{detail.call_id}-{local:%Y%m%d%H%M%S}")
        if leg:
            self.index.register(leg, pbx, self.now())
        group_name = detail.target_group or detail.owner_group
        group = self.hunt_groups.get(group_name.lower(), group_name) if group_name else None
        call = _Call(detail.key, pbx, direction, remote=remote, line=line, group=group)
        if direction is not Direction.INBOUND:
            call.agent = self.login_for(a.identity)
        return call

    def _detail(self, detail: Detail) -> list[CallEvent]:
        call = self.calls.get(detail.key)
        events: list[CallEvent] = []
        if call is None:
            call = self._new_call(detail)
            if call is None:
                return []
            self.calls[detail.key] = call
            if call.agent and call.direction is Direction.OUTBOUND:
                events.append(self._event(call, EventKind.RING, call.agent, agent_login=call.agent,
                                          leg_id=detail.party_a.end_id))
        call.generation = self.generation
        call.updated = self.now()
        for party in (detail.party_a, detail.party_b):
            if party is not None:
                call.parties[party.end_id] = party
                self._by_end[party.end_id] = call.key
        for target in detail.targets:
            self._by_end.setdefault(target.end_id, call.key)
        b = detail.party_b
        if call.direction is Direction.OUTBOUND:
            if b is not None and b.state == CONNECTED and not call.answered and call.agent:
                call.answered = True
                call.talking = call.agent
                events.append(self._event(call, EventKind.ANSWER, call.agent, agent_login=call.agent))
        else:
            events += self._rings(call, detail)
            if b is not None and b.is_phone and b.state == CONNECTED:
                login = self.login_for(b.identity)
                if call.talking is None:
                    call.answered = True
                    events.append(self._event(call, EventKind.ANSWER, login, agent_login=login, leg_id=b.end_id))
                elif call.talking != login:
                    events.append(self._event(call, EventKind.TRANSFER, login, agent_login=call.talking,
                                              target_login=login))
                    call.held = False  # a transfer resumes a held call (call model §4)
                call.talking, call.talking_end = login, b.end_id
                call.ringing.pop(b.end_id, None)
        events += self._hold(call, detail)
        return events

    def _rings(self, call: _Call, detail: Detail) -> list[CallEvent]:
        now_ringing: dict[str, str] = {}
        for party in (*detail.targets, detail.party_b):
            if party is None or not party.is_phone or party.state == CONNECTED or party.state in GONE_STATES \
                    and not party.target:
                continue
            now_ringing[party.end_id] = self.login_for(party.identity)
        events = []
        for end, login in now_ringing.items():
            if end not in call.ringing:
                events.append(self._event(call, EventKind.RING, login, agent_login=login, leg_id=end))
        answered_end = detail.party_b.end_id if detail.party_b is not None else None
        for end, login in call.ringing.items():
            if end not in now_ringing and end != answered_end:
                events.append(self._event(call, EventKind.LEG_END, login, agent_login=login, leg_id=end))
        call.ringing = now_ringing
        return events

    def _hold(self, call: _Call, detail: Detail) -> list[CallEvent]:
        if not call.answered or call.talking is None:
            return []
        a, b = detail.party_a, detail.party_b
        # held: the talking pair's audio path is off, or the far end hears music on hold [guess]
        held = (b is not None and b.state == CONNECTED and (not a.audio_connected or not b.audio_connected)) \
            or a.tone == 1 or (b is not None and b.tone == 1)
        if held == call.held:
            return []
        call.held = held
        kind = EventKind.HOLD if held else EventKind.UNHOLD
        return [self._event(call, kind, call.talking, agent_login=call.talking)]

    def _lost(self, lost: CallLost) -> list[CallEvent]:
        key = self._by_end.pop(lost.end_id, None)
        call = self.calls.get(key) if key else None
        if call is None:
            return []
        events = []
        if lost.cause:
            call.cause = lost.cause
        call.parties.pop(lost.end_id, None)
        login = call.ringing.pop(lost.end_id, None)
        if login is not None:
            events.append(self._event(call, EventKind.LEG_END, login, agent_login=login, leg_id=lost.end_id))
        if not call.parties:
            events.append(self._end(call))
        return events

    def _reject(self, reject: AttemptReject) -> list[CallEvent]:
        key = self._by_end.get(reject.end_id)
        call = self.calls.get(key) if key else None
        if call is None or reject.end_id not in call.ringing:
            return []
        login = call.ringing.pop(reject.end_id)
        return [self._event(call, EventKind.LEG_END, login, agent_login=login, leg_id=reject.end_id,
                            extra={"source": "devlink3", "rejected": reject.qualifier})]

    def _end(self, call: _Call, **extra) -> CallEvent:
        del self.calls[call.key]
        for end in [e for e, k in self._by_end.items() if k == call.key]:
            del self._by_end[end]
        leg = self._leg(call)
        if leg is not None:  # the call's span is known now: SMDR tails can join it (calllog.LegIndex)
            self.index.register(leg, call.pbx_call_id, self.now(), self.now())
        outcome = Outcome.BUSY if call.cause == CAUSE_BUSY and not call.answered else None
        event = self._event(call, EventKind.END, "call", outcome=outcome)
        if extra:
            event.extra.update(extra)
        return event

    @staticmethod
    def _leg(call: _Call) -> tuple[str, int] | None:
        parts = call.pbx_call_id.split("-")
        if len(parts) == 3 and ascii_digits(parts[1]):
            return parts[0], int(parts[1])
        return None

    def _forget_silent(self) -> None:
        cutoff = self.now() - SILENT
        for key in [k for k, c in self.calls.items() if c.updated is not None and c.updated < cutoff]:
            del self.calls[key]
        alive = set(self.calls)
        self._by_end = {end: key for end, key in self._by_end.items() if key in alive}

    # -- reconnects ------------------------------------------------------------------------------
    def begin_resync(self) -> None:
        """A new EventRequest succeeded: IP Office now re-reports every call in progress."""
        self.generation += 1

    def finish_resync(self) -> list[CallEvent]:
        """End the calls IP Office did not re-report (they ended while the link was down)."""
        stale = [c for c in self.calls.values() if c.generation < self.generation]
        return [self._end(call, reason="devlink3_resync") for call in stale]

    def active(self) -> int:
        return len(self.calls)
