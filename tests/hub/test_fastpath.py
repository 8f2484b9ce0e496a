"""HubFastPath answers exactly as the Quart route: the same ASGI messages at the same (mock) times
for the same client script, and everything that is not a hub WebSocket goes to the app."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from ctid.errors import StoreError
from ctid.hub import Hub
from ctid.hub.asgi import HubFastPath

from .conftest import TOKENS, FakeBackend, make_app

RS = "\x1e"
BEARER = [("Authorization", "Bearer tok-alice")]


def ws_scope(query: str = "", headers: list[tuple[str, str]] | None = None, path: str = "/hub",
             root_path: str = "") -> dict[str, Any]:
    return {
        "type": "websocket", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "scheme": "ws", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
        "root_path": root_path, "headers": [(k.lower().encode(), v.encode()) for k, v in headers or []],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080), "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
    }


class Client:
    """The server's ASGI receive/send, played by the test: ``say`` feeds events, ``heard`` is what
    the server sent, each with the (mock) time it was sent, relative to the start."""

    def __init__(self) -> None:
        self._in_send, self._in_receive = trio.open_memory_channel[dict[str, Any]](100)
        self.heard: list[tuple[float, dict[str, Any]]] = []
        self.started = trio.current_time()
        self._changed = trio.Event()

    async def receive(self) -> dict[str, Any]:
        return await self._in_receive.receive()

    async def send(self, message: dict[str, Any]) -> None:
        self.heard.append((round(trio.current_time() - self.started, 3), message))
        self._changed.set()
        self._changed = trio.Event()

    async def say(self, text: str) -> None:
        await self._in_send.send({"type": "websocket.receive", "bytes": None, "text": text})

    async def hang_up(self) -> None:
        await self._in_send.send({"type": "websocket.disconnect", "code": 1005})

    async def wait_for(self, kind: str, count: int = 1) -> None:
        while sum(1 for _, m in self.heard if m["type"] == kind) < count:
            await self._changed.wait()

    def transcript(self) -> list[tuple[Any, ...]]:
        """What was sent; an HTTP answer as one (status, content-type, content-length, body) entry."""
        out: list[tuple[Any, ...]] = []
        for at, message in self.heard:
            kind = message["type"]
            if kind == "websocket.http.response.start":
                headers = dict(message["headers"])
                out.append((at, kind, message["status"], headers.get(b"content-type"), headers.get(b"content-length")))
            elif kind == "websocket.http.response.body":
                if message.get("body"):
                    out.append((at, kind, message["body"]))
            elif kind == "websocket.send":
                out.append((at, kind, message.get("text"), message.get("bytes")))
            else:
                out.append((at, kind, {k: v for k, v in message.items() if k != "type"}))
        return out


Script = Callable[[Hub, Client], Awaitable[None]]


async def run_both(script: Script, scope: dict[str, Any], backend: FakeBackend | None = None,
                   **options: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[Hub]]:
    """The same client script against the Quart route and against the fast path."""
    transcripts, hubs = [], []
    for fast in (False, True):
        hub = Hub(backend or FakeBackend(), **options)
        app = make_app(hub)
        served = HubFastPath(app, hub) if fast else app
        client = Client()
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.run)
            async with trio.open_nursery() as connection:
                connection.start_soon(served, scope, client.receive, client.send)
                await script(hub, client)
            nursery.cancel_scope.cancel()
        assert hub.connections == {} and hub.health()["groups"] == 0
        transcripts.append(client.transcript())
        hubs.append(hub)
    return transcripts[0], transcripts[1], hubs


async def handshake(client: Client) -> None:
    await client.say('{"protocol":"json","version":1}' + RS)
    await client.wait_for("websocket.send")


def records(transcript: list[tuple[Any, ...]]) -> list[Any]:
    return [json.loads(entry[2].rstrip(RS)) for entry in transcript if entry[1] == "websocket.send"]


async def test_connect_without_negotiate_then_client_close(autojump_clock: trio.testing.MockClock) -> None:
    async def script(hub: Hub, client: Client) -> None:
        await handshake(client)
        assert hub.health()["connections"] == 1
        await client.say('{"type":1,"target":"Dial","arguments":["+1"],"invocationId":"1"}' + RS)
        await client.wait_for("websocket.send", 2)
        await client.say('{"type":7}' + RS)

    quart, fast, _ = await run_both(script, ws_scope(headers=BEARER))
    assert fast == quart
    assert records(fast) == [{}, {"type": 3, "invocationId": "1", "result": {"call_id": "call-1"}}]
    assert fast[0][1] == "websocket.accept" and fast[-1][1:] == ("websocket.close", {"code": 1000, "reason": ""})


async def test_access_token_in_the_query_and_the_first_of_repeated_values(autojump_clock: trio.testing.MockClock) -> None:
    async def script(hub: Hub, client: Client) -> None:
        await handshake(client)
        assert [c.principal.subject for c in hub.connections.values()] == ["bob"]
        await client.hang_up()

    quart, fast, _ = await run_both(script, ws_scope("access_token=tok-bob&access_token=tok-alice&x=%FF"))
    assert fast == quart and records(fast) == [{}]


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("", []),  # no token
        ("", [("Authorization", "Bearer nope")]),  # bad token
        ("access_token=nope", []),
        ("access_token=", [("Authorization", "Basic tok-alice")]),
        ("id=made-up", BEARER),  # a connection id that was never issued: 404
    ],
)
async def test_refusals_are_the_same_http_answers(
    query: str, headers: list[tuple[str, str]], autojump_clock: trio.testing.MockClock
) -> None:
    async def script(hub: Hub, client: Client) -> None:
        await client.wait_for("websocket.http.response.start")

    quart, fast, _ = await run_both(script, ws_scope(query, headers))
    assert fast == quart
    assert fast[0][2] in (401, 404) and fast[0][3] == b"application/json"


async def test_a_failing_token_store_is_the_same_503(autojump_clock: trio.testing.MockClock) -> None:
    class StoreDown(FakeBackend):
        async def authenticate(self, token: str) -> Any:
            raise StoreError("database unavailable")

    async def script(hub: Hub, client: Client) -> None:
        await client.wait_for("websocket.http.response.start")

    quart, fast, _ = await run_both(script, ws_scope(headers=BEARER), StoreDown())
    assert fast == quart and fast[0][2] == 503


async def test_a_second_websocket_for_one_id_and_shutting_down(autojump_clock: trio.testing.MockClock) -> None:
    # the two runs differ only in which app serves both WebSockets
    for fast in (False, True):
        hub = Hub(FakeBackend())
        app = make_app(hub)
        served = HubFastPath(app, hub) if fast else app
        token = hub.tokens.issue("conn-x", TOKENS["tok-alice"])
        first, second, third = Client(), Client(), Client()
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.run)
            nursery.start_soon(served, ws_scope(f"id={token}", BEARER), first.receive, first.send)
            await first.wait_for("websocket.accept")
            await served(ws_scope(f"id={token}", BEARER), second.receive, second.send)
            await hub.close_all(grace=0)  # refuses newcomers from now on
            await served(ws_scope("", BEARER), third.receive, third.send)
            await first.hang_up()
            nursery.cancel_scope.cancel()
        if not fast:
            expected = (second.transcript(), third.transcript())
        else:
            assert (second.transcript(), third.transcript()) == expected
    assert expected[0][0][2] == 409 and expected[1][0][2] == 503


async def test_ping_interval_and_client_timeout(autojump_clock: trio.testing.MockClock) -> None:
    async def script(hub: Hub, client: Client) -> None:
        await handshake(client)
        await trio.sleep(20)  # the server pings at 15 s
        await client.say('{"type":6}' + RS)  # arms the client timeout: 30 s of silence from here
        await client.wait_for("websocket.close")

    quart, fast, _ = await run_both(script, ws_scope(headers=BEARER))
    assert fast == quart
    assert [(entry[0], entry[2]) for entry in fast if entry[1] == "websocket.send"] == [
        (0, "{}" + RS),
        (15, '{"type":6}' + RS),
        (30, '{"type":6}' + RS),
        (45, '{"type":6}' + RS),
        (50, '{"type":7,"error":"Server timeout elapsed without receiving a message from the client."}' + RS),
    ]
    assert fast[-1][0] == 50


async def test_handshake_timeout_and_bad_handshake(autojump_clock: trio.testing.MockClock) -> None:
    async def silent(hub: Hub, client: Client) -> None:
        await client.wait_for("websocket.close")

    quart, fast, _ = await run_both(silent, ws_scope(headers=BEARER))
    assert fast == quart and records(fast) == [{"error": "Handshake was canceled."}] and fast[-1][0] == 15

    async def messagepack(hub: Hub, client: Client) -> None:
        await client.say('{"protocol":"messagepack","version":1}' + RS)
        await client.wait_for("websocket.close")

    quart, fast, _ = await run_both(messagepack, ws_scope(headers=BEARER))
    assert fast == quart and records(fast) == [{"error": "The protocol 'messagepack' is not supported."}]


async def test_server_close_and_protocol_error(autojump_clock: trio.testing.MockClock) -> None:
    async def restart(hub: Hub, client: Client) -> None:
        await handshake(client)
        await hub.close_all(allow_reconnect=True)
        await client.wait_for("websocket.close")

    quart, fast, _ = await run_both(restart, ws_scope(headers=BEARER))
    assert fast == quart
    assert records(fast)[-1] == {"type": 7, "error": "Server is restarting.", "allowReconnect": True}

    async def garbage(hub: Hub, client: Client) -> None:
        await handshake(client)
        await client.say('{"type":42}' + RS)
        await client.wait_for("websocket.close")

    quart, fast, _ = await run_both(garbage, ws_scope(headers=BEARER))
    assert fast == quart and records(fast)[-1] == {"type": 7, "error": "Unknown message type: 42"}


async def test_a_client_that_hangs_up_leaves_quietly(autojump_clock: trio.testing.MockClock) -> None:
    async def script(hub: Hub, client: Client) -> None:
        await handshake(client)
        await client.hang_up()
        await trio.sleep(100)  # no Ping is sent to a connection that has gone
        assert hub.connections == {}

    quart, fast, hubs = await run_both(script, ws_scope(headers=BEARER))
    assert fast == quart and records(fast) == [{}]
    assert all(len(hub.keepalive._heap) <= 1 for hub in hubs)  # at most the stale entry of the gone connection


@pytest.mark.parametrize(
    "scope",
    [
        {"type": "http", "method": "POST", "path": "/hub/negotiate", "headers": []},
        ws_scope(path="/hub/"),
        ws_scope(path="/elsewhere"),
        ws_scope(root_path="/prefix"),
        {**ws_scope(headers=BEARER), "query_string": b"id=\xff"},  # not UTF-8: Quart decides
    ],
    ids=["negotiate", "trailing-slash", "other-path", "root-path", "latin-1-query"],
)
async def test_everything_else_goes_to_the_app(scope: dict[str, Any]) -> None:
    seen = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)

    await HubFastPath(app, Hub(FakeBackend()))(scope, None, None)  # mount() was never called: no path
    hub = Hub(FakeBackend())
    make_app(hub)
    await HubFastPath(app, hub)(scope, None, None)
    await HubFastPath(app, None)(ws_scope(headers=BEARER), None, None)
    assert seen == [scope, scope, ws_scope(headers=BEARER)]
