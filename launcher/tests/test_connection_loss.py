"""ctid going away while the launcher reads its snapshot: the hub's reader (the server's Close
"Server is restarting") and the snapshot request (connection reset) fail together, so the hub's
nursery raises both as an ExceptionGroup. Found end to end (test_e2e.py's restart test): the
connection loop caught only single errors and the launcher process died; it must reconnect."""

from __future__ import annotations

from contextlib import asynccontextmanager

import pytest
import trio
import trio.lowlevel

from ctid_launcher import app as app_module
from ctid_launcher import hub as hubclient
from ctid_launcher.api import Unreachable
from ctid_launcher.app import Launcher
from ctid_launcher.config import Settings
from ctid_launcher.credentials import TokenStore
from ctid_launcher.session.fake import FileWatcher

ALICE = {"id": "alice", "status": "available", "status_source": "launcher", "busy": False}


class GoneApi:
    """ctid's REST answers until the snapshot, which meets the reset of ctid's shutdown."""

    def __init__(self, failure: BaseException):
        self.failure = failure
        self.snapshots = 0
        self.third = trio.Event()
        self.token = "t"

    async def agent(self, _agent: str) -> dict:
        return ALICE

    async def renew_lease(self, _agent: str, _seconds: int) -> dict:
        return ALICE

    async def snapshot(self) -> dict:
        self.snapshots += 1
        if self.snapshots == 3:
            self.third.set()
        with trio.CancelScope(shield=True):  # the request was in flight when the hub closed
            await trio.lowlevel.checkpoint()
        raise self.failure


def closing_hub(reader_error: BaseException):
    @asynccontextmanager
    async def connect(_url: str, _token: str):
        async with hubclient._nursery() as nursery:  # the real hub's nursery
            async def reader() -> None:
                raise reader_error

            nursery.start_soon(reader)
            yield None
    return connect


async def run_loop(tmp_path, monkeypatch, api: GoneApi, reader_error: BaseException) -> None:
    monkeypatch.setattr(app_module.hubclient, "connect", closing_hub(reader_error))
    session = tmp_path / "session.txt"
    session.write_text("")
    launcher = Launcher(Settings(server="http://ctid.invalid", username="alice", agent="alice"),
                        TokenStore("http://ctid.invalid", "alice"), FileWatcher(session))
    launcher.api = api  # type: ignore[assignment]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(launcher._connection_loop)
        await api.third.wait()  # it reconnected twice (autojump_clock: the backoff is instant)
        nursery.cancel_scope.cancel()
    assert not launcher.connected


async def test_reconnects_when_the_hub_and_a_request_fail_together(tmp_path, monkeypatch, autojump_clock):
    api = GoneApi(Unreachable("socket connection broken: [Errno 104] Connection reset by peer"))
    with trio.fail_after(600):
        await run_loop(tmp_path, monkeypatch, api, hubclient.HubDown("the hub closed the connection: Server is restarting."))


async def test_a_bug_beside_a_lost_connection_is_not_swallowed(tmp_path, monkeypatch, autojump_clock):
    api = GoneApi(Unreachable("connection reset"))
    with pytest.raises(BaseExceptionGroup) as raised:
        await run_loop(tmp_path, monkeypatch, api, KeyError("a bug in the reader"))
    assert any(isinstance(exc, KeyError) for exc in hubclient.leaves(raised.value))
