"""LegTracker's and Transfers' indexes give the answers a scan over every call gives, whatever happens to the calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest.mock import patch

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ctid.model import CallEvent, Direction, EventKind, Outcome
from ctid_megafon.legs import LegTracker
from ctid_megafon.transfers import Transfers, remember

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
IDS = ["c0", "c1", "c2", "c3", "c4", "c5"]
REMOTES = ["+79100000001", "+79100000002", None]


class ScanningTracker(LegTracker):
    """The tracker's queries as plain scans over ``_calls`` (how they were written before the indexes)."""

    def talking_with(self, remote: str, *, besides: str) -> bool:
        return any(
            call.remote == remote and call.answered_by and not call.done and not call.settled_open
            for pbx_call_id, call in reversed(self._calls.items())
            if pbx_call_id != besides
        )

    def next_deadline(self) -> float | None:
        deadlines = [c.settle_at for c in self._calls.values() if c.settle_at is not None]
        return min(deadlines) if deadlines else None

    def due(self, now: float) -> list[CallEvent]:
        out = []
        for pbx_call_id, call in list(self._calls.items()):
            if call.done or call.settled_open or call.settle_at is None or call.settle_at > now:
                continue
            call.settled += 1
            call.settled_open = True
            call.settle_at = None
            if call.caller_leg:  # settled without an event otherwise: the agents' leg ends ended it
                out.append(self._settle_event(pbx_call_id, call))
        return out


def _scan_talking(tracker: LegTracker, remote: str | None, besides: str) -> bool:
    return ScanningTracker.talking_with(tracker, remote, besides=besides)  # type: ignore[arg-type]


def _scan_deadline(tracker: LegTracker) -> float | None:
    return ScanningTracker.next_deadline(tracker)  # type: ignore[arg-type]


_KINDS = [EventKind.RING, EventKind.ANSWER, EventKind.TRANSFER, EventKind.LEG_END, EventKind.SUMMARY]

_observe = st.builds(
    lambda callid, kind, agent, pbx_user, remote, seconds, missed: ("observe", CallEvent(
        connector="mf",
        pbx_call_id=callid,
        kind=kind,
        key=f"{callid}:{kind.value}:{agent}",
        received_at=T0 + timedelta(seconds=seconds),
        direction=Direction.INBOUND,
        remote_number=remote,
        agent_login=agent,
        outcome=(Outcome.MISSED if missed else Outcome.ANSWERED) if kind is EventKind.LEG_END else None,
        extra={"pbx_user": pbx_user} if pbx_user else {},
    )),
    st.sampled_from(IDS),
    st.sampled_from(_KINDS),
    st.sampled_from(["anna", "boris", None]),
    st.sampled_from([None, None, "g_sales@t"]),
    st.sampled_from(REMOTES),
    st.integers(0, 30),
    st.booleans(),
)
_due = st.tuples(st.just("due"), st.none())
_wait = st.tuples(st.just("wait"), st.sampled_from([0.0, 0.5, 1.0, 2.0, 6.0]))
OPERATIONS = st.lists(st.one_of(_observe, _observe, _due, _wait), max_size=60)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=OPERATIONS, max_calls=st.sampled_from([0, 2, 4, 100]))
def test_indexed_answers_match_a_scan_over_every_call(operations, max_calls):
    """Rings, answers, leg ends, history, settling, revival, re-arming and eviction (``max_calls``)."""
    indexed = LegTracker("mf", 1.0, queue_timeout=5.0, max_calls=max_calls)
    scanning = ScanningTracker("mf", 1.0, queue_timeout=5.0, max_calls=max_calls)
    now = 0.0
    with patch("ctid_megafon.legs.utcnow", return_value=T0):
        for op, arg in operations:
            if op == "observe":
                assert indexed.observe(arg, now) == scanning.observe(arg, now)
            elif op == "due":
                assert indexed.due(now) == scanning.due(now)
            else:
                now += arg
            for besides in IDS:
                for remote in REMOTES:
                    assert indexed.talking_with(remote, besides=besides) == _scan_talking(indexed, remote, besides)
                    assert scanning.talking_with(remote, besides=besides) == _scan_talking(indexed, remote, besides)
            assert indexed.next_deadline() == _scan_deadline(indexed) == scanning.next_deadline()
        assert indexed.due(now + 100) == scanning.due(now + 100)  # everything still armed, in the same order
        assert indexed.next_deadline() is None


def test_a_call_answered_and_then_settled_or_ended_by_history_stops_talking():
    legs = LegTracker("mf", 1.0)

    def event(callid, kind, **kw):
        return CallEvent(connector="mf", pbx_call_id=callid, kind=kind, key=f"{callid}:{kind.value}",
                         received_at=T0, remote_number="+79100000001", **kw)

    legs.observe(event("a", EventKind.RING), 0.0)  # `contact`: the caller's own leg
    legs.observe(event("a", EventKind.RING, agent_login="anna"), 0.0)
    assert not legs.talking_with("+79100000001", besides="b")
    legs.observe(event("a", EventKind.ANSWER, agent_login="anna"), 0.0)
    assert legs.talking_with("+79100000001", besides="b") and not legs.talking_with("+79100000001", besides="a")
    legs.observe(event("a", EventKind.LEG_END, agent_login="anna", outcome=Outcome.ANSWERED), 1.0)
    assert legs.talking_with("+79100000001", besides="b")  # until the settle window closes the call
    assert legs.next_deadline() == 2.0 and legs.due(1.5) == []
    assert [e.key for e in legs.due(2.0)] == ["settle:a"]
    assert not legs.talking_with("+79100000001", besides="b") and legs.next_deadline() is None
    legs.observe(event("a", EventKind.RING, agent_login="boris"), 3.0)  # revived: talking again
    assert legs.talking_with("+79100000001", besides="b")
    legs.observe(event("a", EventKind.SUMMARY), 4.0)
    assert not legs.talking_with("+79100000001", besides="b") and legs.next_deadline() is None


def test_a_call_without_a_caller_leg_is_settled_without_an_event():
    """Every push named a phone: the agents' leg ends ended the call in the core already, so the
    settle window emits nothing (it would cost a commit and change nothing) but still closes it here."""
    legs = LegTracker("mf", 1.0)
    for kind, outcome in ((EventKind.RING, None), (EventKind.ANSWER, None), (EventKind.LEG_END, Outcome.ANSWERED)):
        legs.observe(CallEvent(connector="mf", pbx_call_id="a", kind=kind, key=f"a:{kind.value}", received_at=T0,
                               remote_number="+79100000001", agent_login="anna", outcome=outcome), 0.0)
    assert legs.talking_with("+79100000001", besides="b") and legs.next_deadline() == 1.0
    assert legs.due(1.0) == []
    assert not legs.talking_with("+79100000001", besides="b") and legs.next_deadline() is None


def test_evicted_calls_neither_talk_nor_come_due():
    legs = LegTracker("mf", 1.0, max_calls=2)
    for n, callid in enumerate(["a", "b", "c"]):
        legs.observe(CallEvent(connector="mf", pbx_call_id=callid, kind=EventKind.RING, key=f"{callid}:contact",
                               received_at=T0, remote_number=f"+7910000000{n}"), 0.0)  # the caller's leg
        for kind in (EventKind.RING, EventKind.ANSWER):
            legs.observe(CallEvent(connector="mf", pbx_call_id=callid, kind=kind, key=f"{callid}:{kind.value}",
                                   received_at=T0, remote_number=f"+7910000000{n}", agent_login="anna"), 0.0)
        legs.observe(CallEvent(connector="mf", pbx_call_id=callid, kind=EventKind.LEG_END, key=f"{callid}:end",
                               received_at=T0, remote_number=f"+7910000000{n}", agent_login="anna",
                               outcome=Outcome.ANSWERED), float(n))
    assert not legs.knows("a") and not legs.talking_with("+79100000000", besides="x")
    assert legs.talking_with("+79100000001", besides="x")
    assert legs.next_deadline() == 2.0  # a's deadline (1.0) left with it
    assert [e.pbx_call_id for e in legs.due(10.0)] == ["b", "c"]


# -- Transfers: held early legs -------------------------------------------------------------------


class ScanningTransfers(Transfers):
    """Held legs' deadlines as plain scans over ``_held`` (how they were written before the heap)."""

    def next_deadline(self) -> float | None:
        return min((held.until for held in self._held.values()), default=None)

    def expired(self, now: float) -> list[CallEvent]:
        out: list[CallEvent] = []
        for callid in [c for c, held in self._held.items() if held.until <= now]:
            out.extend(self._held.pop(callid).events)
            remember(self._own, callid, None)
        return out


class FakeLegs:
    """``+7talking`` is talking on another call; ``known`` is a call already tracked."""

    def knows(self, callid: str) -> bool:
        return callid == "known"

    def talking_with(self, remote: str, *, besides: str) -> bool:
        return remote == "+7talking"


HELD_IDS = ["h0", "h1", "h2", "known"]

_push = st.builds(
    lambda callid, kind, remote, n: ("hold", CallEvent(
        connector="mf", pbx_call_id=callid, kind=kind, key=f"{callid}:{kind.value}:{n}", received_at=T0,
        remote_number=remote, agent_login="anna",
    )),
    st.sampled_from(HELD_IDS),
    st.sampled_from([EventKind.RING, EventKind.RING, EventKind.LEG_END, EventKind.TRANSFER, EventKind.SUMMARY]),
    st.sampled_from(["+7talking", "+7talking", "+7talking", "+7quiet", None]),
    st.integers(0, 3),
)
_transferred = st.builds(
    lambda second: ("transferred", CallEvent(
        connector="mf", pbx_call_id="P", kind=EventKind.TRANSFER, key=f"P:transfer:{second}", received_at=T0,
        remote_number="+7talking", agent_login="anna", leg_id=second,
    )),
    st.sampled_from(HELD_IDS),
)
_expired = st.tuples(st.just("expired"), st.none())
# the clock may even step back: the answers must not depend on legs being held in deadline order
_step = st.tuples(st.just("wait"), st.sampled_from([0.0, 0.5, 1.0, 2.0, -2.0]))
HELD_OPERATIONS = st.lists(st.one_of(_push, _push, _transferred, _expired, _step), max_size=50)


def _held_push(callid: str) -> tuple[str, CallEvent]:
    return "hold", CallEvent(connector="mf", pbx_call_id=callid, kind=EventKind.RING, key=callid, received_at=T0,
                             remote_number="+7talking", agent_login="anna")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=HELD_OPERATIONS, window=st.sampled_from([0.0, 1.0, 3.0, 3.0]))
@example(operations=[_held_push("h0"), ("wait", -2.0), _held_push("h1")], window=3.0)  # held out of deadline order
def test_held_legs_come_out_as_a_scan_over_every_held_leg_lets_them(operations, window):
    """Holding, claiming by a TRANSFERRED (which leaves a stale heap entry) and expiring."""
    indexed = Transfers(FakeLegs(), window)  # type: ignore[arg-type]
    scanning = ScanningTransfers(FakeLegs(), window)  # type: ignore[arg-type]
    now = 0.0
    for op, arg in operations:
        if op == "hold":
            assert indexed.hold(arg, now) == scanning.hold(arg, now)
        elif op == "transferred":
            assert indexed.transferred(arg) == scanning.transferred(arg)
        elif op == "expired":
            assert indexed.expired(now) == scanning.expired(now)
        else:
            now += arg
        assert indexed.next_deadline() == scanning.next_deadline()
        assert indexed._held == scanning._held and indexed._own == scanning._own
    assert indexed.expired(now + 100) == scanning.expired(now + 100)
    assert indexed.next_deadline() is None
