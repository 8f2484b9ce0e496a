"""HTTP keep-alive after early answers (issue W2-1), over real sockets against a running daemon, on
Trio's mock clock: an answer given before the request body arrived (401 / 404 / 405 to a client that
sends the headers, pauses, then the body) leaves the connection answering the next requests; a 413
for a body one byte over ``server.max_body_bytes`` is readable whole, says ``Connection: close`` and
the connection is then closed cleanly. 405 answers carry ``Allow``."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from ctid.testing.daemon import running_daemon
from ctid.web.serving import LINGER


@pytest.fixture
def clock():
    # the requests here need no SQL: jump after 20 ms of real idleness
    return trio.testing.MockClock(autojump_threshold=0.02)


async def read_response(stream: trio.SocketStream) -> tuple[int, dict[str, str], bytes]:
    """One whole response (status, headers, body); AssertionError if the server closes first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = await stream.receive_some(65536)
        assert chunk, "connection closed inside a body"
        body += chunk
    return int(lines[0].split()[1]), headers, body


def post(path: str, body: bytes, *extra: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: ctid", "Content-Type: application/json",
             f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: ctid\r\n\r\n"
EARLY = [("/api/calls", 401), ("/nowhere", 404), ("/api/agents", 405), ("/hooks/nope", 404),
         ("/hooks/office", 401), ("/api/auth/token", 400)]


@pytest.mark.parametrize(("path", "status"), EARLY)
async def test_an_answer_before_the_body_leaves_the_connection_answering(config, clock, path, status):
    async with running_daemon(config) as app:
        port = int(app.url.rsplit(":", 1)[1])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            for _ in range(2):  # the same connection, again
                body = b'{"number": "+79161234567"}'
                await stream.send_all(post(path, body))
                await trio.sleep(1)  # as common clients do: headers, a pause, then the body
                await stream.send_all(body)
                got, headers, _ = await read_response(stream)
                assert got == status
                assert headers.get("connection") != "close"
                await stream.send_all(HEALTHZ)
                with trio.fail_after(5):
                    assert (await read_response(stream))[0] == 200


async def test_413_one_byte_over_is_read_whole_then_closed_cleanly(config, clock):
    async with running_daemon(config) as app:
        port = int(app.url.rsplit(":", 1)[1])
        limit = app.daemon.settings.core.server.max_body_bytes
        for path in ("/hooks/office", "/api/auth/token"):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                body = b"x" * (limit + 1)
                await stream.send_all(post(path, body) + body)  # no broken pipe: the server drains it
                status, headers, answer = await read_response(stream)
                assert status == 413 and headers["connection"] == "close" and b"body_too_large" in answer
                with trio.fail_after(LINGER + 1):
                    assert await stream.receive_some(100) == b""  # closed, not wedged


async def test_a_client_that_never_sends_its_body_is_closed_not_wedged(config, clock):
    async with running_daemon(config) as app:
        port = int(app.url.rsplit(":", 1)[1])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(post("/nowhere", b'{"a": 1}'))
            with trio.fail_after(60):
                status, _, _ = await read_response(stream)
                assert status == 404
                assert await stream.receive_some(100) == b""


async def test_405_carries_allow(config):
    async with running_daemon(config) as app:
        response = await app.client.post("/api/agents", json={})
        assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"
        assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET"}
        response = await app.client.delete("/hooks/office")
        assert response.status_code == 405 and "POST" in response.headers["allow"]


async def test_with_hypercorns_own_handler_no_connection_wedges(config, clock, monkeypatch):
    """Where ctid's connection handler cannot be installed (another hypercorn), the answer's end is
    still sent shielded: an early answer leaves the connection answering, a 413 closes it."""
    from hypercorn.trio import run as hypercorn_run
    from hypercorn.trio.tcp_server import TCPServer

    from ctid.web import serving

    monkeypatch.setattr(hypercorn_run, "TCPServer", TCPServer)
    monkeypatch.setattr(serving, "install", lambda: False)
    async with running_daemon(config) as app:
        port = int(app.url.rsplit(":", 1)[1])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            body = b'{"number": "+79161234567"}'
            await stream.send_all(post("/api/calls", body))
            await trio.sleep(1)
            await stream.send_all(body)
            assert (await read_response(stream))[0] == 401
            await stream.send_all(HEALTHZ)
            with trio.fail_after(5):
                assert (await read_response(stream))[0] == 200
        limit = app.daemon.settings.core.server.max_body_bytes
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            try:
                await stream.send_all(post("/hooks/office", b"x" * (limit + 1)) + b"x" * (limit + 1))
            except trio.BrokenResourceError:
                pass  # hypercorn's own close does not linger: the rest of the body is refused
            with trio.fail_after(5):  # closed, not wedged
                try:
                    while await stream.receive_some(65536):
                        pass
                except trio.BrokenResourceError:
                    pass
