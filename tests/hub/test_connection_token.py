"""The connection token alone opens the hub's WebSocket (``GET /hub?id=<token>``, no access token in
the URL): who it names, the groups it joins, every way it is refused, the real daemon backend
re-resolving a removed API key, and the ``id`` parameter fuzzed."""

from __future__ import annotations

import json
import logging
import os
import time
from types import SimpleNamespace
from urllib.parse import quote

import httpx
import pytest
import trio
import trio.testing
import trio_websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctid.auth import Authenticator
from ctid.config.models import AuthConfig
from ctid.hub import Hub
from ctid.hub.asgi import HubFastPath
from ctid.hub.client import open_websocket
from ctid.hub_backend import DaemonHubBackend

from .conftest import TOKENS, FakeBackend, FakePrincipal, make_app, running_hub
from .test_fastpath import Client, handshake, records, run_both, ws_scope

RS = "\x1e"
SECRET = b"shared-secret-of-the-deployment"


async def negotiate(url: str, token: str = "tok-alice", version: int = 1) -> str:
    async with httpx.AsyncClient() as http:
        body = (await http.post(f"{url}/negotiate?negotiateVersion={version}",
                                headers={"Authorization": f"Bearer {token}"})).json()
    return body["connectionToken"] if version else body["connectionId"]


async def refusal(url: str, query: str, headers: list[tuple[str, str]] | None = None) -> tuple[int, dict]:
    """(101, {}) when the WebSocket opens, else the refusal's (status, JSON body)."""
    try:
        async with open_websocket(url.replace("http://", "ws://") + query, headers or []):
            return 101, {}
    except trio_websocket.ConnectionRejected as exc:
        return exc.status_code, json.loads(exc.body or b"{}")


async def events_seen(ws: trio_websocket.WebSocketConnection, within: float = 0.5) -> list[str]:
    seen: list[str] = []
    with trio.move_on_after(within):
        while True:
            for record in (await ws.get_message()).split(RS):
                if record and json.loads(record).get("type") == 1:
                    seen.append(json.loads(record)["arguments"][0]["id"])
    return seen


@pytest.mark.parametrize("fast", [True, False])
async def test_the_connection_token_alone_opens_the_websocket_with_the_right_groups(fast: bool) -> None:
    hub = Hub(FakeBackend())
    async with running_hub(hub, fast=fast) as url:
        agent_id, supervisor_id = await negotiate(url, "tok-alice"), await negotiate(url, "tok-sue")
        ws_url = url.replace("http://", "ws://")
        async with open_websocket(f"{ws_url}?id={agent_id}", []) as agent, \
                open_websocket(f"{ws_url}?id={supervisor_id}", []) as supervisor:
            for ws in (agent, supervisor):
                await ws.send_message('{"protocol":"json","version":1}' + RS)
                assert await ws.get_message() == "{}" + RS
            assert {c.principal.subject for c in hub.connections.values()} == {"alice", "sue"}
            hub.publish_call({"id": "alices"}, {"alice"})
            hub.publish_call({"id": "bobs"}, {"bob"})
            assert await events_seen(agent) == ["alices"]  # agent:alice, never bob's call
            assert await events_seen(supervisor) == ["alices", "bobs"]  # supervisors
            # the id that just opened a WebSocket opens no second one: 409 while connected
            assert (await refusal(url, f"?id={agent_id}"))[0] == 409
        # ... and none after the disconnect either (on this instance; until the token expires)
        status, body = await refusal(url, f"?id={agent_id}")
        assert status == 404 and body["error"] == "not_found" and "used already" in body["message"]
        assert (await refusal(url, f"?id={await negotiate(url, 'tok-alice')}"))[0] == 101  # negotiate again


async def test_forged_expired_and_missing_tokens_are_refused_with_the_documented_errors() -> None:
    hub = Hub(FakeBackend(), connection_secret=SECRET)
    async with running_hub(hub) as url:
        good = await negotiate(url)
        conn, expiry, who, mac = good.split(".")
        sue_who = (await negotiate(url, "tok-sue")).split(".")[2]
        expired = hub.tokens.issue("conn-old", TOKENS["tok-alice"], now=time.time() - 61)
        other_secret = Hub(FakeBackend(), connection_secret=b"x" * 32).tokens.issue("c", TOKENS["tok-alice"])
        for forged in (f"{conn}.{expiry}.{sue_who}.{mac}",  # alice's token made out to a supervisor
                       f"{conn}.{int(expiry) + 3600}.{who}.{mac}",  # its life extended
                       f"{conn}.{expiry}.{who}", "made-up", "", expired, other_secret):
            assert await refusal(url, f"?id={quote(forged)}") == (
                404, {"error": "not_found", "message": "unknown or expired connection id"}), forged
        status, body = await refusal(url, "")  # neither an access token nor a connection token
        assert status == 401 and body["error"] == "unauthorized"
        assert (await refusal(url, f"?id={good}"))[0] == 101  # the refusals did not use it up


async def test_access_token_and_connection_token_must_name_the_same_subject() -> None:
    async with running_hub(Hub(FakeBackend())) as url:
        token = await negotiate(url, "tok-alice")
        for query, headers in ((f"?id={token}&access_token=tok-bob", []),
                               (f"?id={token}", [("Authorization", "Bearer tok-bob")])):
            assert await refusal(url, query, headers) == (
                404, {"error": "not_found", "message": "the connection id was issued to another user"})
        status, body = await refusal(url, f"?id={token}&access_token=nope")
        assert status == 401 and body["error"] == "unauthorized"  # a bad access token is not ignored
        assert (await refusal(url, f"?id={token}&access_token=tok-alice"))[0] == 101  # official clients


async def test_a_user_removed_or_changed_since_negotiate_is_refused() -> None:
    backend = FakeBackend()
    async with running_hub(Hub(backend)) as url:
        removed, changed = await negotiate(url, "tok-bob"), await negotiate(url, "tok-alice")
        backend.removed.add("bob")
        backend.changed["alice"] = FakePrincipal("alice", "supervisor", "alice")
        assert (await refusal(url, f"?id={removed}"))[1]["error"] == "bad_token"
        status, body = await refusal(url, f"?id={changed}")
        assert (status, body["error"]) == (401, "bad_token") and "negotiate again" in body["message"]


def auth_config(*keys: str) -> AuthConfig:
    return AuthConfig.model_validate({"secret": "s" * 32, "api_keys": [
        {"name": name, "key": f"{name}-key-0123456789abcdef", "role": "agent", "agent": name} for name in keys]})


async def test_an_api_key_revoked_between_negotiate_and_upgrade_is_refused() -> None:
    """The daemon's own backend: instance B (or this one, restarted within the minute) no longer
    has the launcher's key in its configuration; the connection token negotiated before is refused."""
    before = SimpleNamespace(auth=Authenticator(auth_config("launcher", "other"), "s" * 32))
    after = SimpleNamespace(auth=Authenticator(auth_config("other"), "s" * 32))
    async with running_hub(Hub(DaemonHubBackend(before), connection_secret=SECRET)) as url_a, \
            running_hub(Hub(DaemonHubBackend(after), connection_secret=SECRET)) as url_b:
        revoked = await negotiate(url_a, "launcher-key-0123456789abcdef")
        kept = await negotiate(url_a, "other-key-0123456789abcdef")
        status, body = await refusal(url_b, f"?id={revoked}")
        assert (status, body["error"]) == (401, "bad_token")
        assert (await refusal(url_b, f"?id={kept}"))[0] == 101  # key:other still resolves
        # Another instance does not know the ids this one admitted: the 60-second TTL bounds that
        # (docs/hub-protocol.md, section 1); the principal is resolved again there all the same.
        second = await negotiate(url_a, "other-key-0123456789abcdef")
        assert (await refusal(url_a, f"?id={second}"))[0] == 101
        assert (await refusal(url_a, f"?id={second}"))[0] == 404
        assert (await refusal(url_b, f"?id={second}"))[0] == 101


async def test_no_token_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    class Failing(FakeBackend):
        async def authenticate(self, token: str) -> FakePrincipal:
            if token == "tok-boom":
                raise RuntimeError("the token store broke")
            return await super().authenticate(token)

    caplog.set_level(logging.DEBUG)
    async with running_hub(Hub(Failing())) as url:
        token = await negotiate(url)
        assert (await refusal(url, f"?id={token}&access_token=tok-alice"))[0] == 101
        assert (await refusal(url, "?access_token=tok-nope"))[0] == 401
        assert (await refusal(url, "?access_token=tok-boom"))[0] == 500  # logged with its traceback
    assert "the token store broke" in caplog.text
    for secret in ("tok-alice", "tok-nope", "tok-boom", token):
        assert secret not in caplog.text


class _Dummy:
    async def receive(self) -> dict:
        await trio.sleep_forever()


# a release run raises the count with CTID_FUZZ_EXAMPLES, as the fuzz suite (docs/input-limits.md)
@settings(max_examples=max(150, int(os.environ.get("CTID_FUZZ_EXAMPLES", "0"))), deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=st.one_of(
    st.text(max_size=200),
    st.tuples(st.integers(0, 130), st.text(max_size=20)),  # a real token, cut and extended
    st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
), with_bearer=st.booleans())
def test_fuzzed_id_is_refused_cleanly(mutation: object, with_bearer: bool) -> None:
    async def main() -> None:
        hub = Hub(FakeBackend(), connection_secret=SECRET)
        fast = HubFastPath(make_app(hub), hub)
        if isinstance(mutation, tuple):
            real = hub.tokens.issue("conn-1", TOKENS["tok-alice"])
            raw = real[:mutation[0]] + mutation[1]
            if raw == real:
                return
        else:
            raw = mutation
        client = Client()
        query = "id=" + quote(raw, safe="", errors="surrogatepass")
        headers = [("Authorization", "Bearer tok-alice")] if with_bearer else []
        with trio.fail_after(5):
            await fast(ws_scope(query, headers), client.receive, client.send)
        start = [m for _, m in client.heard if m["type"] == "websocket.http.response.start"]
        assert len(start) == 1 and start[0]["status"] in (401, 404), client.heard
        assert not hub.connections

    trio.run(main)


async def test_the_quart_route_and_the_fast_path_answer_alike(autojump_clock: trio.testing.MockClock) -> None:
    tokens = Hub(FakeBackend(), connection_secret=SECRET).tokens

    async def accepted(hub: Hub, client: Client) -> None:
        await handshake(client)
        assert [c.principal.subject for c in hub.connections.values()] == ["sue"]
        await client.say('{"type":7}' + RS)

    async def refused(hub: Hub, client: Client) -> None:
        await client.wait_for("websocket.http.response.body")

    quart, fast, _ = await run_both(accepted, ws_scope(f"id={tokens.issue('c1', TOKENS['tok-sue'])}"),
                                    connection_secret=SECRET)
    assert fast == quart and records(fast) == [{}]
    gone = FakeBackend(removed={"sue"})
    for query, backend, status in ((f"id={tokens.issue('c2', TOKENS['tok-sue'])}", gone, 401),
                                   (f"id={tokens.issue('c3', TOKENS['tok-sue'])}&access_token=tok-bob", None, 404),
                                   ("id=c4.1.e30.AAAA", None, 404)):
        quart, fast, _ = await run_both(refused, ws_scope(query), backend, connection_secret=SECRET)
        assert fast == quart and fast[0][2] == status, query
