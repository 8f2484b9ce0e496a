"""Recordings: delayed download with retries, local storage, ctid URLs, key sent only to the tenant."""

from __future__ import annotations

import pytest
import trio

from ctid.errors import PBXError
from ctid.model import Call, call_id_for
from megafon_kit import push

AUDIO = b"ID3\x03fake-mp3-bytes"


def history_with(link: str, callid: str = "R1"):
    return {"cmd": "history", "type": "in", "status": "Success", "user": "anna", "phone": "79260001122",
            "callid": callid, "start": "20261125T090000Z", "duration": "65", "wait": "5", "link": link}


def call_for(connector, pbx_call_id: str = "R1") -> Call:
    return Call(id=call_id_for(connector.name, pbx_call_id), connector=connector.name, pbx_call_id=pbx_call_id)


async def test_background_download_waits_retries_and_stores(connector, fake, services, autojump_clock):
    link = fake.add_recording("call.mp3", AUDIO, missing_for=2)  # not written yet for two attempts
    async with trio.open_nursery() as nursery:
        await nursery.start(connector.run)
        start = trio.current_time()
        result = await push(connector, history_with(link))
        assert result.status == 200
        call = call_for(connector)
        path = services.data_dir / "recordings" / "mf" / f"{call.id}.mp3"
        while not path.exists():  # noqa: ASYNC110 - polling a file under the mock clock
            await trio.sleep(1)
        nursery.cancel_scope.cancel()
    attempts = fake.received("recording")
    assert [c.status for c in attempts] == [404, 404, 200]
    # the delay, then two retry intervals (file I/O runs in threads, which lets the mock clock jump a little)
    assert attempts[0].at - start >= 20
    assert [b.at - a.at for a, b in zip(attempts, attempts[1:], strict=False)] == [60, 60]
    assert all(c.headers["x-api-key"] == fake.api_key for c in attempts)
    assert path.read_bytes() == AUDIO
    assert await connector.recording(call) == (AUDIO, "audio/mpeg")
    assert len(fake.received("recording")) == 3  # served from disk afterwards


async def test_on_demand_recording_is_one_attempt(connector, fake):
    link = fake.add_recording("late.mp3", AUDIO, missing_for=1)
    await push(connector, history_with(link))
    call = call_for(connector)
    assert await connector.recording(call) is None  # 404: not there yet, no long wait in a user request
    assert await connector.recording(call) == (AUDIO, "audio/mpeg")


async def test_retries_give_up_after_the_configured_attempts(make_connector, fake, autojump_clock):
    connector = make_connector(recording_retries=2, recording_retry_interval=30)
    link = fake.add_recording("never.mp3", AUDIO, missing_for=100)
    await push(connector, history_with(link))
    start = trio.current_time()
    result = await connector.recordings.fetch(connector.client, "R1", call_for(connector).id)
    assert result is None
    assert len(fake.received("recording")) == 3
    assert trio.current_time() - start == pytest.approx(60)


async def test_link_known_from_storage_after_restart(make_connector, fake, storage):
    link = fake.add_recording("a.mp3", AUDIO)
    first = make_connector()
    await push(first, history_with(link))
    second = make_connector()  # a new process: only plugin storage remembers the link
    assert await second.recording(call_for(second)) == (AUDIO, "audio/mpeg")


async def test_no_link_means_no_recording(connector):
    assert await connector.recording(call_for(connector, "unknown")) is None


async def test_api_key_is_not_sent_to_a_foreign_host(connector, fake):
    fake.recordings["/api/v2/call-records/record/x/y.mp3"] = fake.recordings.get("x") or __import__(
        "ctid_megafon.testing.fake_server", fromlist=["Recording"]).Recording(AUDIO)
    await push(connector, history_with("https://records.elsewhere.example/api/v2/call-records/record/x/y.mp3"))
    with pytest.raises(PBXError, match="401"):
        await connector.recording(call_for(connector))
    (command,) = fake.received("recording")
    assert "x-api-key" not in command.headers


async def test_non_http_link_is_refused(connector):
    await push(connector, history_with("file:///etc/passwd"))
    with pytest.raises(PBXError, match="not an http"):
        await connector.recording(call_for(connector))
