"""Recordings: delayed download with retries, local storage, ctid URLs, key sent only to the tenant."""

from __future__ import annotations

import os
import pathlib
import threading

import httpx
import pytest
import trio

from ctid.errors import PBXError
from ctid.model import Call, call_id_for
from ctid_megafon.connector import MegafonConnector
from megafon_kit import make_config, push

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


def _planned(storage):
    return sorted(key for kind, key in storage.data if kind == "download")


async def test_planned_download_survives_a_restart(make_connector, fake, storage, services, autojump_clock):
    link = fake.add_recording("call.mp3", AUDIO, missing_for=1)
    first = make_connector()
    await push(first, history_with(link))  # the process stops before the delay is over
    assert _planned(storage) == ["mf:R1"]
    await first.aclose()
    second = make_connector()  # a new process resumes the download from plugin storage
    path = services.data_dir / "recordings" / "mf" / f"{call_for(second).id}.mp3"
    async with trio.open_nursery() as nursery:
        await nursery.start(second.run)
        while _planned(storage):  # noqa: ASYNC110 - polling storage under the mock clock
            await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert [c.status for c in fake.received("recording")] == [404, 200]  # retries kept after the restart
    assert path.read_bytes() == AUDIO


async def test_given_up_download_is_no_longer_planned(make_connector, fake, storage, autojump_clock):
    connector = make_connector(recording_retries=1, recording_retry_interval=5)
    link = fake.add_recording("never.mp3", AUDIO, missing_for=100)
    async with trio.open_nursery() as nursery:
        await nursery.start(connector.run)
        await push(connector, history_with(link))
        while _planned(storage):  # noqa: ASYNC110 - polling storage under the mock clock
            await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert len(fake.received("recording")) == 2  # the first attempt and one retry, then it gave up


async def test_at_most_two_downloads_at_a_time(make_connector, fake, services, autojump_clock):
    class Slow(httpx.AsyncBaseTransport):
        """The fake tenant, answering recordings after 10 s; counts downloads in flight."""

        def __init__(self) -> None:
            self.inner = httpx.ASGITransport(app=fake)
            self.now = self.most = 0

        async def handle_async_request(self, request):
            self.now += 1
            self.most = max(self.most, self.now)
            try:
                await trio.sleep(10)
                return await self.inner.handle_async_request(request)
            finally:
                self.now -= 1

    slow = Slow()
    connector = MegafonConnector("mf", make_config(fake), services, transport=slow)
    async with trio.open_nursery() as nursery:
        await nursery.start(connector.run)
        for index in range(5):
            await push(connector, history_with(fake.add_recording(f"{index}.mp3", AUDIO), callid=f"R{index}"))
        folder = services.data_dir / "recordings" / "mf"
        while len(list(folder.glob("*.mp3"))) < 5:  # noqa: ASYNC110 - polling files under the mock clock
            await trio.sleep(1)
        nursery.cancel_scope.cancel()
    await connector.aclose()
    assert slow.most == 2


async def test_background_download_and_on_demand_fetch_racing_both_succeed(make_connector, fake, services,
                                                                          monkeypatch):
    """Both finish a download of the same call together: neither fails, the file is whole (W2-1)."""

    class Held(httpx.AsyncBaseTransport):
        """The fake tenant, answering recordings only once two downloads are in flight."""

        def __init__(self) -> None:
            self.inner = httpx.ASGITransport(app=fake)
            self.in_flight = 0
            self.both = trio.Event()

        async def handle_async_request(self, request):
            if "record" in request.url.path:
                self.in_flight += 1
                if self.in_flight == 2:
                    self.both.set()
                await self.both.wait()
            return await self.inner.handle_async_request(request)

    folder = services.data_dir / "recordings" / "mf"
    real_replace, barrier = os.replace, threading.Barrier(2, timeout=5)

    def replace_together(src, dst, *args, **kwargs):
        if pathlib.Path(dst).parent == folder:  # both writes are done before either file moves
            barrier.wait()
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace_together)
    held = Held()
    connector = MegafonConnector("mf", make_config(fake), services, transport=held)
    link = fake.add_recording("call.mp3", AUDIO)
    await push(connector, history_with(link))
    call = call_for(connector)
    results: list = []

    async def background() -> None:
        results.append(await connector.recordings.fetch(connector.client, "R1", call.id))

    async def on_demand() -> None:
        results.append(await connector.recording(call))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(background)
        nursery.start_soon(on_demand)
    await connector.aclose()
    assert results == [(AUDIO, "audio/mpeg")] * 2
    assert len(fake.received("recording")) == 2
    assert [p.name for p in folder.iterdir()] == [f"{call.id}.mp3"]  # no temporary file left behind
    assert (folder / f"{call.id}.mp3").read_bytes() == AUDIO
