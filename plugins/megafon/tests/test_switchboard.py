"""MegaFon pushes through the connector into ctid's reducer: calls, outcomes, durations, tasks."""

from __future__ import annotations

import random
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import trio

from ctid.config.models import AgentConfig
from ctid.directory import StaticDirectory
from ctid.model import CallState, Direction, Outcome
from ctid.services import Services
from ctid.switchboard import Switchboard
from ctid.testing.memory import MemorySink
from ctid_megafon.connector import MegafonConnector
from megafon_kit import make_config, request

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
CALLER = "79101234567"


@pytest.fixture
def directory() -> StaticDirectory:
    return StaticDirectory({
        "a1": AgentConfig(name="Anna", extension="701", pbx={"mf": "anna"}, groups=["sales"]),
        "a2": AgentConfig(name="Boris", extension="702", pbx={"mf": "Boris"}, groups=["sales"]),
        "a3": AgentConfig(name="Vera", extension="703", groups=["sales"]),  # known by extension only
    })


@pytest.fixture
async def wired(directory, fake, tmp_path):
    sink = MemorySink()
    services = Services(directory=directory, events=sink, public_url="https://ctid.example.com", data_dir=tmp_path)
    connector = MegafonConnector("mf", make_config(fake), services, transport=httpx.ASGITransport(app=fake))
    board = Switchboard(directory, recording_url=services.recording_url)
    yield connector, board, sink
    await connector.aclose()


@asynccontextmanager
async def running(directory, fake, tmp_path, **config):
    """A connector whose background task runs (settle and queue timers), a board and a sink; the
    task is stopped and the connector closed when the block ends."""
    sink = MemorySink()
    services = Services(directory=directory, events=sink, data_dir=tmp_path)
    connector = MegafonConnector("mf", make_config(fake, **config), services)
    async with trio.open_nursery() as nursery:
        await nursery.start(connector.run)
        yield connector, Switchboard(directory), sink
        nursery.cancel_scope.cancel()
    await connector.aclose()


def ev(state, user, callid="C1", direction="in", **more):
    return {"cmd": "event", "type": state, "user": user, "phone": CALLER, "callid": callid,
            "direction": direction, "diversion": "74950000001", **more}


def hist(status, user, callid="C1", direction="in", duration=60, wait=10, **more):
    return {"cmd": "history", "type": direction, "status": status, "user": user, "phone": CALLER,
            "callid": callid, "start": "20261125T100000Z", "duration": str(duration), "wait": str(wait),
            "diversion": "74950000001", **more}


def contact(callid="C1"):
    return {"cmd": "contact", "phone": CALLER, "callid": callid, "diversion": "74950000001"}


async def feed(connector, board, posts, *, start=T0, step=1.0):
    """Post each push (receipt times ``step`` seconds apart) and reduce what the connector made of it."""
    for index, post in enumerate(posts):
        result = await connector.handle_webhook(request(post, received_at=start + timedelta(seconds=index * step)))
        assert result.status == 200, result.body
        board.apply(result.events)


def only_call(board):
    (call,) = board.calls.values()
    return call


GROUP_ANSWERED = [
    contact(),
    ev("INCOMING", "anna", groupRealName="Sales"), ev("INCOMING", "boris", groupRealName="Sales"),
    ev("INCOMING", "703", groupRealName="Sales"),
    ev("ACCEPTED", "boris"), ev("CANCELLED", "anna"), ev("CANCELLED", "703"), ev("COMPLETED", "boris"),
    hist("Success", "boris", duration=95, wait=5, groupRealName="Sales",
         link="https://vats100.megapbx.ru/api/v2/call-records/record/2026-11-25/x/c1.mp3"),
]


async def test_group_call_answered_by_one_of_three(wired):
    connector, board, _ = wired
    await feed(connector, board, GROUP_ANSWERED[:5])
    ringing = only_call(board)
    assert ringing.state is CallState.TALKING and ringing.agent == "a2"
    await feed(connector, board, GROUP_ANSWERED[5:], start=T0 + timedelta(seconds=5))
    call = only_call(board)
    assert call.state is CallState.ENDED and call.outcome is Outcome.ANSWERED
    assert call.agent == "a2" and call.agents == ["a2"]
    assert (call.wait_seconds, call.talk_seconds) == (5, 90)  # history: duration includes wait
    assert call.remote_number == "+79101234567" and call.line_number == "+74950000001"
    assert call.group == "Sales"
    assert call.recording_url == f"https://ctid.example.com/api/calls/{call.id}/recording"
    assert board.tasks == {}


async def test_missed_call_to_a_group_opens_one_callback_task(wired):
    connector, board, _ = wired
    posts = [contact(), ev("INCOMING", "anna"), ev("INCOMING", "boris"), ev("CANCELLED", "anna"),
             ev("CANCELLED", "boris"), hist("missed", "pbx", duration=25, wait=25)]
    await feed(connector, board, posts)
    call = only_call(board)
    assert call.outcome is Outcome.MISSED and call.agent is None and call.agents == []
    assert call.wait_seconds == 25 and call.talk_seconds is None
    (task,) = board.tasks.values()
    assert task.number == "+79101234567" and task.missed_calls == [call.id] and task.status.value == "open"
    # A second miss from the same number updates the task instead of opening another.
    again = [ev("INCOMING", "anna", "C2"), ev("CANCELLED", "anna", "C2"), hist("Missed", "pbx", "C2", duration=30, wait=30)]
    await feed(connector, board, again, start=T0 + timedelta(minutes=5))
    (task,) = board.tasks.values()
    assert task.missed_count == 2


async def test_transfer_moves_the_call_to_the_second_agent(wired):
    connector, board, _ = wired
    posts = [contact("call-a"), ev("INCOMING", "anna", "call-a"), ev("ACCEPTED", "anna", "call-a"),
             ev("TRANSFERRED", "anna", "call-a", second_callid="call-b"), ev("COMPLETED", "anna", "call-a"),
             ev("INCOMING", "boris", "call-b"), ev("ACCEPTED", "boris", "call-b"), ev("COMPLETED", "boris", "call-b"),
             hist("Success", "boris", "call-b", duration=40, wait=3),
             hist("Success", "boris", "call-a", duration=100, wait=4)]
    await feed(connector, board, posts)
    call = only_call(board)
    assert call.pbx_call_id == "call-a" and call.outcome is Outcome.ANSWERED
    assert call.agent == "a2" and call.transferred_from == "a1" and call.agents == ["a1", "a2"]
    assert (call.wait_seconds, call.talk_seconds) == (4, 96)


async def test_outbound_no_answer(wired):
    connector, board, _ = wired
    posts = [ev("OUTGOING", "anna", "O1", direction="out"), ev("CANCELLED", "anna", "O1", direction="out"),
             hist("NotAvailable", "anna", "O1", direction="out", duration=30, wait=30)]
    await feed(connector, board, posts)
    call = only_call(board)
    assert call.direction is Direction.OUTBOUND and call.outcome is Outcome.NO_ANSWER
    assert call.remote_number == "+79101234567"
    assert board.tasks == {}  # callbacks are for inbound misses


async def test_busy_outbound_and_answered_callback_closes_the_task(wired):
    connector, board, _ = wired
    await feed(connector, board, [ev("INCOMING", "anna", "M1"), ev("CANCELLED", "anna", "M1"),
                                  hist("missed", "pbx", "M1", duration=20, wait=20)])
    assert [t.status.value for t in board.tasks.values()] == ["open"]
    await feed(connector, board, [ev("OUTGOING", "anna", "O2", direction="out"),
                                  ev("ACCEPTED", "anna", "O2", direction="out"),
                                  ev("COMPLETED", "anna", "O2", direction="out"),
                                  hist("Success", "anna", "O2", "out", duration=80, wait=10)], start=T0 + timedelta(minutes=10))
    assert [t.status.value for t in board.tasks.values()] == ["done"]


def _outcome_view(board):
    return sorted(
        (c.pbx_call_id, c.state.value, c.outcome.value if c.outcome else None, c.agent, tuple(c.agents),
         c.wait_seconds, c.talk_seconds, c.transferred_from)
        for c in board.calls.values()
    )


async def test_duplicates_and_shuffles_give_the_same_calls(directory, fake, tmp_path):
    missed = [contact("M1"), ev("INCOMING", "anna", "M1"), ev("INCOMING", "boris", "M1"),
              ev("CANCELLED", "anna", "M1"), ev("CANCELLED", "boris", "M1"), hist("missed", "pbx", "M1", duration=25, wait=25)]
    posts = GROUP_ANSWERED + missed
    results = []
    rng = random.Random(7)
    for attempt in range(12):
        services = Services(directory=directory, data_dir=tmp_path)
        connector = MegafonConnector("mf", make_config(fake), services)
        board = Switchboard(directory)
        order = list(posts) * (3 if attempt == 0 else 1)  # the first run: every post delivered three times
        if attempt:
            rng.shuffle(order)
        await feed(connector, board, order, step=0.2)
        results.append((_outcome_view(board), sorted((t.number, t.missed_count) for t in board.tasks.values())))
        await connector.aclose()
    assert all(result == results[0] for result in results)
    calls, tasks = results[0]
    assert [c[:4] for c in calls] == [("C1", "ended", "answered", "a2"), ("M1", "ended", "missed", None)]
    assert tasks == [("+79101234567", 1)]


async def test_reordered_legs_without_history_still_end_right(wired):
    connector, board, _ = wired
    # ACCEPTED overtakes INCOMING of the same leg; no contact push, no history yet.
    await feed(connector, board, [ev("INCOMING", "anna"), ev("ACCEPTED", "boris"), ev("INCOMING", "boris"),
                                  ev("CANCELLED", "anna"), ev("COMPLETED", "boris")])
    call = only_call(board)
    assert call.state is CallState.ENDED and call.outcome is Outcome.ANSWERED and call.agent == "a2"


async def test_settle_window_closes_a_call_whose_history_never_came(directory, fake, tmp_path, autojump_clock):
    async with running(directory, fake, tmp_path, settle_seconds=20) as (connector, board, sink):
        await feed(connector, board, [contact(), ev("INCOMING", "anna"), ev("CANCELLED", "anna")])
        assert only_call(board).state is CallState.RINGING  # the caller may still be queued
        await trio.sleep(19)
        assert sink.events == []
        await trio.sleep(2)
        assert len(sink.events) == 1
        board.apply(sink.events)
    call = only_call(board)
    assert call.state is CallState.ENDED and call.outcome is Outcome.MISSED
    assert len(board.tasks) == 1
    # history arriving later still corrects the call
    late = await connector.handle_webhook(request(hist("Success", "anna", duration=50, wait=20)))
    board.apply(late.events)
    assert only_call(board).outcome is Outcome.ANSWERED and only_call(board).agent == "a1"


async def test_settle_window_is_cancelled_by_a_new_leg_or_history(directory, fake, tmp_path, autojump_clock):
    async with running(directory, fake, tmp_path, settle_seconds=20) as (connector, board, sink):
        await connector.handle_webhook(request(ev("INCOMING", "anna")))
        await connector.handle_webhook(request(ev("CANCELLED", "anna")))
        await trio.sleep(10)
        await connector.handle_webhook(request(ev("INCOMING", "boris")))  # rings on: not settled
        await trio.sleep(30)
        assert sink.events == []
        await connector.handle_webhook(request(ev("CANCELLED", "boris")))
        await connector.handle_webhook(request(hist("missed", "pbx")))  # history came: nothing to settle
        await trio.sleep(60)
    assert sink.events == []


async def test_lost_webhook_recovered_by_reconciliation(wired, fake):
    connector, board, _ = wired
    await feed(connector, board, [ev("INCOMING", "anna", "P1"), ev("ACCEPTED", "anna", "P1"),
                                  ev("COMPLETED", "anna", "P1")])
    # P1's history push and all of P2 were lost in transit; the tenant's history has both.
    fake.history = [
        {"uid": "P1", "type": "in", "status": "success", "client": CALLER, "user": "anna",
         "start": "2026-11-25T10:00:00Z", "wait": 1, "duration": 3, "record": ""},
        {"uid": "P2", "type": "in", "status": "missed", "client": "79990001122", "user": "pbx",
         "start": "2026-11-25T10:05:00Z", "wait": 40, "duration": 40},
    ]
    first = board.apply(await connector.history(T0 - timedelta(hours=1)))
    assert sorted(c.pbx_call_id for c in first.calls) == ["P1", "P2"]
    again = board.apply(await connector.history(T0 - timedelta(hours=1)))
    assert not again  # the next pass changes nothing
    p1 = next(c for c in board.calls.values() if c.pbx_call_id == "P1")
    p2 = next(c for c in board.calls.values() if c.pbx_call_id == "P2")
    assert p1.outcome is Outcome.ANSWERED and p1.agent == "a1" and p1.talk_seconds == 2
    assert p2.outcome is Outcome.MISSED and p2.started_at == datetime(2026, 11, 25, 10, 5, tzinfo=UTC)
    assert p2.ended_at == datetime(2026, 11, 25, 10, 5, 40, tzinfo=UTC)
    assert [t.number for t in board.tasks.values()] == ["+79990001122"]


def test_directory_fixture_resolves_logins_case_insensitively(directory):
    assert directory.agent_for_login("mf", "boris") == "a2"
    assert directory.agent_for_login("mf", "703") == "a3"


async def test_settle_window_ends_an_answered_call_announced_by_contact(directory, fake, tmp_path, autojump_clock):
    async with running(directory, fake, tmp_path, settle_seconds=20) as (connector, board, sink):
        await feed(connector, board, [contact(), ev("INCOMING", "anna"), ev("ACCEPTED", "anna"),
                                      ev("COMPLETED", "anna")])
        assert only_call(board).state is CallState.TALKING  # the caller's leg is still up
        await trio.sleep(21)
        board.apply(sink.events)
    call = only_call(board)
    assert call.state is CallState.ENDED and call.outcome is Outcome.ANSWERED and call.agent == "a1"
    assert sink.events[0].agent_login is None and sink.events[0].extra["answered_by"] == "anna"


async def test_queue_timeout_closes_a_call_that_never_reached_an_agent(directory, fake, tmp_path, autojump_clock):
    async with running(directory, fake, tmp_path, queue_timeout=600) as (connector, board, sink):
        await feed(connector, board, [contact("Q1"), contact("Q2")])
        await trio.sleep(300)
        await feed(connector, board, [ev("INCOMING", "anna", "Q2")])  # Q2 reached an agent: normal rules
        await trio.sleep(301)
        board.apply(sink.events)
    assert [e.pbx_call_id for e in sink.events] == ["Q1"]
    q1 = next(c for c in board.calls.values() if c.pbx_call_id == "Q1")
    q2 = next(c for c in board.calls.values() if c.pbx_call_id == "Q2")
    assert q1.state is CallState.ENDED and q1.outcome is Outcome.MISSED
    assert q2.state is CallState.RINGING


async def test_a_sooner_deadline_wakes_the_settle_window_asleep_until_a_later_one(directory, fake, tmp_path,
                                                                                  autojump_clock):
    async with running(directory, fake, tmp_path, settle_seconds=20, queue_timeout=600) as (connector, board, sink):
        await connector.handle_webhook(request(contact("Q1")))  # due in 600 s
        await trio.sleep(1)
        await connector.handle_webhook(request(contact("C2")))
        await connector.handle_webhook(request(ev("INCOMING", "anna", "C2")))
        await connector.handle_webhook(request(ev("CANCELLED", "anna", "C2")))  # due in 20 s
        await trio.sleep(19)
        assert sink.events == []
        await trio.sleep(2)
        assert [e.pbx_call_id for e in sink.events] == ["C2"]
        await trio.sleep(600)
        assert [e.pbx_call_id for e in sink.events] == ["C2", "Q1"]


async def test_settle_window_re_arms_after_a_revival(directory, fake, tmp_path, autojump_clock):
    async with running(directory, fake, tmp_path, settle_seconds=20) as (connector, board, sink):
        await feed(connector, board, [contact(), ev("INCOMING", "anna"), ev("CANCELLED", "anna")])
        await trio.sleep(21)
        assert len(sink.events) == 1
        board.apply(sink.events)
        assert only_call(board).state is CallState.ENDED
        # The queue rings another phone: the call revives, is answered, and its legs end again.
        await feed(connector, board, [ev("INCOMING", "boris"), ev("ACCEPTED", "boris"), ev("COMPLETED", "boris")],
                   start=T0 + timedelta(seconds=30))
        assert only_call(board).state is CallState.TALKING  # the caller's leg is up again
        await trio.sleep(10)
        assert len(sink.events) == 1  # not before the window
        await trio.sleep(11)
        assert len(sink.events) == 2 and sink.events[1].key != sink.events[0].key
        board.apply(sink.events)
    call = only_call(board)
    assert call.state is CallState.ENDED and call.outcome is Outcome.ANSWERED and call.agent == "a2"


async def test_waterfall_rings_the_same_agent_twice(wired):
    connector, board, sink = wired
    posts = [contact(), ev("INCOMING", "anna"), ev("CANCELLED", "anna"), ev("INCOMING", "boris"),
             ev("CANCELLED", "boris"), ev("INCOMING", "anna")]
    await feed(connector, board, posts)
    call = only_call(board)
    assert call.state is CallState.RINGING and call.ringing_agents == ["a1"]  # anna's phone rings again
    # Her second ring is answered; ACCEPTED overtakes the second INCOMING's redelivery, which stays a duplicate.
    await feed(connector, board, [ev("ACCEPTED", "anna"), ev("INCOMING", "anna"), ev("COMPLETED", "anna")],
               start=T0 + timedelta(seconds=30))
    call = only_call(board)
    assert call.state is CallState.TALKING and call.agent == "a1"  # the caller's leg waits for history/settle
    await feed(connector, board, [hist("Success", "anna", duration=90, wait=40)], start=T0 + timedelta(seconds=90))
    call = only_call(board)
    assert call.outcome is Outcome.ANSWERED and call.agent == "a1" and call.wait_seconds == 40


async def test_second_ring_events_have_their_own_keys(connector):
    keys = []
    for post in [ev("INCOMING", "anna"), ev("INCOMING", "anna"), ev("CANCELLED", "anna"), ev("CANCELLED", "anna"),
                 ev("INCOMING", "anna"), ev("INCOMING", "anna"), ev("CANCELLED", "anna")]:
        keys.append((await connector.handle_webhook(request(post))).events[0].key)
    first, second = keys[0], keys[4]
    assert keys[1] == first and keys[3] == keys[2]  # redeliveries during a ring: duplicates
    assert second == first + ":ring2" and keys[5] == second  # a ring after the end: a new ring
    assert keys[6] == keys[2] + ":ring2"


def _transfer_tail():
    return [ev("TRANSFERRED", "anna", "call-a", second_callid="call-b"), ev("COMPLETED", "anna", "call-a"),
            contact("call-b"), ev("INCOMING", "boris", "call-b"), ev("ACCEPTED", "boris", "call-b"),
            ev("COMPLETED", "boris", "call-b")]


async def test_transferred_leg_joins_the_call_whatever_order_the_pushes_race_in(directory, fake, tmp_path):
    head = [contact("call-a"), ev("INCOMING", "anna", "call-a"), ev("ACCEPTED", "anna", "call-a")]
    tail = _transfer_tail()
    rng = random.Random(11)
    orders = [tail[2:] + tail[:2], tail[3:4] + tail[:3] + tail[4:], tail[3:5] + tail[:3] + tail[5:]]
    orders += [rng.sample(tail, len(tail)) for _ in range(40)]
    for order in orders:
        services = Services(directory=directory, data_dir=tmp_path)
        connector = MegafonConnector("mf", make_config(fake), services)
        board = Switchboard(directory)
        await feed(connector, board, head + order)
        (call,) = board.calls.values()  # no phantom call-b
        assert call.pbx_call_id == "call-a" and call.state is CallState.TALKING, order
        assert (call.agent, call.transferred_from, call.agents) == ("a2", "a1", ["a1", "a2"]), [(p["cmd"], p.get("type"), p["callid"]) for p in order]
        await feed(connector, board, [hist("Success", "boris", "call-a", duration=100, wait=4)],
                   start=T0 + timedelta(minutes=1))
        (call,) = board.calls.values()
        assert call.state is CallState.ENDED and call.outcome is Outcome.ANSWERED and call.agent == "a2"
        assert board.agents["a2"].ringing_call is None and board.agents["a2"].current_call is None
        await connector.aclose()


async def test_a_new_call_from_a_talking_number_waits_only_the_race_window(directory, fake, tmp_path,
                                                                         autojump_clock):
    async with running(directory, fake, tmp_path, transfer_race_seconds=3) as (connector, board, sink):
        await feed(connector, board, [ev("INCOMING", "anna", "call-a"), ev("ACCEPTED", "anna", "call-a")])
        # Another call from the same number, no TRANSFERRED names it: held, then a call of its own.
        await feed(connector, board, [ev("INCOMING", "boris", "call-c")])
        assert len(board.calls) == 1 and sink.events == []
        other = await connector.handle_webhook(request(ev("INCOMING", "vera", "call-d", phone="79990001122")))
        assert [e.pbx_call_id for e in other.events] == ["call-d"]  # another number: never held
        await trio.sleep(3.5)
        assert [(e.pbx_call_id, e.agent_login) for e in sink.events] == [("call-c", "boris")]
        board.apply(sink.events)
        # A TRANSFERRED later than the window does not move call-c's later pushes: it ends as itself.
        late = await connector.handle_webhook(request(ev("TRANSFERRED", "anna", "call-a", second_callid="call-c")))
        board.apply(late.events)
        cancelled = await connector.handle_webhook(request(ev("CANCELLED", "boris", "call-c")))
        assert [e.pbx_call_id for e in cancelled.events] == ["call-c"]
        board.apply(cancelled.events)
    call_c = next(c for c in board.calls.values() if c.pbx_call_id == "call-c")
    assert call_c.state is CallState.ENDED


async def test_redelivered_transferred_releases_the_early_leg_again(connector):
    for post in [ev("INCOMING", "anna", "call-a"), ev("ACCEPTED", "anna", "call-a"), ev("INCOMING", "boris", "call-b"),
                 ev("ACCEPTED", "boris", "call-b")]:
        await connector.handle_webhook(request(post))
    transferred = ev("TRANSFERRED", "anna", "call-a", second_callid="call-b")
    first = await connector.handle_webhook(request(transferred))
    # ctid could not commit the first answer's events (the PBX got an error): the redelivery carries them again
    again = await connector.handle_webhook(request(transferred))
    assert [(e.kind, e.key) for e in again.events] == [(e.kind, e.key) for e in first.events]
    assert [(e.kind.value, e.pbx_call_id, e.agent_login) for e in first.events] == [
        ("transfer", "call-a", "anna"), ("ring", "call-a", "boris"), ("answer", "call-a", "boris")]


async def test_redelivered_accepted_after_completed_is_a_duplicate(wired):
    """An ACCEPTED redelivered after its leg's COMPLETED does not re-open the ended call (W2-1)."""
    connector, board, sink = wired
    keys = []
    for index, post in enumerate([ev("INCOMING", "anna"), ev("ACCEPTED", "anna"), ev("COMPLETED", "anna"),
                                  ev("ACCEPTED", "anna")]):
        result = await connector.handle_webhook(request(post, received_at=T0 + timedelta(seconds=index)))
        keys += [event.key for event in result.events]
        board.apply(result.events)
    assert keys[3] == keys[1]  # the redelivery keeps its first delivery's key: the core drops it
    call = only_call(board)
    assert call.state is CallState.ENDED and call.outcome is Outcome.ANSWERED and call.agent == "a1"
    assert not board.agents["a1"].busy and board.agents["a1"].current_call is None
