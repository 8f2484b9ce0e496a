"""CoMagic notifications and Call API commands through the connector into ctid's reducer, in accounts
at UTC+3 and UTC-5: calls, outcomes, durations, transfers, hold time and callback tasks."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from comagic_kit import INSTANCE, deliver, make_config, transport
from ctid.config.models import AgentConfig
from ctid.directory import StaticDirectory
from ctid.model import CallState, Direction, Outcome
from ctid.services import Services
from ctid.switchboard import Switchboard
from ctid.testing.memory import MemorySink
from ctid_comagic.connector import ComagicConnector

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # winter: Moscow is UTC+3, New York UTC-5
CALLER = "79101234567"
ZONES = ["Europe/Moscow", "America/New_York"]


@pytest.fixture(params=ZONES)
async def wired(request, fake, storage, tmp_path):
    fake.timezone = request.param
    fake.clock.freeze(T0)
    directory = StaticDirectory({
        "a1": AgentConfig(name="Anna", pbx={INSTANCE: "101"}, groups=["sales"]),
        "a2": AgentConfig(name="Boris", pbx={INSTANCE: "102"}, groups=["sales"]),
        "a3": AgentConfig(name="Vera", pbx={INSTANCE: "103"}, groups=["sales"]),
    })
    sink = MemorySink()
    services = Services(directory=directory, events=sink, storage_factory=lambda _: storage,
                        public_url="https://ctid.example.com", data_dir=tmp_path)
    connector = ComagicConnector(INSTANCE, make_config(fake), services, transport=transport(fake),
                                 now=fake.clock.now)
    await connector.read_account()
    board = Switchboard(directory, recording_url=services.recording_url)
    yield fake, connector, board, sink
    await connector.aclose()


async def flush(fake, connector, board, sink, notes=None):
    """Deliver pending notifications and reduce every event the connector accepted or stated."""
    await deliver(connector, fake, sink, notes)
    board.apply(list(sink.events))


def only_call(board):
    (call,) = board.calls.values()
    return call


async def test_group_call_answered_by_the_second_employee(wired):
    fake, connector, board, sink = wired
    session = fake.incoming(CALLER, [101, 102])
    fake.clock.advance(6)
    fake.answer(session, 102)
    fake.clock.advance(80)
    fake.hang_up(session)
    await flush(fake, connector, board, sink)
    call = only_call(board)
    assert call.pbx_call_id == str(session) and call.started_at == T0  # local times read in the account's zone
    assert (call.state, call.outcome, call.agent, call.agents) == (CallState.ENDED, Outcome.ANSWERED, "a2", ["a2"])
    assert (call.wait_seconds, call.talk_seconds, call.hold_seconds) == (6, 80, 0)
    assert call.remote_number == "+79101234567" and call.line_number == "+74950000001"
    assert call.recording_url == f"https://ctid.example.com/api/calls/{call.id}/recording"
    assert board.tasks == {}


async def test_lost_call_opens_a_callback_task_that_the_next_answered_call_closes(wired):
    fake, connector, board, sink = wired
    lost = fake.incoming(CALLER, [101])
    fake.clock.advance(25)
    fake.hang_up(lost)
    await flush(fake, connector, board, sink)
    call = only_call(board)
    assert (call.outcome, call.agent, call.wait_seconds, call.talk_seconds) == (Outcome.MISSED, "a1", 25, None)
    (task,) = board.tasks.values()
    assert (task.number, task.owner, task.missed_calls, task.status.value) == ("+79101234567", "a1", [call.id], "open")
    assert task.first_missed_at == T0
    fake.clock.advance(600)
    back = fake.incoming(CALLER, [102])
    fake.clock.advance(4)
    fake.answer(back, 102)
    fake.clock.advance(30)
    fake.hang_up(back)
    await flush(fake, connector, board, sink)
    (task,) = board.tasks.values()
    assert task.status.value == "done" and task.closed_at == T0 + timedelta(seconds=629)


async def test_hold_and_blind_transfer_through_the_call_api(wired):
    fake, connector, board, sink = wired
    session = fake.incoming(CALLER, [101])
    fake.clock.advance(3)
    fake.answer(session, 101)
    await flush(fake, connector, board, sink)
    fake.clock.advance(7)
    await connector.hold(only_call(board), "101")
    board.apply(list(sink.events))
    assert only_call(board).state is CallState.HELD
    fake.clock.advance(15)
    await connector.unhold(only_call(board), "101")
    fake.clock.advance(15)
    await connector.transfer(only_call(board), "101", "102")
    await flush(fake, connector, board, sink)
    assert [r.method for r in fake.received(api="call")] == [
        "hold.call", "unhold.call", "hold.call", "make.call", "transfer.talk"]
    assert fake.received("make.call")[0].params["to"] == "202"  # Boris's extension from get.employees
    fake.clock.advance(2)
    fake.answer(session, 102)
    fake.clock.advance(40)
    fake.hang_up(session)
    await flush(fake, connector, board, sink)
    call = only_call(board)
    assert (call.outcome, call.agent, call.transferred_from, call.agents) == (
        Outcome.ANSWERED, "a2", "a1", ["a1", "a2"])
    assert (call.wait_seconds, call.hold_seconds, call.talk_seconds) == (3, 15, 79 - 15)
    # The Data API's report agrees and changes nothing but facts (clean talk excludes hold).
    before = call.to_json()
    board.apply(await connector.history(T0 - timedelta(hours=1)))
    after = only_call(board).to_json()
    assert {k: v for k, v in after.items() if k not in ("updated_at", "facts")} == {
        k: v for k, v in before.items() if k not in ("updated_at", "facts")}


async def consulting(wired, colleague: int) -> int:
    """A call Anna (101) answers after 3 s; 7 s later she starts a consultative transfer to
    ``colleague``, who picks up 5 s later and talks to her while the customer waits on hold."""
    fake, connector, board, sink = wired
    session = fake.incoming(CALLER, [101])
    fake.clock.advance(3)
    fake.answer(session, 101)
    await flush(fake, connector, board, sink)
    fake.clock.advance(7)
    await connector.transfer(only_call(board), "101", str(colleague), mode="consult")
    fake.clock.advance(5)
    fake.answer(session, colleague)
    await flush(fake, connector, board, sink)
    return session


async def test_consultative_transfer_cancelled_with_restore_talk(wired):
    fake, connector, board, sink = wired
    session = await consulting(wired, 102)  # Boris talks to Anna; the customer waits on hold
    call = only_call(board)
    assert (call.state, call.agent) == (CallState.HELD, "a1")
    fake.clock.advance(10)
    assert await connector.cancel_transfer(call, "101") == "102"
    await flush(fake, connector, board, sink)
    assert only_call(board).state is CallState.TALKING
    fake.clock.advance(20)
    fake.hang_up(session)
    await flush(fake, connector, board, sink)
    call = only_call(board)
    assert [r.method for r in fake.received(api="call")] == ["hold.call", "make.call", "restore.talk"]
    assert (call.outcome, call.agent, call.agents, call.transferred_from) == (Outcome.ANSWERED, "a1", ["a1"], None)
    assert (call.wait_seconds, call.hold_seconds, call.talk_seconds) == (3, 15, 42 - 15)


async def test_consultative_transfer_completed(wired):
    fake, connector, board, sink = wired
    session = await consulting(wired, 103)
    fake.clock.advance(10)
    assert await connector.complete_transfer(only_call(board), "101") == "103"
    fake.clock.advance(30)
    fake.hang_up(session)
    await flush(fake, connector, board, sink)
    call = only_call(board)
    assert fake.received("make.call")[0].params["to"] == "79160000103"  # Vera has no extension: her number
    assert (call.agent, call.transferred_from, call.agents) == ("a3", "a1", ["a1", "a3"])
    assert (call.hold_seconds, call.talk_seconds) == (15, 52 - 15)


async def test_duplicate_and_reordered_notifications_give_the_same_call(wired):
    fake, connector, board, sink = wired
    session = fake.incoming(CALLER, [101, 102, 103])
    fake.clock.advance(9)
    fake.answer(session, 103)
    fake.clock.advance(50)
    fake.hang_up(session)
    notes = fake.take()
    await flush(fake, connector, board, sink, notes)
    expected = only_call(board).to_json()
    for seed in range(3):
        shuffled = notes + random.Random(seed).sample(notes, len(notes))  # every one twice, any order
        random.Random(seed + 10).shuffle(shuffled)
        fresh_sink = MemorySink()
        fresh = Switchboard(board.directory, recording_url=connector.services.recording_url)
        await deliver(connector, fake, fresh_sink, shuffled)
        assert len(fresh_sink.events) == len(notes)  # duplicates have the same keys
        fresh.apply(fresh_sink.events)
        (call,) = fresh.calls.values()
        got = call.to_json()
        assert {k: v for k, v in got.items() if k != "updated_at"} == {
            k: v for k, v in expected.items() if k != "updated_at"}
    assert (expected["agent"], expected["wait_seconds"], expected["talk_seconds"]) == ("a3", 9, 50)


async def test_outbound_click_to_call_that_nobody_answers(wired):
    fake, connector, board, sink = wired
    session = await connector.dial("101", "+7 (916) 555-00-11")
    (start,) = fake.received("start.employee_call")
    assert start.params["employee"] == {"id": 101} and start.params["contact"] == "79165550011"
    assert start.params["external_id"] and fake.sessions[int(session)].external_id == start.params["external_id"]
    fake.clock.advance(30)
    fake.hang_up(int(session))
    await flush(fake, connector, board, sink)
    call = only_call(board)
    assert (call.direction, call.outcome, call.agent, call.wait_seconds) == (
        Direction.OUTBOUND, Outcome.NO_ANSWER, "a1", 30)
    assert board.tasks == {}  # unanswered outbound calls make no callback task


async def test_a_colleague_talk_stamped_before_ctid_transfer_does_not_misname_who_transferred(wired):
    """The PBX's clock runs 2 s behind ctid's: the colleague's "talk started" reads earlier than the
    transfer ctid stated; the call still moves from Anna to Boris once."""
    fake, connector, board, sink = wired
    session = fake.incoming(CALLER, [101])
    fake.clock.advance(3)
    fake.answer(session, 101)
    await flush(fake, connector, board, sink)
    fake.clock.advance(10)
    connector.now = lambda: fake.clock.now() + timedelta(seconds=2)  # ctid is ahead
    await connector.transfer(only_call(board), "101", "102")
    fake.clock.advance(1)
    fake.answer(session, 102)
    fake.clock.advance(30)
    fake.hang_up(session)
    await flush(fake, connector, board, sink)
    call = only_call(board)
    assert (call.agent, call.transferred_from, call.agents) == ("a2", "a1", ["a1", "a2"])
