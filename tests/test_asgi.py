"""ctid.asgi: the lifespan handshake, the request body read across messages and a whole response,
as a small framework-less app uses them (driven by hand here, and served by real hypercorn)."""

from __future__ import annotations

import httpx

from ctid.asgi import lifespan, read_body, respond
from ctid.testing.fakes import serving


def _channel(messages: list[dict]) -> tuple[object, object, list[dict]]:
    incoming, sent = list(messages), []

    async def receive() -> dict:
        return incoming.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    return receive, send, sent


async def test_lifespan_answers_startup_and_returns_at_shutdown() -> None:
    receive, send, sent = _channel([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"},
                                    {"type": "never read"}])
    await lifespan(receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


async def test_read_body_joins_the_messages_until_the_last() -> None:
    receive, _, _ = _channel([{"type": "http.request", "body": b"ab", "more_body": True},
                              {"type": "http.request", "more_body": True},
                              {"type": "http.request", "body": b"cd"}, {"type": "never read"}])
    assert await read_body(receive) == b"abcd"
    receive, _, _ = _channel([{"type": "http.disconnect"}])
    assert await read_body(receive) == b""


async def test_respond_sends_start_then_body() -> None:
    _, send, sent = _channel([])
    await respond(send, 201, {"content-type": "text/plain", "x-n": "1"}, b"made")
    assert sent == [{"type": "http.response.start", "status": 201,
                     "headers": [(b"content-type", b"text/plain"), (b"x-n", b"1")]},
                    {"type": "http.response.body", "body": b"made"}]


async def test_an_app_of_the_three_serves_over_real_http() -> None:
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        body = await read_body(receive)
        await respond(send, 200, {"content-type": "application/octet-stream"}, body[::-1])

    async with serving(app) as url, httpx.AsyncClient() as client:
        answer = await client.post(f"{url}/echo", content=b"x" * 70_000 + b"end")
    assert answer.status_code == 200 and answer.content == b"dne" + b"x" * 70_000
