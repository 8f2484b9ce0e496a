"""The runnable examples of docs/hub-protocol.md work against a live hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import trio

from ctid.hub import Hub

from .conftest import FakeBackend, running_hub
from .test_js_client import JS_DIR, _node_ready

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


async def run_example(command: list[str], max_events: list[str], env: dict[str, str] | None = None) -> list[str]:
    """Run ``command URL TOKEN *max_events``: it prints a snapshot line first, then the events we
    publish once it is up (one of them for someone else), and stops after two."""
    hub = Hub(FakeBackend())
    async with running_hub(hub) as url, trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(partial(
            trio.run_process, [*command, url, "tok-alice", *max_events], stdout=subprocess.PIPE, check=False, env={**os.environ, **(env or {})},
        ))
        output = b""
        with trio.fail_after(15):
            while b"snapshot" not in output:
                chunk = await process.stdout.receive_some()
                assert chunk, f"example exited early: {output!r}"
                output += chunk
            hub.publish_call({"id": "c1", "state": "ringing"}, {"alice"})
            hub.publish_call({"id": "not-alices"}, {"bob"})
            hub.publish_task({"id": "t1", "owner": "alice"}, "alice")
            while chunk := await process.stdout.receive_some():
                output += chunk
            await process.wait()
        assert process.returncode == 0
    return output.decode().splitlines()


async def test_raw_python_example() -> None:
    lines = await run_example([sys.executable, str(EXAMPLES / "hub_raw_client.py")], ["--max-events", "2"])
    assert lines == [
        'snapshot {"calls": [], "agents": [], "tasks": []}',
        'callUpdated {"id": "c1", "state": "ringing"}',
        'taskUpdated {"id": "t1", "owner": "alice"}',
    ]


async def test_javascript_panel_example() -> None:
    _node_ready()
    lines = await run_example(["node", str(EXAMPLES / "hub_panel.js")], ["2"], env={"NODE_PATH": str(JS_DIR / "node_modules")})
    assert [line.split(" ", 1)[0] for line in lines] == ["snapshot", "callUpdated", "taskUpdated"]
    assert json.loads(lines[1].split(" ", 1)[1]) == {"id": "c1", "state": "ringing"}
