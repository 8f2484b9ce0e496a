"""Interop with the PyPI ``signalrcore`` client: version-0 negotiate and handshake, skip
negotiation, ``headers`` (carrying the bearer token) in every invocation, case-sensitive
handlers, a client that never pings. signalrcore is threaded, so it runs in a subprocess
(tests/hub/signalrcore_client.py)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from ctid.hub import Hub

from .conftest import FakeBackend, running_hub

SCRIPT = Path(__file__).with_name("signalrcore_client.py")


async def read_event(process: trio.Process, state: dict[str, Any], name: str) -> dict[str, Any]:
    with trio.fail_after(15):
        while True:
            while b"\n" not in state["buffer"]:
                chunk = await process.stdout.receive_some()
                if not chunk:
                    raise AssertionError(f"signalrcore script exited before {name!r}: {state['events']}")
                state["buffer"] += chunk
            line, state["buffer"] = state["buffer"].split(b"\n", 1)
            event = json.loads(line)
            event["received"] = time.perf_counter()
            state["events"].append(event)
            if event["event"] == name:
                return event


async def test_signalrcore_client(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("signalrcore", reason="pip install signalrcore (the test extra)")
    caplog.set_level(logging.DEBUG)
    backend = FakeBackend()
    # short server Pings: signalrcore's stop() only returns after the next server frame
    hub = Hub(backend, ping_interval=0.5, client_timeout=1.5)
    async with running_hub(hub) as url, trio.open_nursery() as nursery:
        process = await nursery.start(
            partial(trio.run_process, [sys.executable, str(SCRIPT), url, "tok-alice"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, check=False)
        )
        state: dict[str, Any] = {"buffer": b"", "events": []}
        await read_event(process, state, "ready")
        names = [e.get("conn") for e in state["events"] if e["event"] == "started"]
        assert names == ["negotiated", "direct"]
        versions = sorted(conn.handshake_version for conn in hub.connections.values())
        assert versions == [0, 0]  # signalrcore speaks hub protocol version 0
        invoked = [(e["method"], e.get("result"), e.get("error")) for e in state["events"] if e["event"] == "invoked"]
        assert invoked == [
            ("SetStatus", {"agent": "alice", "status": "available"}, None),
            ("Dial", {"call_id": "call-1"}, None),
            ("Hold", None, None),
            ("Unhold", None, None),
            ("Transfer", None, None),
            ("Snapshot", {"calls": [{"id": "call-1", "agent": "alice", "state": "talking"}], "agents": [], "tasks": []}, None),
            ("Hangup", None, None),
            ("Hangup", None, "not_found: no call 'call-404'"),
            ("NoSuchMethod", None, "Unknown hub method 'NoSuchMethod'"),
        ]

        published = time.perf_counter()
        hub.publish_call({"id": "ring-1", "state": "ringing"}, {"alice"})
        hub.publish_call({"id": "bobs-call"}, {"bob"})
        await process.stdin.send_all(b"publish-done\n")
        first = await read_event(process, state, "callUpdated")
        assert first["received"] - published < 0.1
        summary = await read_event(process, state, "summary")
        assert sorted(summary["calls"]) == [["direct", "ring-1"], ["negotiated", "ring-1"]]
        assert summary["lowercase_fired"] == 0
        # 2.5 s with a 1.5 s client timeout: the silent (non-pinging) client was kept, as ASP.NET does
        assert len(hub.connections) == 2
        await process.stdin.send_all(b"stop\n")
        await read_event(process, state, "done")
    # signalrcore copies Authorization into each message's headers: never in our logs
    assert "tok-alice" not in caplog.text
