"""Hub defects of issue W2-1, each against a running daemon over a real WebSocket: lone surrogates in
an invocation (an "internal" completion before) or in its target (a 1011 close), over-deep and
oversized handshakes (1009 without the handshake error record docs/hub-protocol.md promises)."""

from __future__ import annotations

import json

import trio
import trio_websocket
from core.conftest import API_KEY

from ctid.hub.client import open_websocket
from ctid.testing.daemon import running_daemon

BEARER = [("Authorization", f"Bearer {API_KEY}")]
RS = "\x1e"
HELLO = '{"protocol":"json","version":1}' + RS


async def _answer(ws) -> dict:
    with trio.fail_after(5):
        return json.loads((await ws.get_message()).rstrip(RS))


async def _closed(ws) -> int:
    with trio.fail_after(5):
        try:
            while True:
                await ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            return exc.reason.code


async def test_lone_surrogates_in_arguments_get_a_bad_encoding_completion(config):
    async with running_daemon(config) as app, open_websocket(app.url.replace("http", "ws") + "/hub", BEARER) as ws:
        await ws.send_message(HELLO)
        assert await _answer(ws) == {}
        await ws.send_message('{"type":1,"target":"Dial","arguments":["+7916\\udc00"],"invocationId":"1"}' + RS)
        answer = await _answer(ws)
        assert answer["invocationId"] == "1" and answer["error"].startswith("bad_encoding:"), answer
        # the connection goes on
        await ws.send_message('{"type":1,"target":"Snapshot","arguments":[],"invocationId":"2"}' + RS)
        assert "result" in await _answer(ws)


async def test_a_lone_surrogate_in_a_target_or_id_closes_politely(config):
    async with running_daemon(config) as app:
        url = app.url.replace("http", "ws") + "/hub"
        for record in ('{"type":1,"target":"Dial\\udc00","arguments":[],"invocationId":"1"}',
                       '{"type":1,"target":"Snapshot","arguments":[],"invocationId":"\\ud800"}'):
            async with open_websocket(url, BEARER) as ws:
                await ws.send_message(HELLO)
                assert await _answer(ws) == {}
                await ws.send_message(record + RS)
                close = await _answer(ws)
                assert close["type"] == 7 and close["error"].startswith("Error parsing message"), close
                assert await _closed(ws) == 1000


async def test_over_deep_and_oversized_handshakes_get_the_error_record(config):
    async with running_daemon(config) as app:
        url = app.url.replace("http", "ws") + "/hub"
        limit = app.daemon.settings.core.hub.max_message_bytes
        cases = [
            ("[" * 3000 + "]" * 3000 + RS, "An unexpected error occurred during connection handshake."),
            ('{"protocol":"json","version":1,"x":' + "[" * 40 + "]" * 40 + "}" + RS,
             "An unexpected error occurred during connection handshake."),
            ('{"protocol":"json","version":1e999}' + RS, "An unexpected error occurred during connection handshake."),
            ('{"protocol":"json","version":1,"x":"' + "y" * (limit + 10) + '"}' + RS, "Handshake was canceled."),
            ('{"protocol":"json","version":1,"x":"' + "y" * (limit * 3) + '"}' + RS, "Handshake was canceled."),
        ]
        for handshake, error in cases:
            async with open_websocket(url, BEARER) as ws:
                await ws.send_message(handshake)
                assert await _answer(ws) == {"error": error}, handshake[:60]
                assert await _closed(ws) == 1000


async def test_an_oversized_message_after_the_handshake_is_a_close_with_an_error(config):
    async with running_daemon(config) as app, open_websocket(app.url.replace("http", "ws") + "/hub", BEARER) as ws:
        limit = app.daemon.settings.core.hub.max_message_bytes
        await ws.send_message(HELLO)
        assert await _answer(ws) == {}
        await ws.send_message('{"type":6,"x":"' + "y" * (limit * 3) + '"}' + RS)
        close = await _answer(ws)
        assert close["type"] == 7 and "maximum size" in close["error"]
        assert await _closed(ws) == 1000
