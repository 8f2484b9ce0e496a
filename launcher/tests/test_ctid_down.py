"""What the launcher does while ctid is down or restarting, against a fake ctid (httpx MockTransport
speaking the REST answers of docs/call-model.md): commands that did not reach ctid are not taken
for done, and the answers ctid gives once back (lease renewal, agent list, hub) bring the status
where the policy wants it. Found with launcher/tests/test_e2e.py's restart test."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as hst

from ctid_launcher import policy
from ctid_launcher.api import Api
from ctid_launcher.app import Launcher
from ctid_launcher.config import Settings
from ctid_launcher.credentials import TokenStore
from ctid_launcher.policy import AVAILABLE, AWAY, LAUNCHER, LEASE, Event, Kind
from ctid_launcher.session.fake import FileWatcher
from ctid_launcher.tray.base import NullTray


class FakeCtid:
    """The REST routes the launcher calls while running; ``up`` False: connection refused."""

    def __init__(self, status: str, source: str):
        self.up = True
        self.agent = {"id": "alice", "name": "Alice", "status": status, "status_source": source, "busy": False,
                      "lease_until": None}
        self.sent: list[tuple[str, str, object]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            raise httpx.ConnectError("all attempts to connect failed", request=request)
        body = json.loads(request.content) if request.content else None
        self.sent.append((request.method, request.url.path, body))
        if request.method == "PUT":
            self.agent.update(status=body["status"], status_source=body["source"])
        if request.url.path == "/api/agents":
            return httpx.Response(200, json={"items": [self.agent]})
        return httpx.Response(200, json=self.agent)

    def puts(self) -> list[object]:
        return [body for method, _, body in self.sent if method == "PUT"]


@pytest.fixture
async def launcher(tmp_path):
    settings = Settings(server="http://ctid.test", username="alice", agent="alice", lease_seconds=30)
    (tmp_path / "session.txt").write_text("")
    launcher = Launcher(settings, TokenStore(settings.server, "alice"), FileWatcher(tmp_path / "session.txt"),
                        tray=NullTray(), opener=lambda url: None, notify=lambda title, text: None)
    yield launcher
    if launcher.api is not None:
        await launcher.api.aclose()


async def _run(launcher: Launcher, ctid: FakeCtid, state: policy.State, script) -> None:
    launcher.api = Api("http://ctid.test", "token", transport=httpx.MockTransport(ctid))
    launcher.state = state
    async with trio.open_nursery() as nursery:
        nursery.start_soon(launcher._policy_loop)
        await script()
        nursery.cancel_scope.cancel()


async def test_an_unlock_while_ctid_is_down_is_applied_once_ctid_answers(launcher):
    # locked before ctid went down: away, set by the launcher, which will restore available
    ctid = FakeCtid(AWAY, LAUNCHER)

    async def script():
        ctid.up = False
        launcher.feed(Event(Kind.UNLOCKED))  # the person is back while ctid is down: the PUT fails
        await trio.testing.wait_all_tasks_blocked()
        assert ctid.puts() == []
        ctid.up = True  # ctid back: the lease renewal's answer says away, still as the launcher left it
        await launcher._renew_lease()
        await trio.testing.wait_all_tasks_blocked()
        assert ctid.puts() == [{"status": AVAILABLE, "source": LAUNCHER, "lease_seconds": 30}]
        assert (launcher.state.status, launcher.state.source) == (AVAILABLE, LAUNCHER)

    await _run(launcher, ctid, policy.State(status=AWAY, source=LAUNCHER, locked=True, restore=AVAILABLE), script)


@pytest.mark.parametrize("first", ["renewal", "agent list"])
async def test_back_after_the_lease_lapsed_while_ctid_was_down_restores_available(launcher, first):
    """The e2e restart case: ctid's first answer says away (source lease), whichever comes first;
    the later, older answers of the same kind do not undo the restore."""
    ctid = FakeCtid(AVAILABLE, LAUNCHER)

    async def script():
        ctid.up = False
        await launcher._renew_lease()  # into the void: the launcher's view does not change
        assert (launcher.state.status, launcher.state.source, launcher.state.restore) == (AVAILABLE, LAUNCHER, None)
        ctid.agent.update(status=AWAY, status_source=LEASE)  # ctid restarted: the lapsed lease ended
        ctid.up = True
        stale = dict(ctid.agent)
        if first == "renewal":
            await launcher._renew_lease()
        else:
            await launcher._refresh_agent()
        launcher._told(stale)  # the hub's agentUpdated of the lapse, read after the answer
        await trio.testing.wait_all_tasks_blocked()
        assert ctid.agent["status"] == AVAILABLE and ctid.agent["status_source"] == LAUNCHER
        assert {"status": AVAILABLE, "source": LAUNCHER, "lease_seconds": 30} in ctid.puts()

    await _run(launcher, ctid, policy.State(status=AVAILABLE, source=LAUNCHER), script)


@given(hst.sampled_from(policy.STATUSES), hst.sampled_from((policy.USER, LAUNCHER, LEASE)), hst.booleans(),
       hst.sampled_from(policy.STATUSES), hst.sampled_from((AWAY, policy.DND)))
def test_an_undelivered_command_never_beats_what_the_person_chose(status, source, locked, target, chosen):
    state = policy.State(status=status, source=source, locked=locked)
    state = policy.undelivered(state, policy.SetStatus(target, LAUNCHER))
    state, commands = policy.step(state, Event(Kind.STATUS, status=chosen, source=policy.USER))
    assert commands == [] and state.restore is None
    state, commands = policy.step(state, Event(Kind.UNLOCKED))
    assert commands == []
