"""Scenario tests of the switchboard: each call shape with the exact numbers it must produce."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ctid.callback_tasks import is_void
from ctid.config.models import AgentConfig
from ctid.directory import StaticDirectory
from ctid.errors import ConfigError, NotFoundError, RequestError
from ctid.model import (
    CallEvent,
    CallState,
    Direction,
    EventKind,
    Outcome,
    Presence,
    TaskStatus,
    call_id_for,
    task_id_for,
)
from ctid.switchboard import Changes, Switchboard

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CALLER = "+79101234567"
LINE = "+74951234567"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def directory() -> StaticDirectory:
    return StaticDirectory(
        {
            "anna": AgentConfig(name="Anna", extension="101", groups=["sales"]),
            "boris": AgentConfig(name="Boris", extension="102", groups=["sales"], pbx={"mf": "boris.mf"}),
            "vera": AgentConfig(name="Vera", extension="103", groups=["sales", "support"]),
            "gleb": AgentConfig(name="Gleb", extension="104", groups=["support"]),
        }
    )


def board(**kwargs) -> Switchboard:
    return Switchboard(directory(), **kwargs)


_keys = itertools.count()


class PbxCall:
    """Builds the events of one PBX call (connector ``mf``) with unique idempotency keys."""

    def __init__(
        self, pbx_id: str, *, caller: str = "89101234567", direction: Direction | None = None, **common
    ):
        self.pbx_id = pbx_id
        self.common = {"remote_number": caller, "line_number": "74951234567", **common}
        if direction is not None:
            self.common["direction"] = direction
        self.id = call_id_for("mf", pbx_id)

    def __call__(self, kind: EventKind, seconds: float, **fields) -> CallEvent:
        values = {**self.common, **fields}
        return CallEvent(
            connector="mf",
            pbx_call_id=self.pbx_id,
            kind=kind,
            key=f"{self.pbx_id}-{next(_keys)}",
            at=at(seconds),
            received_at=at(seconds),
            **values,
        )


R, A, H, U, X, L, E, S = (
    EventKind.RING,
    EventKind.ANSWER,
    EventKind.HOLD,
    EventKind.UNHOLD,
    EventKind.TRANSFER,
    EventKind.LEG_END,
    EventKind.END,
    EventKind.SUMMARY,
)


def feed(sb: Switchboard, events: list[CallEvent]) -> Changes:
    """Apply events one by one (as webhooks arrive), merging the changes."""
    total = Changes()
    for event in events:
        total.merge(sb.apply([event]))
    return total


def available(sb: Switchboard, *agent_ids: str) -> None:
    for agent_id in agent_ids:
        sb.set_status(agent_id, Presence.AVAILABLE, T0 - timedelta(hours=1))


# -- answered / missed ------------------------------------------------------------------------------


def test_answered_inbound_call_with_agent_transitions():
    sb = board()
    available(sb, "anna")
    c = PbxCall("c1", direction=Direction.INBOUND, group="sales")

    ring = sb.apply([c(R, 0, agent_login="101")])
    call = sb.calls[c.id]
    assert (call.state, call.ringing_agents, call.agent) == (CallState.RINGING, ["anna"], "anna")
    assert call.remote_number == CALLER and call.line_number == LINE
    assert ring.calls == [call] and ring.ended == [] and len(ring.events) == 1
    assert sb.agents["anna"].ringing_call == c.id
    assert [(agent.id, previous) for agent, previous in ring.agents] == [("anna", "available")]

    answer = sb.apply([c(A, 5, agent_login="101")])
    call = sb.calls[c.id]
    assert (call.state, call.agent, call.agents, call.ringing_agents) == (
        CallState.TALKING,
        "anna",
        ["anna"],
        [],
    )
    assert call.wait_seconds == 5.0 and call.talk_seconds is None and call.answered_at == at(5)
    anna = sb.agents["anna"]
    assert anna.busy and anna.current_call == c.id and anna.ringing_call is None
    assert answer.agents == [(anna, "available")] and anna.to_json()["presence"] == "busy"

    end = sb.apply([c(E, 65)])
    call = sb.calls[c.id]
    assert call.state is CallState.ENDED and call.outcome is Outcome.ANSWERED
    assert (call.started_at, call.answered_at, call.ended_at) == (at(0), at(5), at(65))
    assert (call.wait_seconds, call.talk_seconds, call.hold_seconds) == (5.0, 60.0, 0.0)
    assert end.ended == [call] and end.tasks == []
    assert end.agents == [(anna, "busy")]
    assert not anna.busy and anna.idle_since == at(65) and anna.to_json()["presence"] == "available"
    assert sb.tasks == {}


def test_missed_single_agent_call_ends_when_its_leg_ends_and_opens_a_task():
    sb = board()
    c = PbxCall("m1", group="sales")
    changes = feed(sb, [c(R, 0, agent_login="101"), c(L, 20, agent_login="101")])
    call = sb.calls[c.id]
    assert call.direction is Direction.INBOUND  # default
    assert (call.state, call.outcome, call.agent) == (CallState.ENDED, Outcome.MISSED, "anna")
    assert (call.wait_seconds, call.talk_seconds, call.answered_at, call.ended_at) == (
        20.0,
        None,
        None,
        at(20),
    )
    task = sb.tasks[task_id_for(CALLER, c.id)]
    assert task.to_json() == {
        "id": task_id_for(CALLER, c.id),
        "number": CALLER,
        "status": "open",
        "missed_count": 1,
        "missed_calls": [c.id],
        "first_missed_at": "2026-03-02T09:00:00.000Z",
        "last_missed_at": "2026-03-02T09:00:00.000Z",
        "owner": "anna",
        "group": "sales",
        "line_number": LINE,
        "contact": None,
        "closed_by_call": None,
        "closed_at": None,
    }
    assert changes.tasks == [task] and changes.ended == [call]


def test_group_call_answered_by_one_of_three_is_answered_not_missed():
    sb = board()
    available(sb, "anna", "boris", "vera")
    c = PbxCall("g1", group="sales")
    sb.apply([c(R, 0, agent_login="101"), c(R, 0, agent_login="boris.mf"), c(R, 0, agent_login="103")])
    call = sb.calls[c.id]
    assert call.ringing_agents == ["anna", "boris", "vera"] and call.agent is None
    assert {sb.agents[a].ringing_call for a in ("anna", "boris", "vera")} == {c.id}

    changes = feed(
        sb,
        [
            c(A, 8, agent_login="103"),
            c(L, 8, agent_login="101", outcome=Outcome.NO_ANSWER),  # CANCELLED for the losers
            c(L, 8.5, agent_login="boris.mf", outcome=Outcome.NO_ANSWER),
            c(L, 100, agent_login="103"),
        ],
    )
    call = sb.calls[c.id]
    assert (call.outcome, call.agent, call.agents, call.group) == (
        Outcome.ANSWERED,
        "vera",
        ["vera"],
        "sales",
    )
    assert (call.wait_seconds, call.talk_seconds, call.ended_at) == (8.0, 92.0, at(100))
    assert sb.tasks == {} and changes.tasks == []
    assert sb.agents["anna"].ringing_call is None and sb.agents["anna"].idle_since is None
    assert sb.agents["vera"].idle_since == at(100)


def test_group_call_missed_by_everyone():
    sb = board()
    c = PbxCall("g2", group="sales")
    feed(
        sb,
        [
            c(R, 0, agent_login="101"),
            c(R, 0, agent_login="boris.mf"),
            c(L, 30, agent_login="101", outcome=Outcome.NO_ANSWER),
            c(E, 31),
        ],
    )
    call = sb.calls[c.id]
    assert (call.outcome, call.agent, call.wait_seconds, call.ended_at) == (
        Outcome.MISSED,
        None,
        31.0,
        at(31),
    )
    task = sb.tasks[task_id_for(CALLER, c.id)]
    assert (task.owner, task.group, task.missed_calls) == (None, "sales", [c.id])


def test_last_leg_end_hint_gives_the_outcome_of_an_unanswered_call():
    sb = board()
    c = PbxCall("g3")
    feed(sb, [c(R, 0, agent_login="101"), c(R, 0, agent_login="boris.mf"), c(L, 9, agent_login="101"),
              c(L, 10, agent_login="boris.mf", outcome=Outcome.NO_ANSWER)])  # fmt: skip
    assert sb.calls[c.id].outcome is Outcome.NO_ANSWER
    assert sb.tasks[task_id_for(CALLER, c.id)].owner is None  # it last rang for two agents


def test_caller_leg_keeps_a_queued_call_ringing_until_end():
    sb = board()
    c = PbxCall("q1")
    feed(sb, [c(R, 0), c(R, 5, agent_login="101"), c(L, 25, agent_login="101")])
    call = sb.calls[c.id]
    assert (call.state, call.ringing_agents, call.agent) == (CallState.RINGING, [], None)
    sb.apply([c(E, 40)])
    call = sb.calls[c.id]
    assert (call.outcome, call.wait_seconds, call.agent) == (Outcome.MISSED, 40.0, "anna")


def test_a_leg_ringing_again_revives_a_call_whose_legs_had_all_ended():
    sb = board()
    c = PbxCall("hunt")
    changes = feed(sb, [c(R, 0, agent_login="101"), c(L, 20, agent_login="101")])
    assert sb.calls[c.id].outcome is Outcome.MISSED and len(changes.tasks) == 1
    changes = feed(
        sb,
        [
            c(R, 21, agent_login="boris.mf"),
            c(A, 30, agent_login="boris.mf"),
            c(L, 60, agent_login="boris.mf"),
        ],
    )
    call = sb.calls[c.id]
    assert (call.outcome, call.agent, call.wait_seconds, call.talk_seconds) == (
        Outcome.ANSWERED,
        "boris",
        30.0,
        30.0,
    )
    assert sb.tasks == {}
    [void] = changes.tasks
    assert is_void(void) and void.id == task_id_for(CALLER, c.id)


def test_events_after_end_change_nothing_but_updated_at():
    sb = board()
    c = PbxCall("late")
    feed(sb, [c(R, 0, agent_login="101"), c(A, 2, agent_login="101"), c(E, 10)])
    before = sb.calls[c.id].to_json()
    changes = sb.apply([c(L, 11, agent_login="101"), c(H, 12)])
    after = sb.calls[c.id].to_json()
    assert after.pop("updated_at") != before.pop("updated_at") and after == before
    assert changes.ended == [] and changes.agents == []


# -- hold / transfer ---------------------------------------------------------------------------------


def test_hold_intervals_and_an_open_hold_closing_at_end():
    sb = board()
    c = PbxCall("h1")
    feed(sb, [c(R, 0, agent_login="101"), c(A, 2, agent_login="101"), c(H, 10), c(U, 20), c(H, 30)])
    call = sb.calls[c.id]
    assert (call.state, call.hold_seconds) == (CallState.HELD, 10.0)
    assert sb.agents["anna"].current_call == c.id  # still busy while holding
    sb.apply([c(H, 35), c(E, 50)])  # a second HOLD while held changes nothing
    call = sb.calls[c.id]
    assert (call.hold_seconds, call.talk_seconds, call.wait_seconds) == (30.0, 18.0, 2.0)


def test_durations_round_to_milliseconds():
    sb = board()
    c = PbxCall("r1")
    feed(sb, [c(R, 0, agent_login="101"), c(A, 1.23456, agent_login="101"), c(E, 11.0)])
    call = sb.calls[c.id]
    assert (call.wait_seconds, call.talk_seconds) == (1.235, 9.765)


def test_transfer_moves_the_call_to_the_target_agent():
    sb = board()
    available(sb, "anna", "boris")
    c = PbxCall("t1")
    feed(sb, [c(R, 0, agent_login="101"), c(A, 3, agent_login="101"), c(H, 10), c(U, 20)])
    changes = sb.apply([c(X, 30, agent_login="101", target_login="boris.mf")])
    call = sb.calls[c.id]
    assert (call.state, call.agent, call.transferred_from, call.agents) == (
        CallState.TALKING,
        "boris",
        "anna",
        ["anna", "boris"],
    )
    assert call.participants() == {"anna", "boris"}
    assert sb.agents["boris"].current_call == c.id and not sb.agents["anna"].busy
    assert {agent.id: previous for agent, previous in changes.agents} == {
        "anna": "busy",
        "boris": "available",
    }
    sb.apply([c(E, 90)])
    call = sb.calls[c.id]
    assert (call.wait_seconds, call.hold_seconds, call.talk_seconds) == (3.0, 10.0, 77.0)
    assert sb.agents["anna"].idle_since == at(90) == sb.agents["boris"].idle_since


def test_transfer_while_held_resumes_talking_and_closes_the_hold():
    sb = board()
    c = PbxCall("t2")
    feed(sb, [c(R, 0, agent_login="101"), c(A, 0, agent_login="101"), c(H, 10),
              c(X, 16, agent_login="101", target_login="103"), c(L, 40, agent_login="103")])  # fmt: skip
    call = sb.calls[c.id]
    assert (call.outcome, call.agent, call.hold_seconds, call.talk_seconds) == (
        Outcome.ANSWERED,
        "vera",
        6.0,
        34.0,
    )


def test_answer_by_another_phone_is_an_implicit_transfer():
    sb = board()
    c = PbxCall("t3")
    feed(sb, [c(R, 0, agent_login="101"), c(A, 1, agent_login="101"), c(R, 10, agent_login="boris.mf"),
              c(A, 12, agent_login="boris.mf"), c(L, 13, agent_login="101"), c(L, 50, agent_login="boris.mf")])  # fmt: skip
    call = sb.calls[c.id]
    assert (call.agent, call.transferred_from, call.agents, call.ended_at) == (
        "boris",
        "anna",
        ["anna", "boris"],
        at(50),
    )


@pytest.mark.parametrize("answer_at", [25, 30, 31], ids=["answer-stamped-first", "same-second", "transfer-first"])
def test_transfer_names_who_transferred_whichever_of_it_and_the_targets_answer_is_stamped_first(answer_at):
    # CoMagic's and other PBXs' clocks stamp the target's ANSWER before the TRANSFER that caused it
    # (at the same second the ANSWER sorts first too): the ANSWER alone is an implicit transfer,
    # the TRANSFER then only confirms it and must not name the target as the one who transferred.
    sb = board()
    c = PbxCall("t4")
    feed(sb, [c(R, 0, agent_login="101"), c(A, 3, agent_login="101"), c(R, 20, agent_login="boris.mf"),
              c(A, answer_at, agent_login="boris.mf"), c(X, 30, agent_login="101", target_login="boris.mf"),
              c(L, 32, agent_login="101")])  # fmt: skip
    call = sb.calls[c.id]
    assert (call.state, call.agent, call.transferred_from, call.agents) == (
        CallState.TALKING,
        "boris",
        "anna",
        ["anna", "boris"],
    )
    assert sb.agents["boris"].current_call == c.id and not sb.agents["anna"].busy


def test_transfer_confirming_an_answer_without_naming_who_transferred_keeps_the_previous_agent():
    sb = board()
    c = PbxCall("t5")
    feed(sb, [c(R, 0, agent_login="101"), c(A, 3, agent_login="101"), c(A, 25, agent_login="103"),
              c(X, 30, target_login="103")])  # fmt: skip
    call = sb.calls[c.id]
    assert (call.agent, call.transferred_from, call.agents) == ("vera", "anna", ["anna", "vera"])


def test_transfer_before_the_answer_stamped_after_the_targets_answer():
    # A blind transfer of a ringing call whose target's ANSWER is stamped before the TRANSFER.
    sb = board()
    c = PbxCall("t6")
    feed(sb, [c(R, 0, agent_login="101"), c(A, 9, agent_login="103"), c(X, 10, agent_login="101", target_login="103")])
    call = sb.calls[c.id]
    assert (call.agent, call.transferred_from, call.agents) == ("vera", "anna", ["vera"])


def test_unknown_logins_still_count_for_the_call():
    sb = board()
    c = PbxCall("u1")
    sb.apply([c(R, 0, agent_login="999")])
    assert sb.calls[c.id].ringing_agents == [] and sb.calls[c.id].agent is None
    feed(sb, [c(A, 4, agent_login="999"), c(X, 10, agent_login="999", target_login="101")])
    call = sb.calls[c.id]
    assert (call.state, call.agent, call.transferred_from, call.agents) == (
        CallState.TALKING,
        "anna",
        None,
        ["anna"],
    )
    feed(sb, [c(X, 20, agent_login="101", target_login="nobody"), c(L, 30, agent_login="nobody")])
    call = sb.calls[c.id]
    assert (call.outcome, call.agent, call.transferred_from, call.agents) == (
        Outcome.ANSWERED,
        None,
        "anna",
        ["anna"],
    )
    assert (call.wait_seconds, call.talk_seconds) == (4.0, 26.0)
    assert sb.tasks == {}


# -- outbound / busy ---------------------------------------------------------------------------------


def test_outbound_call_not_answered_is_no_answer_and_makes_no_task():
    sb = board()
    c = PbxCall("o1", direction=Direction.OUTBOUND)
    feed(sb, [c(R, 0, agent_login="101"), c(E, 25)])
    call = sb.calls[c.id]
    assert (call.direction, call.outcome, call.agent, call.wait_seconds) == (
        Direction.OUTBOUND,
        Outcome.NO_ANSWER,
        "anna",
        25.0,
    )
    assert sb.tasks == {} and sb.agents["anna"].idle_since == at(25)


def test_busy_hint_gives_busy_and_inbound_busy_asks_for_a_callback():
    sb = board()
    inbound = PbxCall("b1")
    outbound = PbxCall("b2", caller="89101112233", direction=Direction.OUTBOUND)
    feed(sb, [inbound(R, 0, agent_login="101"), inbound(E, 1, outcome=Outcome.BUSY),
              outbound(R, 5, agent_login="101"), outbound(E, 6, outcome=Outcome.BUSY)])  # fmt: skip
    assert sb.calls[inbound.id].outcome is Outcome.BUSY and sb.calls[outbound.id].outcome is Outcome.BUSY
    assert list(sb.tasks) == [task_id_for(CALLER, inbound.id)]


def test_answered_hint_on_end_without_answer_event_is_not_trusted():
    sb = board()
    c = PbxCall("n1")
    feed(sb, [c(R, 0, agent_login="101"), c(E, 5, outcome=Outcome.ANSWERED)])
    assert sb.calls[c.id].outcome is Outcome.MISSED


def test_callback_directions_are_configurable():
    sb = board(callback_directions=["inbound", "outbound"])
    c = PbxCall("o2", direction=Direction.OUTBOUND)
    feed(sb, [c(R, 0, agent_login="101"), c(E, 25)])
    assert list(sb.tasks) == [task_id_for(CALLER, c.id)]


# -- summary -----------------------------------------------------------------------------------------


def test_summary_alone_creates_a_complete_answered_call():
    sb = board()
    c = PbxCall("s1", direction=Direction.INBOUND, group="sales", recording="rec-77")
    changes = sb.apply(
        [c(S, 0, outcome=Outcome.ANSWERED, wait_seconds=10, total_seconds=70, agent_login="101")]
    )
    call = sb.calls[c.id]
    assert (call.state, call.outcome, call.agent, call.agents) == (
        CallState.ENDED,
        Outcome.ANSWERED,
        "anna",
        ["anna"],
    )
    assert (call.started_at, call.answered_at, call.ended_at) == (at(0), at(10), at(70))
    assert (call.wait_seconds, call.talk_seconds, call.hold_seconds) == (10.0, 60.0, 0.0)
    assert call.recording_url == "rec-77"
    assert changes.ended == [call] and sb.agents["anna"].idle_since == at(70)


def test_summary_alone_for_a_missed_call_opens_a_task():
    sb = board(recording_url=lambda call_id: f"https://ctid/api/calls/{call_id}/recording")
    c = PbxCall("s2")
    sb.apply([c(S, 0, outcome=Outcome.MISSED, wait_seconds=30, total_seconds=30, recording="r")])
    call = sb.calls[c.id]
    assert (call.outcome, call.ended_at, call.wait_seconds, call.talk_seconds) == (
        Outcome.MISSED,
        at(30),
        30.0,
        None,
    )
    assert call.recording_url == f"https://ctid/api/calls/{c.id}/recording"
    assert sb.tasks[task_id_for(CALLER, c.id)].missed_calls == [c.id]


def test_summary_alone_without_outcome_or_wait():
    sb = board()
    answered, silent = PbxCall("s3"), PbxCall("s4", caller="89101112233")
    sb.apply([answered(S, 0, talk_seconds=40, total_seconds=45), silent(S, 0, total_seconds=12)])
    one, two = sb.calls[answered.id], sb.calls[silent.id]
    assert (one.outcome, one.answered_at, one.wait_seconds, one.talk_seconds) == (
        Outcome.ANSWERED,
        at(5),
        5.0,
        40.0,
    )
    assert (two.outcome, two.wait_seconds, two.talk_seconds, two.ended_at) == (
        Outcome.MISSED,
        12.0,
        None,
        at(12),
    )


def test_summary_overrides_live_durations_and_ends_a_call_whose_end_was_lost():
    sb = board()
    c = PbxCall("s5")
    feed(sb, [c(R, 0, agent_login="101"), c(A, 5, agent_login="101")])
    changes = sb.apply(
        [c(S, 0, outcome=Outcome.ANSWERED, wait_seconds=4, talk_seconds=61.5, total_seconds=66)]
    )
    call = sb.calls[c.id]
    assert (call.state, call.outcome, call.ended_at) == (CallState.ENDED, Outcome.ANSWERED, at(66))
    # the history's clock wins: answered 4 s after its start, consistent with its wait
    assert (call.wait_seconds, call.talk_seconds, call.answered_at) == (4.0, 61.5, at(4))
    assert changes.ended == [call] and not sb.agents["anna"].busy


def test_summary_hold_total_replaces_the_hold_ctid_measured():
    """A CDR's hold total (Avaya SMDR field 15) beats the hold events ctid saw, or missed; the talk
    time computed from the call's times leaves it out; an unanswered summary has no hold."""
    sb = board()
    c, alone, missed = PbxCall("h1"), PbxCall("h2", caller="89101112233"), PbxCall("h3", caller="89101112234")
    feed(sb, [c(R, 0, agent_login="101"), c(A, 5, agent_login="101"), c(H, 20, agent_login="101"),
              c(U, 21, agent_login="101"), c(E, 65)])
    assert sb.calls[c.id].hold_seconds == 1.0 and sb.calls[c.id].talk_seconds == 59.0
    sb.apply([c(S, 0, outcome=Outcome.ANSWERED, hold_seconds=15),
              alone(S, 0, outcome=Outcome.ANSWERED, wait_seconds=5, total_seconds=65, hold_seconds=12),
              missed(S, 0, outcome=Outcome.MISSED, total_seconds=20, hold_seconds=3)])
    assert (sb.calls[c.id].hold_seconds, sb.calls[c.id].talk_seconds) == (15.0, 45.0)
    assert (sb.calls[alone.id].hold_seconds, sb.calls[alone.id].talk_seconds) == (12.0, 48.0)
    assert sb.calls[missed.id].hold_seconds == 0.0


def test_summary_times_replace_receipt_times_of_untimed_pushes():
    """A PBX whose pushes carry no time (receipt times are used) sends a history with its own clock:
    the call's start, answer and end follow the history."""
    sb = board()
    c = PbxCall("s5b")
    received = [c(R, 30, agent_login="101"), c(A, 50, agent_login="101"), c(E, 70)]
    untimed = [replace(e, at=None, received_at=e.at) for e in received]
    feed(sb, untimed + [c(S, 0, outcome=Outcome.ANSWERED, wait_seconds=10, talk_seconds=90, total_seconds=100)])
    call = sb.calls[c.id]
    assert (call.started_at, call.answered_at, call.ended_at) == (at(0), at(10), at(100))
    assert (call.wait_seconds, call.talk_seconds) == (10.0, 90.0)


def test_summary_correcting_a_missed_call_to_answered_withdraws_its_task():
    sb = board()
    c = PbxCall("s6")
    feed(sb, [c(R, 0, agent_login="101"), c(L, 20, agent_login="101")])
    task_id = task_id_for(CALLER, c.id)
    assert sb.tasks[task_id].status is TaskStatus.OPEN
    changes = sb.apply(
        [c(S, 0, outcome=Outcome.ANSWERED, wait_seconds=12, talk_seconds=40, agent_login="boris.mf")]
    )
    call = sb.calls[c.id]
    assert (call.outcome, call.agent, call.agents, call.answered_at) == (
        Outcome.ANSWERED,
        "boris",
        ["boris"],
        at(12),
    )
    assert (call.wait_seconds, call.talk_seconds) == (12.0, 40.0)
    assert sb.tasks == {}
    [void] = changes.tasks
    assert void.id == task_id and is_void(void) and void.closed_by_call is None
    assert changes.ended == [call]


def test_summary_correcting_an_answered_call_to_missed():
    sb = board()
    c = PbxCall("s7")
    feed(sb, [c(R, 0, agent_login="101"), c(A, 3, agent_login="101"), c(E, 30)])
    sb.apply([c(S, 0, outcome=Outcome.MISSED)])
    call = sb.calls[c.id]
    assert (call.outcome, call.answered_at, call.agents, call.talk_seconds, call.wait_seconds) == (
        Outcome.MISSED,
        None,
        [],
        None,
        30.0,
    )
    assert sb.tasks[task_id_for(CALLER, c.id)].owner == "anna"


# -- callback tasks ----------------------------------------------------------------------------------


def missed(pbx_id: str, start: float, **kwargs) -> list[CallEvent]:
    c = PbxCall(pbx_id, **kwargs)
    return [c(R, start, agent_login="101"), c(L, start + 20, agent_login="101")]


def answered(pbx_id: str, start: float, agent: str = "boris.mf", **kwargs) -> list[CallEvent]:
    c = PbxCall(pbx_id, **kwargs)
    return [c(R, start, agent_login=agent), c(A, start + 2, agent_login=agent), c(E, start + 60)]


def test_repeat_miss_updates_the_open_task():
    sb = board()
    feed(sb, missed("m1", 0, group="sales"))
    changes = feed(sb, missed("m2", 300, caller="+7 910 123-45-67"))
    first, second = call_id_for("mf", "m1"), call_id_for("mf", "m2")
    [task] = sb.tasks.values()
    assert task.id == task_id_for(CALLER, first) and changes.tasks == [task]
    assert (task.missed_calls, task.missed_count, task.first_missed_at, task.last_missed_at) == (
        [first, second],
        2,
        at(0),
        at(300),
    )
    assert (task.owner, task.group, task.status) == ("anna", "sales", TaskStatus.OPEN)


def test_later_answered_inbound_call_closes_the_task():
    sb = board()
    feed(sb, missed("m1", 0))
    changes = feed(sb, answered("a1", 600))
    [task] = sb.tasks.values()
    assert (task.status, task.closed_by_call, task.closed_at) == (
        TaskStatus.DONE,
        call_id_for("mf", "a1"),
        at(602),
    )
    assert changes.tasks == [task]
    feed(sb, missed("m3", 1200))  # a new miss after the callback opens a new task
    assert [t.status for t in sorted(sb.tasks.values(), key=lambda t: t.first_missed_at)] == [
        TaskStatus.DONE,
        TaskStatus.OPEN,
    ]


def test_answered_outbound_call_closes_the_task_and_unanswered_one_does_not():
    sb = board()
    feed(sb, missed("m1", 0))
    out = PbxCall("o1", direction=Direction.OUTBOUND)
    feed(sb, [out(R, 100, agent_login="101"), out(E, 130)])
    [task] = sb.tasks.values()
    assert task.status is TaskStatus.OPEN
    feed(sb, answered("o2", 200, agent="101", direction=Direction.OUTBOUND))
    assert (task := sb.tasks[task.id]).status is TaskStatus.DONE and task.closed_by_call == call_id_for(
        "mf", "o2"
    )


def test_answered_call_from_another_number_does_not_close_the_task():
    sb = board()
    feed(sb, missed("m1", 0))
    feed(sb, answered("a1", 100, caller="89990001122"))
    assert [t.status for t in sb.tasks.values()] == [TaskStatus.OPEN]


def test_late_answer_after_end_gives_the_ordered_result():
    ordered, shuffled = board(), board()
    c = PbxCall("late")
    events = [c(R, 0, agent_login="101"), c(A, 4, agent_login="101"), c(L, 30, agent_login="101"), c(E, 30)]
    feed(ordered, events)
    changes = feed(shuffled, [events[0], events[3], events[2], events[1]])
    assert shuffled.calls[c.id].to_json() == ordered.calls[c.id].to_json()
    assert shuffled.tasks == ordered.tasks == {}
    assert [is_void(t) for t in changes.tasks] == [True]  # the transient "missed" task was withdrawn


def test_a_late_earlier_miss_renames_the_task():
    sb = board()
    feed(sb, missed("m2", 300))
    changes = feed(sb, missed("m1", 0))
    first, second = call_id_for("mf", "m1"), call_id_for("mf", "m2")
    assert list(sb.tasks) == [task_id_for(CALLER, first)]
    assert sb.tasks[task_id_for(CALLER, first)].missed_calls == [first, second]
    assert {t.id: is_void(t) for t in changes.tasks} == {
        task_id_for(CALLER, second): True,
        task_id_for(CALLER, first): False,
    }


def test_task_contact_survives_rederivation():
    sb = board()
    feed(sb, missed("m1", 0))
    [task] = sb.tasks.values()
    task.contact = {"id": "c-1"}
    feed(sb, missed("m2", 100))
    assert sb.tasks[task.id].contact == {"id": "c-1"} and sb.tasks[task.id].missed_count == 2


# -- duplicates, agents ------------------------------------------------------------------------------


def test_duplicate_events_change_nothing():
    sb = board()
    c = PbxCall("d1")
    events = [c(R, 0, agent_login="101"), c(A, 1, agent_login="101")]
    first = sb.apply(events + events)
    assert len(first.events) == 2
    snapshot = sb.calls[c.id].to_json()
    again = sb.apply(events)
    assert not again and again == Changes() and sb.calls[c.id].to_json() == snapshot
    redelivered = CallEvent(**{**_fields(events[1]), "received_at": at(99)})  # same key, later
    assert not sb.apply([redelivered]) and sb.calls[c.id].to_json() == snapshot


def _fields(event: CallEvent) -> dict:
    return {name: getattr(event, name) for name in event.__dataclass_fields__}


def test_call_contact_survives_new_events():
    sb = board()
    c = PbxCall("k1")
    sb.apply([c(R, 0, agent_login="101")])
    sb.calls[c.id].contact = {"id": "crm-1"}
    sb.apply([c(A, 1, agent_login="101")])
    assert sb.calls[c.id].contact == {"id": "crm-1"}


def test_presence_changes_report_the_previous_presence():
    sb = board()
    changes = sb.set_status("anna", Presence.AVAILABLE, at(0))
    anna = sb.agents["anna"]
    assert changes.agents == [(anna, "offline")] and anna.status_since == at(0)
    assert not sb.set_status("anna", "available", at(5)) and anna.status_since == at(0)
    c = PbxCall("p1")
    feed(sb, [c(R, 10, agent_login="101"), c(A, 11, agent_login="101")])
    changes = sb.set_status("anna", Presence.AWAY, at(20))
    assert changes.agents == [(anna, "busy")] and anna.to_json()["presence"] == "busy"
    changes = sb.apply([c(E, 30)])
    assert changes.agents == [(anna, "busy")] and anna.to_json()["presence"] == "away"
    with pytest.raises(NotFoundError) as excinfo:
        sb.set_status("nobody", Presence.AVAILABLE, at(0))
    assert excinfo.value.error_id == "agent_not_found"
    with pytest.raises(RequestError):
        sb.set_status("anna", "sleeping", at(0))


def test_free_agent_picks_the_longest_idle_free_agent():
    sb = board()
    assert sb.free_agent(None) is None  # everyone is offline
    available(sb, "anna", "boris", "vera", "gleb")
    assert sb.free_agent(None).id == "anna"  # nobody had a call: agent id order
    feed(sb, answered("a1", 0, agent="101"))  # anna idle since 60
    feed(sb, answered("a2", 0, agent="boris.mf", caller="89990001111"))  # boris idle since 60
    feed(sb, answered("a3", 100, agent="103", caller="89990002222"))  # vera idle since 160
    assert sb.free_agent(None).id == "gleb"
    assert sb.free_agent("sales").id == "anna"
    assert sb.free_agent("sales", exclude={"anna"}).id == "boris"
    assert sb.free_agent("support", exclude={"gleb"}).id == "vera"
    ringing = PbxCall("r1", caller="89990003333")
    sb.apply([ringing(R, 200, agent_login="101")])
    assert sb.free_agent("sales").id == "boris"
    busy = PbxCall("b1", caller="89990004444")
    sb.apply([busy(R, 200, agent_login="boris.mf"), busy(A, 201, agent_login="boris.mf")])
    assert sb.free_agent("sales").id == "vera"
    sb.set_status("vera", Presence.DND, at(202))
    assert sb.free_agent("sales") is None
    assert sb.free_agent("nope") is None


# -- memory: evict / restore -------------------------------------------------------------------------


def test_evict_forgets_ended_calls_but_keeps_task_history():
    sb, reference = board(), board()
    history = missed("m1", 0) + answered("a1", 100, caller="89990001111") + missed("m2", 200)
    feed(sb, history)
    feed(reference, history)
    live = PbxCall("live", caller="89990002222")
    feed(sb, [live(R, 250, agent_login="103")])
    assert len(sb.evict(at(1000))) == 3
    assert set(sb.calls) == {live.id} and not sb.knows_call(call_id_for("mf", "m1"))
    [task] = sb.tasks.values()
    assert task.missed_calls == [call_id_for("mf", "m1"), call_id_for("mf", "m2")]
    assert sb.agents["boris"].idle_since == at(160)  # kept as a floor
    later = missed("m3", 2000) + answered("a4", 3000)
    changes = feed(sb, later)
    feed(reference, later)
    assert {t.id: t.to_json() for t in changes.tasks} == {task.id: reference.tasks[task.id].to_json()}
    assert reference.tasks[task.id].missed_count == 3 and reference.tasks[task.id].status is TaskStatus.DONE
    assert len(sb.evict(at(10_000))) == 2 and sb.tasks == {} and sb.calls == {live.id: sb.calls[live.id]}


def test_a_call_ending_after_eviction_is_not_moved_before_forgotten_history():
    sb = board()
    long_call = answered("long", 0)[:2]  # answered at 2, still talking
    feed(sb, long_call + missed("m1", 10))
    sb.evict(at(100))
    feed(sb, [PbxCall("long")(E, 500)])  # answered, but started before the miss: it closes nothing
    [task] = sb.tasks.values()
    assert task.status is TaskStatus.OPEN


def test_restore_call_rebuilds_silently_and_later_events_report():
    sb = board()
    c = PbxCall("rc")
    stored = [c(R, 0, agent_login="101"), c(A, 2, agent_login="101")]
    sb.restore_call(stored, contact={"id": "x"})
    assert sb.knows_call(c.id) and sb.calls[c.id].state is CallState.TALKING
    assert sb.calls[c.id].contact == {"id": "x"} and sb.agents["anna"].busy
    assert not sb.apply(stored)  # already known
    changes = sb.apply([c(E, 50)])
    assert changes.ended == [sb.calls[c.id]] and sb.calls[c.id].talk_seconds == 48.0
    with pytest.raises(ValueError):
        sb.restore_call(stored + missed("other", 0))


def test_restored_ended_call_does_not_count_twice_in_tasks():
    sb = board()
    feed(sb, missed("m1", 0))
    stored_task = next(iter(sb.tasks.values()))
    fresh = board()
    fresh.restore_tasks([stored_task], [])
    fresh.restore_call(missed("m1", 0))  # a late summary comes for it after a restart
    changes = fresh.apply([PbxCall("m1")(S, 0, outcome=Outcome.MISSED, wait_seconds=20, total_seconds=20)])
    assert changes.tasks == [] and fresh.tasks[stored_task.id].missed_count == 1


def test_restore_tasks_resumes_exactly():
    live, fresh = board(), board()
    history = (
        missed("m1", 0)
        + answered("a1", 100)
        + missed("m2", 200)
        + missed("x1", 210, caller="89990001111")
        + missed("m3", 300)
    )
    feed(live, history)
    recent = [call for call in live.calls.values() if call.started_at >= at(150)]
    fresh.restore_tasks(list(live.tasks.values()), recent)
    assert {k: t.to_json() for k, t in fresh.tasks.items()} == {k: t.to_json() for k, t in live.tasks.items()}
    # a reconciliation summary corrects a recent miss; both switchboards agree
    correction = PbxCall("m2")(S, 200, outcome=Outcome.ANSWERED, wait_seconds=5, talk_seconds=10)
    fresh.restore_call([e for e in history if e.pbx_call_id == "m2"])
    live_changes, fresh_changes = live.apply([correction]), fresh.apply([correction])
    assert [t.to_json() for t in fresh_changes.tasks] == [t.to_json() for t in live_changes.tasks]
    assert {k: t.to_json() for k, t in fresh.tasks.items()} == {k: t.to_json() for k, t in live.tasks.items()}
    more = answered("a2", 400) + missed("x2", 500, caller="89990001111")
    feed(live, more)
    feed(fresh, more)
    assert {k: t.to_json() for k, t in fresh.tasks.items()} == {k: t.to_json() for k, t in live.tasks.items()}


def test_restore_presence_and_idle_floor():
    sb = board()
    sb.restore_presence("gleb", "available", at(-50), idle_since=at(-10))
    sb.restore_presence("vera", Presence.AVAILABLE, at(-50))
    gleb = sb.agents["gleb"]
    assert (gleb.status, gleb.status_since, gleb.idle_since) == (Presence.AVAILABLE, at(-50), at(-10))
    assert sb.free_agent("support").id == "vera"


def test_changes_merge_keeps_latest_state_and_first_previous_presence():
    sb = board()
    c = PbxCall("mg")
    available(sb, "anna")
    one = sb.apply([c(R, 0, agent_login="101")])
    two = sb.apply([c(A, 1, agent_login="101")])
    merged = Changes().merge(one).merge(two)
    assert merged.calls == [sb.calls[c.id]] and len(merged.events) == 2
    assert merged.agents == [(sb.agents["anna"], "available")]
    assert bool(merged) and not Changes()


def test_legs_known_by_id_are_found_by_login():
    sb = board()
    c = PbxCall("legs")
    feed(sb, [c(R, 0, agent_login="101", leg_id="L1"), c(R, 0, agent_login="103", leg_id="L2"),
              c(L, 15, agent_login="101"), c(L, 16, leg_id="L2")])  # fmt: skip
    call = sb.calls[c.id]
    assert (call.state, call.outcome, call.ended_at) == (CallState.ENDED, Outcome.MISSED, at(16))


def test_transfer_to_a_leg_already_ringing_by_id():
    sb = board()
    c = PbxCall("legs2")
    feed(sb, [c(R, 0, agent_login="101", leg_id="L1"), c(A, 2, leg_id="L1"),
              c(R, 5, agent_login="103", leg_id="L2"), c(X, 7, agent_login="101", target_login="103"),
              c(L, 30, leg_id="L2")])  # fmt: skip
    call = sb.calls[c.id]
    assert (call.outcome, call.agent, call.agents, call.ended_at) == (Outcome.ANSWERED, "vera", ["anna", "vera"], at(30))


def test_internal_unanswered_call_is_no_answer():
    sb = board()
    c = PbxCall("i1", caller="103", direction=Direction.INTERNAL)
    feed(sb, [c(R, 0, agent_login="101"), c(E, 9)])
    call = sb.calls[c.id]
    assert (call.remote_number, call.outcome) == ("103", Outcome.NO_ANSWER) and sb.tasks == {}


def test_unknown_callback_direction_is_a_config_error():
    with pytest.raises(ConfigError) as excinfo:
        board(callback_directions=["inbound", "sideways"])
    assert excinfo.value.path == "callbacks.directions.1"
    assert board(callback_directions=()).callback_directions == frozenset()


def test_stale_calls_get_an_end_at_their_last_event():
    sb = board()
    ringing, talking, fresh = PbxCall("st1"), PbxCall("st2", caller="89990001111"), PbxCall("st3")
    feed(sb, [ringing(R, 0, agent_login="101"), talking(R, 0, agent_login="103"), talking(A, 10, agent_login="103"),
              fresh(R, 3000, agent_login="boris.mf")])  # fmt: skip
    assert sb.stale_call_events(at(600)) == []
    events = sb.stale_call_events(at(3600))
    assert [(e.pbx_call_id, e.kind, e.at, e.key) for e in events] == [("st1", E, at(0), f"ctid:stale:{ringing.id}")]
    sb.apply(events)
    call = sb.calls[ringing.id]
    assert (call.outcome, call.ended_at, call.wait_seconds) == (Outcome.MISSED, at(0), 0.0)
    assert not sb.agents["anna"].ringing_call and sb.agents["vera"].busy
    later = sb.stale_call_events(at(10 + 6 * 3600))
    assert [e.pbx_call_id for e in later] == ["st2", "st3"] and not sb.apply(events)
    sb.apply(later)
    assert sb.calls[talking.id].outcome is Outcome.ANSWERED and not sb.agents["vera"].busy
