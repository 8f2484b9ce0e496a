"""Interop with the official ASP.NET Core SignalR JavaScript client (@microsoft/signalr) under
Node: negotiate and skipNegotiation, every hub method, callUpdated delivery, and automatic
reconnect after the server's Close with allowReconnect. The node script is tests/js/hub_client.mjs."""

from __future__ import annotations

import json
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import trio

from ctid.hub import Hub
from ctid.testing.services import require_npm_packages

from .conftest import FakeBackend, running_hub

JS_DIR = Path(__file__).resolve().parents[1] / "js"


def _node_ready() -> None:
    require_npm_packages(JS_DIR, "@microsoft/signalr")


class NodeScript:
    def __init__(self, process: trio.Process):
        self.process = process
        self.buffer = b""
        self.events: list[dict[str, Any]] = []

    async def event(self, name: str) -> dict[str, Any]:
        """Read lines until the event called ``name``; remember every event."""
        with trio.fail_after(10):
            while True:
                while b"\n" not in self.buffer:
                    chunk = await self.process.stdout.receive_some()
                    if not chunk:
                        raise AssertionError(f"node exited before {name!r}; events: {self.events}")
                    self.buffer += chunk
                line, self.buffer = self.buffer.split(b"\n", 1)
                event = json.loads(line)
                self.events.append(event)
                if event["event"] in ("error", "timeout"):
                    raise AssertionError(f"node script failed: {event}")
                if event["event"] == name:
                    return event

    async def command(self, text: str) -> None:
        await self.process.stdin.send_all(text.encode() + b"\n")


async def test_official_js_client() -> None:
    _node_ready()
    backend = FakeBackend()
    hub = Hub(backend, ping_interval=5)
    async with running_hub(hub) as url, trio.open_nursery() as nursery:
        process = await nursery.start(
            partial(trio.run_process, ["node", str(JS_DIR / "hub_client.mjs"), url, "tok-alice"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, check=False)
        )
        node = NodeScript(process)
        negotiated = await node.event("started")
        assert negotiated["conn"] == "negotiated" and negotiated["connectionId"]
        direct = await node.event("started")
        assert direct["conn"] == "direct" and direct["connectionId"] is None  # skipNegotiation

        await node.event("ready")
        invoked = [(e["method"], e.get("result"), e.get("error")) for e in node.events if e["event"] == "invoked"]
        assert invoked == [
            ("SetStatus", {"agent": "alice", "status": "available"}, None),
            ("Dial", {"call_id": "call-1"}, None),
            ("Hold", None, None),
            ("Unhold", None, None),
            ("Transfer", None, None),
            ("Snapshot", {"calls": [{"id": "call-1", "agent": "alice", "state": "talking"}], "agents": [], "tasks": []}, None),
            ("Hangup", None, None),
            ("Hangup", None, "not_found: no call 'no-such-call'"),
            ("LaunchRockets", None, "Unknown hub method 'LaunchRockets'"),
            ("Snapshot", {"calls": [{"id": "call-1", "agent": "alice", "state": "ended"}], "agents": [], "tasks": []}, None),
        ]
        assert backend.invocations[-2] == ("alice", "SetStatus", ["away"])  # the non-blocking send

        ringing = {"id": "ring-1", "state": "ringing", "ringing_agents": ["alice"]}
        hub.publish_call(ringing, {"alice"})
        hub.publish_call({"id": "not-yours"}, {"bob"})
        await node.command("publish-done")
        first = await node.event("callUpdated")
        second = await node.event("callUpdated")
        assert {first["conn"], second["conn"]} == {"negotiated", "direct"}
        assert first["call"] == second["call"] == ringing
        # the latency is measured in bench/screenpop.py (a timed assertion here would test the CI machine)

        await node.event("ready-for-restart")
        await hub.close_all(allow_reconnect=True, refuse_new=False)  # as a restarting instance does
        await node.command("restart-done")
        reconnecting = await node.event("reconnecting")
        assert "Server is restarting." in reconnecting["error"]
        reconnected = await node.event("reconnected")
        assert reconnected["connectionId"] != negotiated["connectionId"]
        after = await node.event("after-restart")
        assert after["state"] == "Connected"
        assert after["direct"] == "Disconnected"  # built without automatic reconnect
        hub.publish_call({"id": "after-restart"}, {"alice"})
        await node.command("publish-done")
        assert (await node.event("callUpdated"))["call"]["id"] == "after-restart"
        await node.command("stop")
        await node.event("done")
        assert not [e for e in node.events if e["event"] == "callUpdated" and e["call"]["id"] == "not-yours"]
