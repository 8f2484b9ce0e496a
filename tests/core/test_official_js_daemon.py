"""The official @microsoft/signalr client (Node) against a real `ctid serve`: the screen pop of a
simulated ringing call within 100 ms, every hub method reaching the PBX, and automatic reconnect
after ctid restarts (its Close carries allowReconnect)."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import trio
import yaml

from ctid.builtins.generic import sign
from ctid.testing.daemon import ServeProcess
from ctid.testing.services import require_npm_packages

from .conftest import PASSWORDS, SECRET, make_config

JS_DIR = Path(__file__).resolve().parents[1] / "js"
START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


def _node_ready() -> None:
    require_npm_packages(JS_DIR, "@microsoft/signalr")


class Node:
    def __init__(self, process: trio.Process):
        self.process = process
        self.buffer = b""

    async def next(self, name: str, **match) -> dict:
        with trio.fail_after(15):
            while True:
                while b"\n" not in self.buffer:
                    chunk = await self.process.stdout.receive_some()
                    if not chunk:
                        raise AssertionError(f"node exited while waiting for {name!r}")
                    self.buffer += chunk
                line, self.buffer = self.buffer.split(b"\n", 1)
                event = json.loads(line)
                if event["event"] in ("error", "timeout"):
                    raise AssertionError(f"node script failed: {event}")
                if event["event"] == name and all(_get(event, k) == v for k, v in match.items()):
                    return event

    async def send(self, line: str) -> None:
        await self.process.stdin.send_all(line.encode() + b"\n")


def _get(event: dict, dotted: str):
    value = event
    for part in dotted.split("__"):
        value = value.get(part) if isinstance(value, dict) else None
    return value


async def _post(client, url, events):
    body = json.dumps(events).encode()
    response = await client.post(f"{url}/hooks/office", content=body, headers={"X-Ctid-Signature": sign(SECRET, body)})
    assert response.status_code == 200, response.text


async def test_official_js_client_against_ctid_serve(tmp_path, fake_pbx):
    _node_ready()
    path = tmp_path / "ctid.yaml"
    path.write_text(yaml.safe_dump(make_config(tmp_path, command_url=fake_pbx.url)))
    server = await trio.to_thread.run_sync(ServeProcess(path).start)
    try:
        async with httpx.AsyncClient(timeout=10) as client, trio.open_nursery() as nursery:
            response = await client.post(f"{server.url}/api/auth/token",
                                         json={"username": "alice", "password": PASSWORDS["alice"]})
            token = response.json()["access_token"]
            process = await nursery.start(partial(
                trio.run_process, ["node", str(JS_DIR / "daemon_client.mjs"), f"{server.url}/hub", token],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, check=False))
            node = Node(process)
            await node.next("started")

            sent_ms = time.time() * 1000
            await _post(client, server.url, [{"event": "ring", "call_id": "js-1", "from": "+79161234567",
                                              "agent": "101", "group": "sales", "timestamp": START.isoformat()}])
            pop = await node.next("callUpdated", call__pbx_call_id="js-1", call__state="ringing")
            assert pop["at"] - sent_ms < 100, f"screen pop after {pop['at'] - sent_ms:.0f} ms"
            assert pop["call"]["agent"] == "alice"

            await _post(client, server.url, [{"event": "answer", "call_id": "js-1", "agent": "101",
                                              "timestamp": (START + timedelta(seconds=3)).isoformat()}])
            call = (await node.next("callUpdated", call__pbx_call_id="js-1", call__state="talking"))["call"]
            for line in ("SetStatus available", "Snapshot", f"Hold {call['id']}", f"Unhold {call['id']}",
                         f"Transfer {call['id']} bob", f"Hangup {call['id']}", "Dial +79160001122",
                         "Hold no-such-call", "LaunchRockets"):
                await node.send(f"invoke {line}")
                result = await node.next("invoked", method=line.split(" ")[0])
                if line.startswith(("Hold no-such", "LaunchRockets")):
                    assert result.get("error"), result
                else:
                    assert "error" not in result, result
                if line == "Snapshot":
                    assert [c["pbx_call_id"] for c in result["result"]["calls"]] == ["js-1"]
            assert [c["command"] for c in fake_pbx.commands] == ["hold", "unhold", "transfer", "hangup", "dial"]

            # ctid restarts (SIGTERM → Close with allowReconnect); the client comes back by itself
            assert await trio.to_thread.run_sync(server.stop) == 0
            reconnecting = await node.next("reconnecting")
            assert "Server is restarting." in reconnecting["error"]
            await trio.to_thread.run_sync(server.start)
            await node.next("reconnected")
            await _post(client, server.url, [{"event": "ring", "call_id": "js-2", "from": "+79161234567",
                                              "agent": "101", "timestamp": START.isoformat()}])
            await node.next("callUpdated", call__pbx_call_id="js-2")
            await node.send("stop")
            await node.next("done")
    finally:
        server.kill()
