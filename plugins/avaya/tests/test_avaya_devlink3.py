"""DevLink3: framing, login against the fake IP Office, keep-alive and reconnect on a mock clock,
Delta3 party tracking, and bad bytes on the socket (skipped or closed, nothing received lost)."""

from __future__ import annotations

import contextlib
import re
import struct
from zoneinfo import ZoneInfo

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctid.model import EventKind
from ctid.testing.daemon import eventually
from ctid_avaya import devlink3 as d3
from ctid_avaya import simulate as s
from ctid_avaya.calllog import LegIndex
from ctid_avaya.client import DevLink3Client
from ctid_avaya.config import DevLink3Config
from ctid_avaya.delta3 import Detail, parse
from ctid_avaya.ipo_side import IpoSession, SessionClosed
from ctid_avaya.stats import Stats
from ctid_avaya.tracker import Tracker

NODE = s.node_of("192.168.42.3")
REFERENCE_EXAMPLES = """<Detail><Call>c0a82a03,3,,,,0,,200,,200,</Call>
 <PartyA>0a82a0300002329,1,19,1,2,0,1,0,0,2,2,5.23,,0,0,5678,,,,,,01707123456,100</PartyA>
 <Target_list><Target>c0a82a03000003fe,0,0,8,106,,4002,0,4,,,200,901707123456,100</Target>
  <Target>c0a82a03000003ff,0,0,8,106,,4003,0,4,,,200,901707123456,100</Target>
  <Target>c0a82a0300000407,0,0,8,106,,4001,0,4,,,200,901707123456,100</Target></Target_list></Detail>
<Detail><Call>c0a82a03,4,,,,0,,200,,200,</Call>
 <PartyA>c0a82a030000232a,1,2,1,0,0,1,0,0,2,2,5.23,,0,0,5678,,,,,,01707123456,100</PartyA>
 <PartyB>c0a82a0300000413,0,2,1,0,0,0,0,1,8,106,,4001,0,4,,,,,,200,901707123456,100</PartyB></Detail>
<CallLost>c0a82a03,c0a82a0300000413,1,16</CallLost>"""


async def filled(items: list, *, within: float) -> None:
    async def check():
        return bool(items)

    await eventually(check, within=within)


def cfg(**kw) -> DevLink3Config:
    base = dict(transport="tcp", port=1, username="ctid", password="s3cret-pass", keepalive=30,
                backoff_initial=1, backoff_max=8, auth_failure_backoff=600)
    base.update(kw)
    return DevLink3Config(**base)


def tracker() -> Tracker:
    return Tracker("ipo", ZoneInfo("UTC"), LegIndex(), login_for=lambda ext: ext, hunt_groups={"200": "sales"})


# -- framing ---------------------------------------------------------------------------------------
@given(st.binary(max_size=70_000))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_frames_round_trip_short_and_long_form(payload):
    payload = b"\x10\x30\x00\x11" + payload
    reader = d3.FrameReader()
    assert reader.feed(d3.encode_frame(payload)) == [payload]


def test_long_form_header_follows_the_reference():
    frame = d3.encode_frame(b"x" * 0x8000)
    total = 0x8000 + 4
    assert frame[:4] == bytes([0x49, 0x80 | (total >> 15), (total >> 8) & 0x7F, total & 0xFF])


def test_sha1_response_cuts_and_pads_the_password_to_16_bytes():
    import hashlib

    challenge = bytes(range(16))
    assert d3.sha1_response(challenge, "pw") == hashlib.sha1(challenge + b"pw" + b"\x00" * 14).digest()
    long = "p" * 40
    assert d3.sha1_response(challenge, long) == hashlib.sha1(challenge + b"p" * 16).digest()


# -- Delta3 ------------------------------------------------------------------------------------------
def test_the_reference_examples_parse_and_track():
    result = parse(REFERENCE_EXAMPLES)
    assert result.errors == []
    first, second, lost = result.records
    assert isinstance(first, Detail) and [t.identity for t in first.targets] == ["4002", "4003", "4001"]
    assert first.party_a.did == "5678" and first.party_a.cli == "01707123456" and first.party_a.is_trunk
    assert second.party_b.identity == "4001" and second.party_b.state == 2
    assert lost.end_id == "c0a82a0300000413" and lost.cause == 16
    t = tracker()
    kinds = [(e.kind, e.agent_login) for r in result.records for e in t.feed(r)]
    assert (EventKind.RING, "4002") in kinds and (EventKind.ANSWER, "4001") in kinds


def test_hunt_group_second_extension_answers_then_party_tracking_ends_the_call():
    t = tracker()
    a, t1, t2 = s.end_id(NODE, 10), s.end_id(NODE, 11), s.end_id(NODE, 12)
    trunk = s.party(a, inbound=True, state=1, cls=5, cli="79161234567", did="5678", public=1)
    events = t.feed(parse(s.detail(NODE, 1, trunk, None, [s.target(t1, "201"), s.target(t2, "202")], "200")).records[0])
    assert [(e.kind, e.agent_login, e.group) for e in events] == [
        (EventKind.RING, "201", "sales"), (EventKind.RING, "202", "sales")]
    answered = s.party(t2, inbound=False, state=2, cls=10, identity="202")
    events = t.feed(parse(s.detail(NODE, 1, trunk, answered, [], "200")).records[0])
    assert [(e.kind, e.agent_login) for e in events] == [(EventKind.LEG_END, "201"), (EventKind.ANSWER, "202")]
    assert t.feed(parse(s.call_lost(NODE, t2)).records[0]) == []  # the caller is still there
    events = t.feed(parse(s.call_lost(NODE, a)).records[0])
    assert [e.kind for e in events] == [EventKind.END] and t.active() == 0
    # replaying the same records after a restart gives the same keys (duplicates for ctid)
    again = tracker()
    keys = [e.key for text in (s.detail(NODE, 1, trunk, None, [s.target(t1, "201")], "200"),) for r in
            parse(text).records for e in again.feed(r)]
    assert keys[0].startswith("dl3:192.168.42.3-10-") and keys[0].endswith(":ring:201:0")


def test_hold_transfer_and_resync_after_a_reconnect():
    t = tracker()
    a, b, c = s.end_id(NODE, 20), s.end_id(NODE, 22), s.end_id(NODE, 24)
    trunk = s.party(a, inbound=True, state=2, cls=5, cli="79161234567", public=1)
    kinds = []
    for text in (s.detail(NODE, 2, trunk, s.party(b, inbound=False, state=2, cls=10, identity="201")),
                 s.detail(NODE, 2, trunk.replace(",2,1,0,", ",2,0,1,", 1),
                          s.party(b, inbound=False, state=2, cls=10, identity="201", audio=0)),
                 s.detail(NODE, 2, trunk, s.party(b, inbound=False, state=2, cls=10, identity="201")),
                 s.detail(NODE, 2, trunk, s.party(c, inbound=False, state=2, cls=10, identity="202"))):
        kinds += [(e.kind.value, e.agent_login, e.target_login) for e in t.feed(parse(text).records[0])]
    assert kinds == [("answer", "201", None), ("hold", "201", None), ("unhold", "201", None),
                     ("transfer", "201", "202")]
    t.begin_resync()  # reconnected; IP Office did not re-report call 2: it ended while we were away
    ended = t.finish_resync()
    assert [(e.kind, e.extra.get("reason")) for e in ended] == [(EventKind.END, "devlink3_resync")]


# -- the client against the fake unit ----------------------------------------------------------------
async def run_session(client, errors: list) -> None:
    """One DevLink3 session of ``client``; what it raises is kept in ``errors`` for the test to read."""
    try:
        await client._session()
    except Exception as exc:
        errors.append(exc)


async def _pair(session_kw=None, client_kw=None):
    """A client and an IpoSession joined by an in-memory stream pair."""
    left, right = trio.testing.memory_stream_pair()
    received, subscribed = [], []

    async def on_texts(texts):
        received.extend(texts)

    async def on_sub():
        subscribed.append(True)

    async def open_stream():
        return left

    client = DevLink3Client("ipo", "unit", cfg(**(client_kw or {})), on_texts=on_texts, on_subscribed=on_sub,
                            stats=Stats("ipo"), open_stream=open_stream)
    session = IpoSession(right, {"ctid": "s3cret-pass"}, **(session_kw or {}))
    return client, session, received, subscribed


async def test_login_subscribe_events_and_keepalive(autojump_clock):
    client, session, received, subscribed = await _pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client._session)
        await session.handshake()
        nursery.start_soon(session.serve_tests)
        await session.send_delta3(s.call_lost(NODE, s.end_id(NODE, 1)))
        await trio.sleep(95)  # three keep-alives, each answered
        assert session.tests == 3 and client.subscribed and client.pbx_type.startswith("Avaya IP500v2")
        assert received == [s.call_lost(NODE, s.end_id(NODE, 1))] and subscribed == [True]
        nursery.cancel_scope.cancel()


async def test_a_test_answer_arriving_before_the_write_returns_counts(autojump_clock):
    """The unit may answer a Test before the client's send_all returns (a slow write, a fast LAN):
    that answer must still count, or the next keep-alive tick drops a healthy link."""
    client, session, _, _ = await _pair()
    inner = client._open_stream

    class SlowWrites(trio.abc.Stream):
        def __init__(self, stream):
            self.stream = stream

        async def send_all(self, data):
            await self.stream.send_all(data)
            await trio.sleep(1)  # the bytes are out; the write call returns later

        async def wait_send_all_might_not_block(self):
            await self.stream.wait_send_all_might_not_block()

        async def receive_some(self, max_bytes=None):
            return await self.stream.receive_some(max_bytes)

        async def aclose(self):
            await self.stream.aclose()

    async def open_stream():
        return SlowWrites(await inner())

    client._open_stream = open_stream
    errors = []

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_session, client, errors)
        await session.handshake()

        async def answer_tests():
            with contextlib.suppress(SessionClosed):  # the client hung up: its error says why
                await session.serve_tests()

        nursery.start_soon(answer_tests)
        await trio.sleep(95)  # three keep-alives, each answered while the write was still returning
        nursery.cancel_scope.cancel()
    assert [str(e) for e in errors] == [] and session.tests == 3 and client.subscribed


async def test_a_silent_unit_is_detected_by_the_keepalive(autojump_clock):
    client, session, _, _ = await _pair(session_kw={"answer_tests": False})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.handshake)
        with pytest.raises(Exception) as caught:
            await client._session()
        nursery.cancel_scope.cancel()
    assert "Test packet" in str(caught.value)
    assert trio.current_time() == pytest.approx(60, abs=1)


@pytest.mark.parametrize("plain,transport,ok", [(False, "tcp", True), (True, "tls", True), (True, "tcp", False)])
async def test_sha1_and_plain_login(plain, transport, ok):
    client, session, _, _ = await _pair(session_kw={"plain": plain}, client_kw={"transport": transport})
    errors = []

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_session, client, errors)
        if ok:
            await session.handshake()
            assert session.subscribed
        else:  # the plain password is never sent over an unencrypted link
            with pytest.raises(SessionClosed, match="client closed"):
                await session.handshake()
            await filled(errors, within=2)
            assert "plain password" in str(errors[0])
        nursery.cancel_scope.cancel()


async def test_a_wrong_password_waits_long_before_retrying(autojump_clock):
    attempts = []
    client, _, _, _ = await _pair()

    async def open_stream():
        attempts.append(trio.current_time())
        left, right = trio.testing.memory_stream_pair()
        nursery.start_soon(_refuse, right)
        return left

    async def _refuse(stream):
        with pytest.raises(SessionClosed):
            await IpoSession(stream, {"ctid": "other"}).handshake()

    client._open_stream = open_stream
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.run)
        await trio.sleep(1300)
        nursery.cancel_scope.cancel()
    assert len(attempts) == 3 and attempts[1] - attempts[0] >= 600
    assert client.auth_refused and "0x80000041 auth failed" in client.last_error


async def test_reconnect_backoff_grows_and_is_capped(autojump_clock):
    attempts = []
    client, _, _, _ = await _pair()

    async def open_stream():
        attempts.append(trio.current_time())
        raise OSError("connection refused")

    client._open_stream = open_stream
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.run)
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps[0] < 1.3 and gaps[1] > 1.5 and max(gaps) < 8 * 1.25
    assert client.stats.errors[("devlink3", "connect")] == len(attempts)


# -- bad bytes ------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(min_size=1, max_size=64), cut=st.booleans())
def test_bad_bytes_close_cleanly_and_keep_what_came_before(garbage, cut):
    async def main():
        client, session, received, _ = await _pair()
        good = [s.call_lost(NODE, s.end_id(NODE, i)) for i in range(3)]
        async with trio.open_nursery() as nursery:
            errors = []
            nursery.start_soon(run_session, client, errors)
            await session.handshake()
            for text in good:
                await session.send_delta3(text)
            if cut:  # a frame header promising more than the unit sends, then the unit stops
                await session.send_raw(d3.encode_packet(d3.EVENT, None, b"\x7f\x00\x00\x01" + garbage)[:-1])
                await session.stream.aclose()
            else:  # bytes that are not a frame
                await session.send_raw(b"\x00" + garbage)
            await filled(errors, within=5)
            nursery.cancel_scope.cancel()
        assert received == good
        reason = errors[0].reason
        assert reason in ("truncated", "closed", "bad_frame")
    trio.run(main)


async def test_a_corrupt_event_body_is_skipped_not_fatal():
    client, session, received, _ = await _pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client._session)
        await session.handshake()
        bad_tuple = b"\x7f\x00\x00\x01" + struct.pack(">I", 1) + struct.pack(">IH", d3.TUPLE_DELTA3, 500) + b"x"
        await session.send_raw(d3.encode_packet(d3.EVENT, None, bad_tuple))
        await session.send_delta3(s.call_lost(NODE, s.end_id(NODE, 9)))
        await filled(received, within=5)
        nursery.cancel_scope.cancel()
    assert received == [s.call_lost(NODE, s.end_id(NODE, 9))]
    assert client.stats.errors[("devlink3", "bad_event")] == 1


_pieces = st.sampled_from(["<Detail>", "</Detail>", "<Call>", "</Call>", "<PartyA>", "</PartyA>", "<PartyB>",
                           "</PartyB>", "<Target>", "</Target>", "<CallLost>", "</CallLost>", "<AttemptReject>",
                           "</AttemptReject>", ",", "\"", "c0a82a03", "c0a82a0300000413", "1", "2", "201", " "])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_pieces, st.text(max_size=5)), max_size=60))
def test_any_delta3_text_parses_or_reports_and_tracking_never_raises(parts):
    text = "".join(parts)
    result = parse(text)
    t = tracker()
    for record in result.records:
        for event in t.feed(record):
            assert event.pbx_call_id and event.key.startswith("dl3:")


def test_calls_whose_end_never_came_are_forgotten_after_twelve_hours(monkeypatch):
    from datetime import UTC, datetime, timedelta

    from ctid_avaya import tracker as tracker_module

    monkeypatch.setattr(tracker_module, "FORGET_ABOVE", 2)
    clock = [datetime(2026, 5, 1, 8, 0, tzinfo=UTC)]
    t = tracker()
    t.now = lambda: clock[0]
    for index in range(3):
        trunk = s.party(s.end_id(NODE, 100 + index * 2), inbound=True, state=1, cls=5, cli="7916", public=1)
        t.feed(parse(s.detail(NODE, 50 + index, trunk, s.party(s.end_id(NODE, 101 + index * 2), inbound=False,
                                                                  state=1, cls=10, identity="201"))).records[0])
    assert t.active() == 3
    clock[0] += timedelta(hours=13)
    t.feed(parse(s.call_lost(NODE, s.end_id(NODE, 999))).records[0])
    assert t.active() == 0 and t._by_end == {}


_LAZY_RECORD = re.compile(r"<(Detail|CallLost|LinkLost|AttemptReject)>(.*?)</\1>", re.S)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_pieces, st.text(max_size=5)), max_size=60))
def test_records_are_found_as_the_lazy_regex_finds_them(parts):
    from ctid_avaya.delta3 import _RECORD, _elements

    text = "".join(parts)
    assert _elements(_RECORD, text) == [(m.group(1), m.group(2)) for m in _LAZY_RECORD.finditer(text)]


@pytest.mark.parametrize("text", ["<Detail>" * 8191, "<Detail>" + "<Call>" * 8000 + "</Detail>",
                                  "<CallLost>" * 6500 + "</Detail>"])
def test_unclosed_tags_filling_a_tuple_parse_in_linear_time(text):
    """A tuple holds up to 64 KB: openings without closes once took seconds each (the lazy regex
    rescanned the rest for every opening) and stalled the daemon's event loop."""
    import time

    began = time.perf_counter()
    result = parse(text)
    assert time.perf_counter() - began < 0.5  # the quadratic scan took over 7 s on the first text
    assert result.records == [] and len(result.errors) == 1
