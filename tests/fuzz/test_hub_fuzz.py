"""Hub frames fuzzed against a running daemon over real WebSockets: handshakes, invocations and random
text or bytes. No frame closes the socket with 1011 or drops it without a Close frame (1006), no
invocation gets an "internal" completion, every connection ends or answers within seconds, and the
daemon serves on."""

from __future__ import annotations

import json
from typing import Any

import trio
import trio_websocket
from core.conftest import API_KEY
from hypothesis import strategies as st

from ctid.hub.client import open_websocket
from ctid.testing.daemon import running_daemon

from .conftest import fuzz
from .strategies import RS, handshakes, records

BEARER = [("Authorization", f"Bearer {API_KEY}")]
GOOD_CLOSES = {1000, 1001}


async def _drain(ws: trio_websocket.WebSocketConnection, within: float = 5) -> list[str]:
    """Everything the server sends until it closes (or ``within`` seconds pass with the socket open)."""
    heard: list[str] = []
    with trio.move_on_after(within):
        try:
            while True:
                message = await ws.get_message()
                heard.append(message if isinstance(message, str) else message.decode())
        except trio_websocket.ConnectionClosed:
            pass
    return heard


def _records(heard: list[str]) -> list[Any]:
    return [json.loads(text) for frame in heard for text in frame.split(RS) if text]


async def test_fuzzed_handshakes_get_an_answer_never_1011(config):
    async with running_daemon(config) as app:
        ws_url = app.url.replace("http", "ws") + "/hub"

        async def check(handshake: str) -> None:
            async with open_websocket(ws_url, BEARER) as ws:
                await ws.send_message(handshake)
                if RS not in handshake and len(handshake) < 4096:
                    return  # no record yet: ctid waits for the rest (15 s), nothing to see
                with trio.fail_after(5):  # answered at once, never left hanging
                    try:
                        first = await ws.get_message()
                    except trio_websocket.ConnectionClosed:
                        first = None
                if first == "{}" + RS:
                    return  # a valid handshake
                assert first is not None and isinstance(json.loads(first.rstrip(RS)).get("error"), str), \
                    (first, handshake[:200])
                await _drain(ws)
                assert ws.closed is not None and ws.closed.code in GOOD_CLOSES, (ws.closed, handshake[:200])

        await fuzz(handshakes, check)
        assert (await app.client.get("/healthz")).status_code == 200


async def test_fuzzed_records_after_a_handshake_never_1011_nor_internal(config):
    async with running_daemon(config) as app:
        ws_url = app.url.replace("http", "ws") + "/hub"

        async def check(frames: list[str | bytes]) -> None:
            async with open_websocket(ws_url, BEARER) as ws:
                await ws.send_message('{"protocol":"json","version":1}' + RS)
                for frame in frames:
                    try:
                        await ws.send_message(frame)
                    except trio_websocket.ConnectionClosed:
                        break
                await ws.send_message('{"type":7}' + RS) if ws.closed is None else None
                heard = await _drain(ws)
                assert ws.closed is not None, "the connection neither answered a Close nor closed"
                assert ws.closed.code in GOOD_CLOSES, (ws.closed, frames)
                for message in _records(heard):
                    if message.get("type") == 3 and "error" in message:
                        assert not message["error"].startswith("internal"), (message, frames)

        await fuzz(st.lists(records, min_size=1, max_size=4), check)
        assert (await app.client.get("/healthz")).status_code == 200


async def test_random_bytes_on_the_wire_get_a_close_frame_never_a_drop(config):
    """Bytes that break WebSocket framing itself (RFC 6455): the server fails the connection with a
    Close frame (1002 / 1007), not by dropping it (1006), or waits for the rest of a frame."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

    async with running_daemon(config) as app:
        port = int(app.url.rsplit(":", 1)[1])

        async def check(garbage: bytes) -> None:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                ws = WSConnection(ConnectionType.CLIENT)
                await stream.send_all(ws.send(Request(host="ctid", target="/hub",
                                                      extra_headers=[(b"authorization", f"Bearer {API_KEY}".encode())])))
                accepted = answered = False
                with trio.fail_after(5):
                    while not accepted:
                        ws.receive_data(await stream.receive_some(65536))
                        accepted = any(isinstance(event, AcceptConnection) for event in ws.events())
                    await stream.send_all(ws.send(TextMessage('{"protocol":"json","version":1}' + RS)))
                    while not answered:
                        ws.receive_data(await stream.receive_some(65536))
                        answered = any(isinstance(event, TextMessage) for event in ws.events())
                await stream.send_all(garbage)
                with trio.move_on_after(0.3):  # a server waiting for the rest of a frame says nothing
                    while True:
                        data = await stream.receive_some(65536)
                        assert data, f"dropped without a Close frame after {garbage!r}"
                        ws.receive_data(data)
                        closes = [e for e in ws.events() if isinstance(e, CloseConnection)]
                        if closes:
                            assert closes[0].code in {1000, 1002, 1007, 1009}, (closes, garbage)
                            return

        await fuzz(st.binary(min_size=1, max_size=64), check)
        assert (await app.client.get("/healthz")).status_code == 200
