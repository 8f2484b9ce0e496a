"""Property tests of the switchboard: state is a function of the event set, whatever the arrival order.

Streams mix realistic call shapes (group calls, transfers, holds, summaries, lost events) with
arbitrary noise events over a few remote numbers, so that calls and callback tasks interact.
"""

from __future__ import annotations

import itertools
import warnings
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctid.callback_tasks import is_void
from ctid.config.models import AgentConfig
from ctid.directory import StaticDirectory
from ctid.model import CallEvent, Direction, EventKind, Outcome, Presence
from ctid.switchboard import Changes, Switchboard

# Hypothesis reports a failing example through hypothesis.extra._patching, which imports libcst,
# which warns (DeprecationWarning from mypy_extensions) on import: under filterwarnings=error that
# turns a readable failure into a pytest INTERNALERROR. Import it once here, quietly.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:  # pragma: no cover - libcst not installed: nothing to pre-import
        pass

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NUMBERS = ["89101234567", "+7 910 123-45-67", "79990001122", "+4915112345678"]  # the first two are one number
LOGINS = ["101", "102", "103", "104", "999"]  # 999 is nobody's
KINDS = list(EventKind)
OUTCOMES = [None, *Outcome]

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PHASES_SETTINGS = settings(SETTINGS, max_examples=60)  # two switchboards per example: fewer


def directory() -> StaticDirectory:
    return StaticDirectory(
        {
            "anna": AgentConfig(name="Anna", extension="101", groups=["sales"]),
            "boris": AgentConfig(name="Boris", extension="102", groups=["sales"]),
            "vera": AgentConfig(name="Vera", extension="103", groups=["sales", "support"]),
            "gleb": AgentConfig(name="Gleb", extension="104", groups=["support"]),
        }
    )


def board() -> Switchboard:
    sb = Switchboard(directory())
    for agent_id in sb.agents:
        sb.set_status(agent_id, Presence.AVAILABLE, T0)
    return sb


class _Builder:
    def __init__(self, pbx_id: str, start: int, common: dict, keys: itertools.count, no_time: bool):
        self.pbx_id, self.start, self.common, self.keys, self.no_time = pbx_id, start, common, keys, no_time
        self.events: list[CallEvent] = []

    def __call__(self, kind: EventKind, offset: float, **fields) -> None:
        when = T0 + timedelta(seconds=self.start + offset)
        self.events.append(
            CallEvent(
                connector="mf",
                pbx_call_id=self.pbx_id,
                kind=kind,
                key=f"{self.pbx_id}:{next(self.keys)}",
                at=None if self.no_time else when,
                received_at=when,
                **{**self.common, **fields},
            )
        )


@st.composite
def call_events(draw, index: int, keys: itertools.count) -> list[CallEvent]:
    """The events of one call: a realistic shape, maybe with a summary, lost events and noise."""
    common = {
        "remote_number": draw(st.sampled_from(NUMBERS)),
        "line_number": draw(st.sampled_from([None, "74951234567"])),
        "group": draw(st.sampled_from([None, "sales", "support"])),
    }
    direction = draw(st.sampled_from([None, Direction.INBOUND, Direction.INBOUND, Direction.OUTBOUND]))
    if direction is not None:
        common["direction"] = direction
    ev = _Builder(f"p{index}", draw(st.integers(0, 900)), common, keys, draw(st.booleans()))
    agents = draw(st.lists(st.sampled_from(LOGINS), min_size=1, max_size=3, unique=True))
    gap = lambda: draw(st.integers(0, 40))  # noqa: E731
    shape = draw(
        st.sampled_from(["answered", "missed", "group", "transfer", "queued", "hunt", "summary", "noise"])
    )
    t = 0
    if shape in ("answered", "group", "transfer", "missed"):
        for login in agents:
            ev(EventKind.RING, t, agent_login=login)
        t += gap()
        if shape != "missed":
            winner = draw(st.sampled_from(agents))
            ev(EventKind.ANSWER, t, agent_login=winner)
            for login in agents:
                if login != winner:
                    ev(
                        EventKind.LEG_END,
                        t + draw(st.integers(0, 2)),
                        agent_login=login,
                        outcome=Outcome.NO_ANSWER,
                    )
            if draw(st.booleans()):
                t += gap()
                ev(EventKind.HOLD, t)
                t += gap()
                ev(EventKind.UNHOLD, t)
            if shape == "transfer":
                t += gap()
                target = draw(st.sampled_from(LOGINS))
                ev(EventKind.TRANSFER, t, agent_login=winner, target_login=target)
                if target != winner and draw(st.booleans()):  # the target's answer, maybe stamped first
                    ev(EventKind.ANSWER, max(t + draw(st.integers(-3, 3)), 0), agent_login=target)
                winner = target
            t += gap()
            if draw(st.booleans()):
                ev(EventKind.END, t)
            else:
                ev(EventKind.LEG_END, t, agent_login=winner)
        else:
            for login in agents:
                t += draw(st.integers(0, 5))
                ev(EventKind.LEG_END, t, agent_login=login, outcome=draw(st.sampled_from(OUTCOMES)))
            if draw(st.booleans()):
                ev(EventKind.END, t + 1, outcome=draw(st.sampled_from(OUTCOMES)))
    elif shape == "queued":
        ev(EventKind.RING, 0)
        for login in agents:
            ev(EventKind.RING, t, agent_login=login)
            t += gap()
            ev(EventKind.LEG_END, t, agent_login=login)
        if draw(st.booleans()):
            ev(EventKind.ANSWER, t, agent_login=agents[-1])
            t += gap()
        ev(EventKind.END, t + 1)
    elif shape == "hunt":
        for login in agents:
            ev(EventKind.RING, t, agent_login=login)
            t += gap()
            ev(EventKind.LEG_END, t, agent_login=login)
            t += draw(st.integers(0, 3))
    elif shape == "noise":
        for _ in range(draw(st.integers(1, 6))):
            kind = draw(st.sampled_from(KINDS))
            ev(
                kind,
                draw(st.integers(0, 60)),
                agent_login=draw(st.sampled_from([None, *LOGINS])),
                target_login=draw(st.sampled_from(LOGINS)) if kind is EventKind.TRANSFER else None,
                leg_id=draw(st.sampled_from([None, None, "leg-a"])),
                outcome=draw(st.sampled_from(OUTCOMES)),
            )
    if shape == "summary" or draw(st.integers(0, 3)) == 0:
        ev(
            EventKind.SUMMARY,
            0,
            outcome=draw(st.sampled_from([None, Outcome.ANSWERED, Outcome.MISSED, Outcome.BUSY])),
            wait_seconds=draw(st.sampled_from([None, 0, 7.5, 30])),
            talk_seconds=draw(st.sampled_from([None, 0, 42.25])),
            total_seconds=draw(st.sampled_from([None, 20, 95])),
            agent_login=draw(st.sampled_from([None, *LOGINS])),
            recording=draw(st.sampled_from([None, "rec"])),
        )
    events = ev.events
    if len(events) > 1 and draw(st.booleans()):  # a lost webhook
        del events[draw(st.integers(0, len(events) - 1))]
    return events


@st.composite
def streams(draw) -> list[list[CallEvent]]:
    keys = itertools.count()
    return [draw(call_events(index, keys)) for index in range(draw(st.integers(1, 6)))]


def ordered(calls: list[list[CallEvent]]) -> list[CallEvent]:
    return sorted((event for events in calls for event in events), key=CallEvent.sort_key)


class Mirror:
    """A consumer that only sees Changes (like the store and the hub) and keeps its own copy."""

    def __init__(self, sb: Switchboard):
        self.calls: dict = {}
        self.tasks: dict = {}
        self.agents = {agent_id: agent.to_json() for agent_id, agent in sb.agents.items()}

    def take(self, changes: Changes) -> Changes:
        for call in changes.calls:
            self.calls[call.id] = call.to_json()
        for task in changes.tasks:
            if is_void(task):
                self.tasks.pop(task.id, None)
            else:
                self.tasks[task.id] = task.to_json()
        for agent, previous in changes.agents:
            assert previous == self.agents[agent.id]["presence"]
            self.agents[agent.id] = agent.to_json()
        return changes


def state(sb: Switchboard) -> tuple[dict, dict, dict]:
    return (
        {call_id: call.to_json() for call_id, call in sb.calls.items()},
        {task_id: task.to_json() for task_id, task in sb.tasks.items()},
        {agent_id: agent.to_json() for agent_id, agent in sb.agents.items()},
    )


def run(events: list[CallEvent], batches: list[int] | None = None) -> tuple[Switchboard, Mirror]:
    sb = board()
    mirror = Mirror(sb)
    sizes = itertools.cycle(batches or [1])
    position = 0
    while position < len(events):
        size = next(sizes)
        mirror.take(sb.apply(events[position : position + size]))
        position += size
    return sb, mirror


def assert_mirrored(sb: Switchboard, mirror: Mirror) -> None:
    calls, tasks, agents = state(sb)
    assert mirror.calls == calls
    assert mirror.tasks == tasks
    assert mirror.agents == agents


@SETTINGS
@given(calls=streams())
def test_replaying_the_stream_changes_nothing(calls):
    stream = ordered(calls)
    sb, mirror = run(stream)
    reference = state(sb)
    assert_mirrored(sb, mirror)
    for _ in range(2):
        assert not sb.apply(stream)
        assert state(sb) == reference
    for event in stream:
        assert not sb.apply([event])


@SETTINGS
@given(calls=streams(), data=st.data())
def test_shuffling_events_within_each_call_gives_the_same_state(calls, data):
    sb, _ = run(ordered(calls))
    shuffled = [event for events in calls for event in data.draw(st.permutations(events))]
    other, mirror = run(shuffled)
    assert state(other) == state(sb)
    assert_mirrored(other, mirror)


@SETTINGS
@given(calls=streams(), data=st.data())
def test_any_arrival_order_and_batching_gives_the_same_state(calls, data):
    stream = ordered(calls)
    sb, _ = run(stream)
    shuffled = data.draw(st.permutations(stream))
    batches = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    tripled = shuffled + data.draw(st.permutations(stream)) + stream  # replayed three times in all
    other, mirror = run(tripled, batches)
    assert state(other) == state(sb)
    assert_mirrored(other, mirror)


@SETTINGS
@given(calls=streams())
def test_calls_and_tasks_are_consistent(calls):
    sb, _ = run(ordered(calls))
    for call in sb.calls.values():
        data = call.to_json()
        if call.answered_at is not None:
            assert call.started_at <= call.answered_at
        if call.ended_at is not None:
            assert call.outcome is not None and call.wait_seconds is not None
            assert (call.talk_seconds is None) == (call.answered_at is None)
        else:
            assert call.outcome is None and data["talk_seconds"] is None
        assert call.hold_seconds >= 0 and (call.talk_seconds or 0) >= 0 and (call.wait_seconds or 0) >= 0
        assert set(call.ringing_agents) <= set(sb.agents) and set(call.agents) <= set(sb.agents)
    open_numbers = [task.number for task in sb.tasks.values() if task.status.value == "open"]
    assert len(open_numbers) == len(set(open_numbers))  # one open task per number
    counted = [call_id for task in sb.tasks.values() for call_id in task.missed_calls]
    assert len(counted) == len(set(counted))  # a missed call belongs to one task
    for call_id in counted:
        call = sb.calls[call_id]
        assert call.outcome in (Outcome.MISSED, Outcome.BUSY, Outcome.NO_ANSWER)
        assert call.direction is Direction.INBOUND
    for agent in sb.agents.values():
        if agent.current_call:
            assert sb.calls[agent.current_call].agent == agent.id
        if agent.ringing_call:
            assert agent.id in sb.calls[agent.ringing_call].ringing_agents


@st.composite
def two_phases(draw) -> tuple[list[CallEvent], list[CallEvent], datetime]:
    """Calls of a first phase (all events before the cutoff), then new calls after it."""
    keys = itertools.count()
    first = [draw(call_events(index, keys)) for index in range(draw(st.integers(1, 5)))]
    second = [draw(call_events(100 + index, keys)) for index in range(draw(st.integers(1, 4)))]
    shift = timedelta(hours=2)
    moved = [
        CallEvent(
            **{**_fields(e), "at": e.at + shift if e.at else None, "received_at": e.received_at + shift}
        )
        for events in second
        for e in events
    ]
    return ordered(first), sorted(moved, key=CallEvent.sort_key), T0 + timedelta(hours=1)


def _fields(event: CallEvent) -> dict:
    return {name: getattr(event, name) for name in event.__dataclass_fields__}


def assert_same_tasks(partial: Switchboard, reference: Switchboard, cutoff: datetime) -> None:
    """Tasks kept by ``partial`` equal the reference's; those it dropped were closed before ``cutoff``."""
    for task_id, task in partial.tasks.items():
        assert task.to_json() == reference.tasks[task_id].to_json()
    for task_id, task in reference.tasks.items():
        if task_id not in partial.tasks:
            assert task.status.value == "done" and task.closed_at < cutoff


@PHASES_SETTINGS
@given(phases=two_phases())
def test_evicting_history_does_not_change_later_results(phases):
    first, second, cutoff = phases
    reference, _ = run(first + second)
    sb = board()
    sb.apply(first)
    kept = {call_id for call_id, call in sb.calls.items() if call.ended_at is None}
    sb.evict(cutoff)
    assert set(sb.calls) == kept
    changes = sb.apply(second)
    assert_same_tasks(sb, reference, cutoff)
    for task in changes.tasks:
        assert task.to_json() == reference.tasks[task.id].to_json()
    for call_id, call in sb.calls.items():
        assert call.to_json() == reference.calls[call_id].to_json()
    for agent_id, agent in sb.agents.items():
        assert agent.to_json() == reference.agents[agent_id].to_json()


@PHASES_SETTINGS
@given(phases=two_phases(), data=st.data())
def test_restarting_from_stored_tasks_and_recent_calls_continues_exactly(phases, data):
    first, second, cutoff = phases
    reference, _ = run(first + second)
    before, _ = run(first)
    window = T0 + timedelta(seconds=data.draw(st.integers(0, 1000)))
    recent = [c for c in before.calls.values() if c.ended_at is not None and c.started_at >= window]
    restarted = board()
    restarted.restore_tasks(list(before.tasks.values()), recent)
    assert {k: t.to_json() for k, t in restarted.tasks.items()} == {
        k: t.to_json() for k, t in before.tasks.items()
    }
    for call_id, call in before.calls.items():
        if call.ended_at is None:  # calls in progress are restored from their stored events
            restarted.restore_call([e for e in first if e.call_id == call_id])
    restarted.apply(second)
    assert_same_tasks(restarted, reference, cutoff)
    open_tasks = {t.id for t in reference.tasks.values() if t.status.value == "open"}
    assert open_tasks <= set(restarted.tasks)


AGENT_OF = {"101": "anna", "102": "boris", "103": "vera", "104": "gleb"}


@st.composite
def transfers(draw) -> tuple[list[CallEvent], str, str]:
    """One call answered by one agent and transferred to another, with PBX clocks that disagree:
    the target's ANSWER may be stamped before, with or after the TRANSFER; the transferring leg
    ends at any time after it."""
    source, target = draw(st.lists(st.sampled_from(sorted(AGENT_OF)), min_size=2, max_size=2, unique=True))
    ev = _Builder("x", 0, {"remote_number": NUMBERS[0]}, itertools.count(), draw(st.booleans()))
    ev(EventKind.RING, 0, agent_login=source)
    answered = draw(st.integers(0, 10))
    ev(EventKind.ANSWER, answered, agent_login=source)
    transferred = answered + draw(st.integers(0, 30))
    # the target's answer: up to 5 s after the TRANSFER or any time before it, not before the first answer
    target_answer = transferred + draw(st.integers(answered - transferred, 5))
    if draw(st.booleans()):
        ev(EventKind.RING, draw(st.integers(answered, target_answer)), agent_login=target)
    ev(EventKind.ANSWER, target_answer, agent_login=target)
    who = draw(st.sampled_from([source, None]))  # some PBXs do not say who transferred
    ev(EventKind.TRANSFER, transferred, agent_login=who, target_login=target)
    settled = max(transferred, target_answer)
    if draw(st.booleans()):
        ev(EventKind.LEG_END, settled + draw(st.integers(0, 3)), agent_login=source)
    if draw(st.booleans()):
        ev(EventKind.END, settled + draw(st.integers(4, 60)))
    return ev.events, AGENT_OF[source], AGENT_OF[target]


@SETTINGS
@given(transfer=transfers(), data=st.data())
def test_a_transfer_between_two_agents_names_who_transferred_whatever_the_clocks_and_arrival(transfer, data):
    events, source, target = transfer
    batches = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    sb, _ = run(data.draw(st.permutations(events)), batches)
    (call,) = sb.calls.values()
    assert (call.agent, call.transferred_from, call.agents) == (target, source, [source, target])
    assert call.transferred_from != call.agent
