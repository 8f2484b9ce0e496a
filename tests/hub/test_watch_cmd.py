"""`ctid watch` against a live hub, as a user runs it (a subprocess): prints events, follows a
server restart (Close with allowReconnect), exits with one line on a bad token or a final Close."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial

import trio

from ctid.cli.watch_cmd import describe
from ctid.hub import Hub

from .conftest import FakeBackend, running_hub


def test_describe_lines() -> None:
    call = {"id": "c1", "state": "ringing", "direction": "inbound", "remote_number": "+7495", "agent": None}
    assert describe("callUpdated", call) == "callUpdated   c1 state=ringing direction=inbound remote_number=+7495"
    assert describe("agentUpdated", {"id": "alice", "presence": "busy", "status": "available"}) == (
        "agentUpdated  alice presence=busy status=available"
    )
    assert describe("taskUpdated", {"id": "t", "status": "open", "number": "+1", "missed_count": 2}) == (
        "taskUpdated   t status=open number=+1 missed_count=2"
    )
    assert describe("somethingNew", [1]) == "somethingNew [1]"


class Lines:
    def __init__(self, stream: trio.abc.ReceiveStream):
        self.stream, self.buffer = stream, b""

    async def next(self) -> str:
        with trio.fail_after(10):
            while b"\n" not in self.buffer:
                chunk = await self.stream.receive_some()
                assert chunk, "ctid watch exited"
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


async def test_watch_prints_events_and_follows_a_restart() -> None:
    hub = Hub(FakeBackend())
    async with running_hub(hub) as url, trio.open_nursery() as nursery:
        command = [sys.executable, "-m", "ctid", "watch", "--url", url, "--json", "--snapshot"]
        process: trio.Process = await nursery.start(partial(
            trio.run_process, command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
            env={"CTID_TOKEN": "tok-sue", "PATH": "/usr/bin:/bin"},
        ))
        out, err = Lines(process.stdout), Lines(process.stderr)
        assert json.loads(await out.next()) == {"target": "snapshot", "data": {"calls": [], "agents": [], "tasks": []}}
        hub.publish_call({"id": "c1", "state": "ringing"}, {"alice"})
        assert json.loads(await out.next()) == {"target": "callUpdated", "data": {"id": "c1", "state": "ringing"}}

        await hub.close_all(allow_reconnect=True, refuse_new=False)
        assert "reconnecting" in await err.next()
        assert json.loads(await out.next())["target"] == "snapshot"  # reconnected
        hub.publish_agent({"id": "bob", "status": "away"})
        assert json.loads(await out.next()) == {"target": "agentUpdated", "data": {"id": "bob", "status": "away"}}

        await hub.close_all(allow_reconnect=False)
        with trio.fail_after(10):
            await process.wait()
        assert process.returncode == 1
        assert await err.next() == "ctid: error: hub closed the connection: Server is shutting down."


async def test_watch_with_a_bad_token_exits_4_with_one_line() -> None:
    async with running_hub(Hub(FakeBackend())) as url:
        result = await trio.run_process(
            [sys.executable, "-m", "ctid", "watch", "--url", url, "--token", "wrong"], capture_stdout=True,
            capture_stderr=True, check=False,
        )
    assert result.returncode == 4
    assert result.stderr.decode().strip() == "ctid: error: the hub refused the access token"
