"""The hub over real HTTP and WebSockets (hypercorn on a free port): negotiate, authentication,
stateless connection tokens, delivery and isolation, shutdown; driven by ctid's own client and
by raw trio-websocket where the test needs to see the wire."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio
import trio_websocket
from quart_trio import QuartTrio

from ctid.errors import AuthError, StoreError
from ctid.hub import Hub
from ctid.hub.client import HubClient, HubClosed, HubConnectionError, HubError, open_hub, open_websocket

from .conftest import FakeBackend, running_hub, serve_app

RS = "\x1e"


async def post_negotiate(url: str, query: str = "", token: str | None = "tok-alice") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient() as http:
        return await http.post(f"{url}/negotiate{query}", headers=headers)


async def test_negotiate_versions_and_shape(hub_url: str) -> None:
    v1 = (await post_negotiate(hub_url, "?negotiateVersion=1")).json()
    assert v1["negotiateVersion"] == 1
    assert v1["availableTransports"] == [{"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}]
    assert v1["connectionId"] and v1["connectionToken"] and v1["connectionId"] != v1["connectionToken"]
    v0 = (await post_negotiate(hub_url)).json()  # signalrcore sends no negotiateVersion
    assert v0["negotiateVersion"] == 0 and "connectionToken" not in v0 and v0["connectionId"]
    assert (await post_negotiate(hub_url, "?negotiateVersion=7")).json()["negotiateVersion"] == 1
    bad = await post_negotiate(hub_url, "?negotiateVersion=x")
    assert bad.status_code == 200
    assert bad.json() == {"error": "The client requested a non-integer protocol version."}
    negative = (await post_negotiate(hub_url, "?negotiateVersion=-1")).json()
    assert negative == {"error": "The client requested version '-1', but the server does not support this version."}


@pytest.mark.parametrize("token", [None, "tok-wrong"])
async def test_negotiate_refuses_missing_or_bad_tokens(hub_url: str, token: str | None) -> None:
    response = await post_negotiate(hub_url, "?negotiateVersion=1", token=token)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


async def test_negotiate_accepts_access_token_query(hub_url: str) -> None:
    response = await post_negotiate(hub_url, "?negotiateVersion=1&access_token=tok-bob", token=None)
    assert response.status_code == 200 and response.json()["connectionToken"]


async def raw_status(url: str, query: str, headers: list[tuple[str, str]] | None = None) -> int:
    """Open a WebSocket; return 101 when accepted, else the HTTP status of the refusal."""
    ws_url = url.replace("http://", "ws://") + query
    try:
        async with open_websocket(ws_url, headers or []):
            return 101
    except trio_websocket.ConnectionRejected as exc:
        return exc.status_code


async def test_websocket_upgrade_authentication_and_ids(hub_url: str) -> None:
    bearer = [("Authorization", "Bearer tok-alice")]
    assert await raw_status(hub_url, "") == 401
    assert await raw_status(hub_url, "", [("Authorization", "Bearer nope")]) == 401
    assert await raw_status(hub_url, "?access_token=nope") == 401
    assert await raw_status(hub_url, "?access_token=tok-alice") == 101  # browsers
    assert await raw_status(hub_url, "", bearer) == 101  # skipNegotiation
    assert await raw_status(hub_url, "?id=made-up", bearer) == 404
    token = (await post_negotiate(hub_url, "?negotiateVersion=1")).json()["connectionToken"]
    assert await raw_status(hub_url, f"?id={token}", [("Authorization", "Bearer tok-bob")]) == 404  # not bob's
    assert await raw_status(hub_url, f"?id={token}&foo=bar", bearer) == 101  # other parameters ignored


async def test_second_websocket_for_one_connection_gets_409(hub_url: str) -> None:
    token = (await post_negotiate(hub_url, "?negotiateVersion=1")).json()["connectionToken"]
    bearer = [("Authorization", "Bearer tok-alice")]
    ws_url = hub_url.replace("http://", "ws://") + f"?id={token}"
    async with open_websocket(ws_url, bearer) as ws:
        await ws.send_message('{"protocol":"json","version":1}' + RS)
        assert await ws.get_message() == "{}" + RS
        assert await raw_status(hub_url, f"?id={token}", bearer) == 409


async def test_negotiate_on_one_instance_websocket_on_another() -> None:
    """No sticky sessions: a connection token from instance A is accepted by instance B."""
    secret = b"shared-secret-of-the-deployment"
    backend = FakeBackend()
    async with running_hub(Hub(backend, connection_secret=secret)) as url_a, running_hub(
        Hub(backend, connection_secret=secret)
    ) as url_b:
        token = (await post_negotiate(url_a, "?negotiateVersion=1")).json()["connectionToken"]
        assert await raw_status(url_b, f"?id={token}", [("Authorization", "Bearer tok-alice")]) == 101
        v0_id = (await post_negotiate(url_a)).json()["connectionId"]  # version 0 presents the id
        assert await raw_status(url_b, f"?id={v0_id}", [("Authorization", "Bearer tok-alice")]) == 101


async def test_handshake_over_the_wire_with_trailing_messages(hub_url: str) -> None:
    ws_url = hub_url.replace("http://", "ws://")
    async with open_websocket(ws_url, [("Authorization", "Bearer tok-alice")]) as ws:
        await ws.send_message('{"protocol":"json","version":1}' + RS + '{"type":1,"target":"Dial","arguments":["+1"],"invocationId":"0"}' + RS)
        frames = ""
        while frames.count(RS) < 2:
            message = await ws.get_message()
            assert isinstance(message, str)  # JSON goes out in Text frames only
            frames += message
        handshake, completion, _ = frames.split(RS)
        assert handshake == "{}"
        assert json.loads(completion) == {"type": 3, "invocationId": "0", "result": {"call_id": "call-1"}}
        await ws.send_message("x" * 5000)  # the fixture's hub allows 4096 bytes
        close = json.loads((await ws.get_message()).rstrip(RS))
        assert close == {"type": 7, "error": "Message exceeds the maximum size of 4096 bytes."}
        with pytest.raises(trio_websocket.ConnectionClosed):
            await ws.get_message()


async def first_message(client: HubClient) -> tuple[str, list[Any]]:
    with trio.fail_after(2):
        return await client.next_message()


async def test_client_invokes_every_method(backend: FakeBackend, hub_url: str) -> None:
    async with open_hub(hub_url, "tok-alice") as alice:
        assert await alice.invoke("SetStatus", "available") == {"agent": "alice", "status": "available"}
        call_id = (await alice.invoke("Dial", "+74950000000"))["call_id"]
        assert await alice.invoke("Hold", call_id) is None
        assert await alice.invoke("Unhold", call_id) is None
        assert await alice.invoke("Transfer", call_id, "alice") is None
        snapshot = await alice.invoke("Snapshot")
        assert [c["id"] for c in snapshot["calls"]] == [call_id]
        assert await alice.invoke("Hangup", call_id) is None
        with pytest.raises(HubError) as info:
            await alice.invoke("Hangup", "call-404")
        assert info.value.error_id == "not_found"
        with pytest.raises(HubError, match="Unknown hub method 'Explode'"):
            await alice.invoke("Explode")
        await alice.send("SetStatus", "away")
        assert await alice.invoke("Snapshot")  # the send ran before this (invocations are ordered)
    methods = [method for _, method, _ in backend.invocations]
    assert methods == ["SetStatus", "Dial", "Hold", "Unhold", "Transfer", "Snapshot", "Hangup", "Hangup", "SetStatus", "Snapshot"]


async def test_bad_token_is_refused_by_the_client() -> None:
    backend = FakeBackend()
    async with running_hub(Hub(backend)) as url:
        with pytest.raises(AuthError):
            async with open_hub(url, "tok-nobody"):
                pass
        with pytest.raises(AuthError):
            async with open_hub(url, "tok-nobody", skip_negotiation=True):
                pass
        with pytest.raises(HubConnectionError):
            async with open_hub(url.replace("/hub", "/nothing-here"), "tok-alice"):
                pass


async def test_call_updates_reach_the_right_people_fast() -> None:
    hub = Hub(FakeBackend())
    async with running_hub(hub) as url:
        async with open_hub(url, "tok-alice") as alice, open_hub(url, "tok-bob") as bob, open_hub(
            url, "tok-sue"
        ) as sue, open_hub(url, "tok-lead") as lead:
            ringing = {"id": "c1", "state": "ringing", "ringing_agents": ["alice"]}
            # how fast is measured in bench/screenpop.py, not here: a loaded CI machine is no clock
            hub.publish_call(ringing, {"alice"})
            assert await first_message(alice) == ("callUpdated", [ringing])
            assert await first_message(sue) == ("callUpdated", [ringing])
            assert await first_message(lead) == ("callUpdated", [ringing])  # once, though in two groups

            hub.publish_call({"id": "c2"}, {"bob"})
            hub.publish_agent({"id": "alice", "status": "away"})
            hub.publish_task({"id": "t1", "owner": "bob"}, "bob")
            hub.publish_task({"id": "t2", "owner": None}, None)  # the shared callback queue
            assert await first_message(bob) == ("callUpdated", [{"id": "c2"}])  # never alice's c1
            assert await first_message(bob) == ("taskUpdated", [{"id": "t1", "owner": "bob"}])
            assert await first_message(bob) == ("taskUpdated", [{"id": "t2", "owner": None}])
            assert await first_message(alice) == ("agentUpdated", [{"id": "alice", "status": "away"}])
            assert await first_message(alice) == ("taskUpdated", [{"id": "t2", "owner": None}])  # not t1
            assert [await first_message(sue) for _ in range(4)] == [
                ("callUpdated", [{"id": "c2"}]),
                ("agentUpdated", [{"id": "alice", "status": "away"}]),
                ("taskUpdated", [{"id": "t1", "owner": "bob"}]),
                ("taskUpdated", [{"id": "t2", "owner": None}]),
            ]
            assert hub.health()["connections"] == 4


async def test_handlers_registered_with_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(HubClient, "BUFFER", 3)
    hub = Hub(FakeBackend())
    seen: list[Any] = []
    async with running_hub(hub) as url, open_hub(url, "tok-alice") as alice:
        alice.on("CALLUPDATED", seen.append)  # case-insensitive like the JS client
        done = trio.Event()

        async def last(call: dict[str, Any]) -> None:  # async handlers are awaited
            if call["id"] == "c4":
                done.set()

        alice.on("callUpdated", last)
        for number in range(5):
            hub.publish_call({"id": f"c{number}"}, {"alice"})
        with trio.fail_after(2):
            await done.wait()
        assert [call["id"] for call in seen] == ["c0", "c1", "c2", "c3", "c4"]
        assert alice.dropped == 2  # only handlers were used: the queue kept 3 unread events
        assert (await first_message(alice))[1] == [{"id": "c0"}]


async def test_close_all_sends_close_with_allow_reconnect_and_refuses_newcomers() -> None:
    hub = Hub(FakeBackend())
    async with running_hub(hub) as url:
        async with open_hub(url, "tok-alice") as alice:
            with trio.fail_after(5):
                await hub.close_all(allow_reconnect=True)
                closed = await alice.wait_closed()
            assert isinstance(closed, HubClosed)
            assert closed.allow_reconnect is True and closed.error == "Server is restarting."
            with pytest.raises(HubConnectionError):
                await alice.invoke("Snapshot")
        assert hub.health()["connections"] == 0
        assert await raw_status(url, "", [("Authorization", "Bearer tok-alice")]) == 503


async def test_client_pings_and_detects_a_silent_server() -> None:
    """Our client pings on its own schedule; the server answers nothing to pings, so with a
    server ping interval longer than the client's server timeout the client gives up."""
    hub = Hub(FakeBackend(), ping_interval=60)
    async with running_hub(hub) as url:
        async with open_hub(url, "tok-alice", ping_interval=0.05, server_timeout=0.3) as alice:
            with trio.fail_after(3):
                closed = await alice.wait_closed()
            assert "Server timeout" in (closed.error or "")


async def test_a_failing_token_store_is_a_503_not_a_crash() -> None:
    class StoreDown(FakeBackend):
        async def authenticate(self, token: str) -> Any:
            raise StoreError("database unavailable")

    async with running_hub(Hub(StoreDown())) as url:
        response = await post_negotiate(url, "?negotiateVersion=1")
        assert response.status_code == 503 and response.json()["error"] == "store_unavailable"
        assert await raw_status(url, "", [("Authorization", "Bearer tok-alice")]) == 503


async def test_cors_for_browser_panels_on_another_origin() -> None:
    hub = Hub(FakeBackend())
    app = QuartTrio("cors")
    hub.mount(app, "/hub", cors_origins=["https://panel.example"])
    async with serve_app(app) as base, httpx.AsyncClient() as http:
        url = f"{base}/hub/negotiate?negotiateVersion=1"
        preflight = await http.options(url, headers={
            "Origin": "https://panel.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, x-requested-with, x-signalr-user-agent",
        })
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "https://panel.example"
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert "x-signalr-user-agent" in preflight.headers["access-control-allow-headers"]
        ok = await http.post(url, headers={"Origin": "https://panel.example", "Authorization": "Bearer tok-alice"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://panel.example"
        refused = await http.post(url, headers={"Origin": "https://panel.example"})
        assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "https://panel.example"
        other = await http.post(url, headers={"Origin": "https://evil.example", "Authorization": "Bearer tok-alice"})
        assert "access-control-allow-origin" not in other.headers


async def test_empty_and_odd_frames_over_the_wire(hub_url: str) -> None:
    ws_url = hub_url.replace("http://", "ws://")
    async with open_websocket(ws_url, [("Authorization", "Bearer tok-alice")]) as ws:
        await ws.send_message('{"protocol":"json","version":1}' + RS)
        assert await ws.get_message() == "{}" + RS
        await ws.send_message(b"")  # empty binary frame
        await ws.send_message("")  # empty text frame
        await ws.send_message(b'{"type":1,"target":"Dial","arguments":["+1"],"invocationId":"b"}' + RS.encode())
        assert json.loads((await ws.get_message()).rstrip(RS)) == {"type": 3, "invocationId": "b", "result": {"call_id": "call-1"}}
        await ws.send_message('["an array"]' + RS)
        close = json.loads((await ws.get_message()).rstrip(RS))
        assert close == {"type": 7, "error": "Error parsing message: a message must be a JSON object."}
