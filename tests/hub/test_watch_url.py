"""`ctid watch --url http://host:port` (no path) reaches the hub at /hub; a wrong path gets a hint."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial

import pytest
import trio

from ctid.cli.watch_cmd import hub_url
from ctid.hub import Hub

from .conftest import FakeBackend, running_hub


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/hub"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/hub"),
        ("https://ctid.example.com?x=1", "https://ctid.example.com/hub?x=1"),
        ("http://127.0.0.1:8080/hub", "http://127.0.0.1:8080/hub"),
        ("https://example.com/ctid/hub/", "https://example.com/ctid/hub/"),
    ],
)
def test_hub_url(given: str, used: str) -> None:
    assert hub_url(given) == used


async def test_watch_without_hub_path_connects() -> None:
    hub = Hub(FakeBackend())
    async with running_hub(hub) as url, trio.open_nursery() as nursery:
        base = url.removesuffix("/hub")
        command = [sys.executable, "-m", "ctid", "watch", "--url", base, "--json", "--snapshot"]
        process: trio.Process = await nursery.start(partial(
            trio.run_process, command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
            env={"CTID_TOKEN": "tok-sue", "PATH": "/usr/bin:/bin"},
        ))
        buffer = b""
        with trio.fail_after(10):
            while b"\n" not in buffer:
                chunk = await process.stdout.receive_some()
                assert chunk, (await process.stderr.receive_some()).decode()
                buffer += chunk
        assert json.loads(buffer.split(b"\n")[0])["target"] == "snapshot"
        process.terminate()


async def test_watch_with_a_wrong_path_gives_a_hint() -> None:
    async with running_hub(Hub(FakeBackend())) as url:
        wrong = url.removesuffix("/hub") + "/api"
        result = await trio.run_process(
            [sys.executable, "-m", "ctid", "watch", "--url", wrong, "--token", "tok-sue"], capture_stdout=True,
            capture_stderr=True, check=False,
        )
    assert result.returncode == 1
    stderr = result.stderr.decode().strip()
    assert stderr.count("\n") == 0
    assert "HTTP 404" in stderr and f"no hub at {wrong}" in stderr and "/hub" in stderr
