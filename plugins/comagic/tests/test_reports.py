"""Data API: reconciliation recovers lost notifications idempotently; campaign, UTM and cost become facts;
windows, paging caps and ongoing calls; recordings fetched by ctid; employees imported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from comagic_kit import INSTANCE, deliver, make_config, transport
from ctid.config.models import AgentConfig
from ctid.directory import StaticDirectory
from ctid.model import CallState, EventKind, Outcome
from ctid.services import Services
from ctid.switchboard import Switchboard
from ctid.testing.memory import MemorySink
from ctid_comagic import reports
from ctid_comagic.connector import ComagicConnector
from ctid_comagic.templates import KINDS

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CALLER = "79101234567"
MARKETING = {"campaign_id": 77, "campaign_name": "Winter sale", "site_domain_name": "shop.example",
             "channel": "paid", "utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "winter",
             "utm_content": "banner-2", "utm_term": "boots"}


@pytest.fixture
async def wired(fake, storage, tmp_path):
    fake.clock.freeze(T0)
    directory = StaticDirectory({"a1": AgentConfig(name="Anna", pbx={INSTANCE: "101"}),
                                 "a2": AgentConfig(name="Boris", pbx={INSTANCE: "102"})})
    sink = MemorySink()
    services = Services(directory=directory, events=sink, storage_factory=lambda _: storage,
                        public_url="https://ctid.example.com", data_dir=tmp_path)
    connector = ComagicConnector(INSTANCE, make_config(fake), services, transport=transport(fake), now=fake.clock.now)
    await connector.read_account()
    yield fake, connector, Switchboard(directory, recording_url=services.recording_url), sink
    await connector.aclose()


async def test_a_notification_lost_in_transit_is_recovered_and_nothing_is_duplicated(wired):
    fake, connector, board, sink = wired
    fake.lost = {"talk_started", "talk_ended"}
    session = fake.incoming(CALLER, [101, 102], marketing=MARKETING, cost=4.25)
    fake.clock.advance(8)
    fake.answer(session, 102)
    fake.clock.advance(70)
    fake.hang_up(session)
    await deliver(connector, fake, sink)
    board.apply(sink.events)
    (call,) = board.calls.values()
    assert call.outcome is Outcome.MISSED  # the answer never arrived: ctid could not know
    recovered = await connector.history(T0 - timedelta(hours=2))
    changes = board.apply(recovered)
    assert changes.calls and changes.tasks  # the call turned answered; its transient task is void
    (call,) = board.calls.values()
    assert (call.outcome, call.agent, call.wait_seconds, call.talk_seconds) == (Outcome.ANSWERED, "a2", 8, 70)
    assert not [t for t in board.tasks.values() if t.missed_calls]
    # campaign, site, channel, UTM from the calls report; cost from the financial legs report
    assert call.facts == {"campaign_id": "77", "campaign": "Winter sale", "site": "shop.example", "channel": "paid",
                          "utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "winter",
                          "utm_content": "banner-2", "utm_term": "boots", "cost": 4.25, "currency": "RUB"}
    # a second pull, and the pushed notifications again, change nothing
    assert not board.apply(await connector.history(T0 - timedelta(hours=2)))
    assert await sink.submit(recovered) == len(recovered)
    assert await sink.submit(recovered) == 0


async def test_a_call_whose_notifications_were_all_lost_is_made_from_the_report(wired):
    fake, connector, board, sink = wired
    fake.lost = set(KINDS)
    session = fake.incoming(CALLER, [101])
    fake.clock.advance(5)
    ongoing = await connector.history(T0 - timedelta(hours=1))  # include_ongoing_calls: it rings
    assert [(e.kind, e.pbx_call_id, e.at) for e in ongoing] == [(EventKind.RING, str(session), T0)]
    board.apply(ongoing)
    assert board.calls[ongoing[0].call_id].state is CallState.RINGING
    fake.answer(session, 101)
    fake.clock.advance(30)
    fake.hang_up(session)
    board.apply(await connector.history(T0 - timedelta(hours=1)))
    (call,) = board.calls.values()
    assert (call.state, call.outcome, call.agent, call.talk_seconds, call.ended_at) == (
        CallState.ENDED, Outcome.ANSWERED, "a1", 30, T0 + timedelta(seconds=35))
    assert call.facts == {}  # campaign_id -1: the account has no campaigns; no cost billed


async def test_an_unknown_call_in_progress_is_recovered_talking_with_the_employee_the_report_names(wired):
    fake, connector, board, sink = wired
    fake.lost = set(KINDS)
    session = fake.incoming(CALLER, [101, 102])  # a group call, every notification lost
    fake.clock.advance(7)
    fake.answer(session, 102)
    fake.clock.advance(20)
    recovered = await connector.history(T0 - timedelta(hours=1))  # the report: 102 talks, wait 7 s
    assert [(e.kind, e.agent_login, e.at) for e in recovered] == [
        (EventKind.RING, None, T0), (EventKind.ANSWER, "102", T0 + timedelta(seconds=7))]
    board.apply(recovered)
    (call,) = board.calls.values()
    assert (call.state, call.agent) == (CallState.TALKING, "a2")
    assert not board.apply(await connector.history(T0 - timedelta(hours=1)))  # a second pull changes nothing
    fake.hang_up(session)
    board.apply(await connector.history(T0 - timedelta(hours=1)))
    (call,) = board.calls.values()
    assert (call.state, call.outcome, call.agent, call.wait_seconds) == (CallState.ENDED, Outcome.ANSWERED, "a2", 7)


async def test_a_known_call_still_ringing_is_answered_from_the_report(wired):
    fake, connector, board, sink = wired
    fake.lost = {"talk_started"}
    session = fake.incoming(CALLER, [101])
    fake.clock.advance(4)
    fake.answer(session, 101)
    await deliver(connector, fake, sink)
    board.apply(sink.events)
    (call,) = board.calls.values()
    assert call.state is CallState.RINGING

    class Reader:
        async def find_call(self, connector_name, pbx_call_id):
            return call

    connector.services.calls = Reader()
    recovered = await connector.history(T0 - timedelta(hours=1))
    assert [(e.kind, e.agent_login) for e in recovered] == [(EventKind.ANSWER, "101")]
    board.apply(recovered)
    (call,) = board.calls.values()
    assert (call.state, call.agent) == (CallState.TALKING, "a1")


async def test_the_post_call_pull_stores_facts_soon_after_the_call(wired, autojump_clock):
    fake, connector, board, sink = wired
    session = fake.incoming(CALLER, [101], marketing=MARKETING, cost=1.5)
    fake.clock.advance(3)
    fake.answer(session, 101)
    fake.clock.advance(20)
    fake.hang_up(session)
    async with trio.open_nursery() as nursery:
        await nursery.start(connector.run)
        await deliver(connector, fake, sink)
        await trio.sleep(connector.config.facts_delay + 1)
        nursery.cancel_scope.cancel()
    board.apply(sink.events)
    (call,) = board.calls.values()
    assert call.facts["utm_source"] == "yandex" and call.facts["cost"] == 1.5
    assert [r.params.get("filter") for r in fake.received("get.calls_report")] == [
        {"field": "id", "operator": "=", "value": session}]


async def test_report_windows_are_local_and_split_at_the_paging_caps(wired, monkeypatch):
    fake, connector, board, sink = wired
    fake.timezone = "America/New_York"
    await connector.read_account()
    for index in range(7):
        session = fake.incoming(f"7910123450{index}", [101])
        fake.clock.advance(10)
        fake.hang_up(session)
    fake.take()
    monkeypatch.setattr(reports, "MAX_OFFSET", 2)  # a small cap so the split shows with a few rows
    rows = await reports.calls(connector.client, T0 - timedelta(minutes=5), T0 + timedelta(hours=1), connector.tz,
                               limit=2)
    assert sorted(r["id"] for r in rows) == sorted(fake.sessions)
    first = fake.received("get.calls_report")[0].params
    assert (first["date_from"], first["date_till"]) == ("2026-12-01 03:55:00", "2026-12-01 05:00:00")
    assert all(r.params["offset"] <= 2 and r.params["limit"] == 2 for r in fake.received("get.calls_report"))
    assert len({(r.params["date_from"], r.params["date_till"]) for r in fake.received("get.calls_report")}) > 1
    long = await reports.calls(connector.client, T0 - timedelta(days=200), T0 - timedelta(seconds=1), connector.tz,
                               limit=100)
    assert long == [] and not [r for r in fake.received("get.calls_report") if r.error]  # 3-month windows


async def test_recordings_are_downloaded_by_ctid_and_served_from_disk(wired, autojump_clock):
    fake, connector, board, sink = wired
    session = fake.incoming(CALLER, [101])
    fake.answer(session, 101)
    fake.clock.advance(20)
    fake.hang_up(session)
    s = fake.sessions[session]
    async with trio.open_nursery() as nursery:
        await nursery.start(connector.run)
        await deliver(connector, fake, sink)
        board.apply(sink.events)
        (call,) = board.calls.values()
        assert await connector.recording(call) is None  # not written yet (404)
        fake.recordings[fake.record_hash(s)] = b"ID3-audio"
        await trio.sleep(connector.config.recording_delay + 1)
        nursery.cancel_scope.cancel()
    assert await connector.recording(call) == (b"ID3-audio", "audio/mpeg")
    assert (connector.recordings.directory / f"{call.id}.mp3").read_bytes() == b"ID3-audio"


async def test_import_users_suggests_agents(connector):
    data = await connector.import_users()
    assert data["agents"]["anna"] == {"name": "Anna A", "pbx": {"cm": "101"}, "extension": "201", "groups": ["sales"]}
    assert data["agents"]["vera"] == {"name": "Vera V", "pbx": {"cm": "103"}}


async def test_an_ongoing_call_ctid_knows_is_not_rung_again_from_the_report(wired):
    fake, connector, board, sink = wired

    class Reader:
        async def find_call(self, connector_name, pbx_call_id):
            return board.calls.get(next(iter(board.calls), ""))

        async def get_call(self, call_id):
            return None

    session = fake.incoming(CALLER, [101])
    fake.clock.advance(0.6)
    fake.answer(session, 101)
    await deliver(connector, fake, sink)
    board.apply(sink.events)
    connector.services.calls = Reader()
    assert await connector.history(T0 - timedelta(hours=1)) == []  # ongoing and known: nothing to recover
    connector.services.calls = None
    assert [e.kind for e in await connector.history(T0 - timedelta(hours=1))] == [EventKind.RING, EventKind.ANSWER]


async def test_an_unreadable_report_row_is_skipped_and_the_others_recovered(wired, monkeypatch):
    """One row of nonsense (tags a number, a start in year 9999) used to fail every reconciliation
    with a TypeError / OverflowError, so no lost notification of the window was ever recovered."""
    fake, connector, board, sink = wired
    fake.lost = set(KINDS)
    broken, fine = fake.incoming(CALLER, [101]), fake.incoming("79101234568", [102])
    fake.clock.advance(5)
    fake.answer(broken, 101)
    fake.answer(fine, 102)
    fake.clock.advance(30)
    fake.hang_up(broken)
    fake.hang_up(fine)
    original = type(fake).report_row

    def nonsense(self, s):
        row = original(self, s)
        if s.id == broken:
            row.update(tags=5, employees=7, call_records={"a": 1}, wait_duration=float("inf"))
        return row

    monkeypatch.setattr(type(fake), "report_row", nonsense)
    board.apply(await connector.history(T0 - timedelta(hours=1)))
    calls = {c.pbx_call_id: c for c in board.calls.values()}
    assert (calls[str(fine)].outcome, calls[str(fine)].agent, calls[str(fine)].talk_seconds) == (
        Outcome.ANSWERED, "a2", 30)
    assert calls[str(broken)].wait_seconds is None or calls[str(broken)].wait_seconds < 10**6


_ODD = [None, True, -1, 10**30, 1e308, float("inf"), float("nan"), "", "²", "9999-12-31 23:59:59",
        "0001-01-01 00:00:00", [], {}, [1, "a"], {"a": 1}, -(10**30)]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(reports.CALL_FIELDS), st.sampled_from(_ODD), min_size=1, max_size=6))
def test_read_row_takes_any_values_without_raising(changes):
    from zoneinfo import ZoneInfo

    row = {"id": 300000001, "start_time": "2026-12-06 10:00:00", "finish_time": "2026-12-06 10:01:00",
           "direction": "in", "wait_duration": 5, "clean_talk_duration": 45, "talk_duration": 50,
           "employees": [{"employee_id": 101, "is_talked": True}], "tags": [{"tag_name": "t"}],
           "call_records": ["ab" * 16], **changes}
    for zone in ("America/New_York", "Asia/Kamchatka"):
        read = reports.read_row(row, ZoneInfo(zone), "RU")
        if read is not None:
            for value in (read.wait, read.talk, read.total):
                assert value is None or 0 <= value < 10**7
