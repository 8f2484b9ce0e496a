"""A webhook whose events cannot be committed is answered 503 and not accepted: the PBX's retry is
stored as new, nothing is lost, and memory matches the database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import ctid.store.store as store_module
from ctid.builtins.generic import sign
from ctid.errors import StoreError
from ctid.testing.daemon import running_daemon

from .conftest import API_KEY, SECRET

ADMIN = {"Authorization": f"Bearer {API_KEY}"}
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


async def post(app, event):
    body = json.dumps(event).encode()
    return await app.client.post("/hooks/office", content=body, headers={"X-Ctid-Signature": sign(SECRET, body)})


async def test_a_failed_commit_is_not_an_acceptance(config, monkeypatch):
    real_write = store_module.write_group
    failing = {"on": False}

    def write_group(*args, **kwargs):
        if failing["on"]:
            raise StoreError("database is locked")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(store_module, "write_group", write_group)
    ring = {"event": "ring", "call_id": "dur-1", "id": "dur-1-a", "from": "+79161234567", "agent": "101",
            "timestamp": T0.isoformat()}
    answer = {"event": "answer", "call_id": "dur-1", "id": "dur-1-b", "agent": "101",
              "timestamp": (T0 + timedelta(seconds=6)).isoformat()}
    async with running_daemon(config) as app:
        failing["on"] = True
        response = await post(app, ring)
        assert (response.status_code, response.json()["error"]) == (503, "store_unavailable")
        assert app.daemon.switchboard.calls == {}  # nothing of it stays in memory
        failing["on"] = False
        assert (await post(app, ring)).status_code == 200  # the PBX retries: stored now
        assert (await post(app, answer)).status_code == 200
        [call] = (await app.client.get("/api/calls", headers=ADMIN)).json()["items"]
        assert (call["state"], call["remote_number"], call["wait_seconds"]) == ("talking", "+79161234567", 6.0)
        assert {e.key for e in await app.daemon.store.events_for_call(call["id"])} == {"dur-1-a", "dur-1-b"}

        # a failure on an event of a known call leaves the call as the database has it
        failing["on"] = True
        end = {"event": "end", "call_id": "dur-1", "id": "dur-1-c", "timestamp": (T0 + timedelta(seconds=66)).isoformat()}
        assert (await post(app, end)).status_code == 503
        assert app.daemon.switchboard.calls[call["id"]].state.value == "talking"
        failing["on"] = False
        assert (await post(app, end)).status_code == 200
        [call] = (await app.client.get("/api/calls", headers=ADMIN)).json()["items"]
        assert (call["state"], call["talk_seconds"]) == ("ended", 60.0)
