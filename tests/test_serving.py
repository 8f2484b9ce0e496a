"""ctid's hypercorn connection handler (ctid/web/serving.py) keeps hypercorn's keep-alive behaviour:
idle connections close ``keep_alive_timeout`` after their last response, requests in progress are
never cut, shutdown closes idle connections at once and busy ones after their response. Real
hypercorn, real sockets; time is Trio's mock clock (it jumps only once every task waited 50 ms)."""

from __future__ import annotations

import hypercorn.config
import pytest
import trio
import trio.testing
from hypercorn.trio import run as hypercorn_run
from hypercorn.trio.tcp_server import TCPServer

from ctid.asgi import lifespan
from ctid.web import serving

KEEP_ALIVE = 5.0


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/slow":
        await trio.sleep(20)
    if scope["path"] == "/chunked":  # no content-length: h11 ends the body with a non-empty chunk
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ab", "more_body": True})
        await send({"type": "http.response.body", "body": b"cd"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class Server:
    def __init__(self, port: int, stop: trio.Event):
        self.port, self.stop = port, stop

    async def connect(self) -> trio.SocketStream:
        return await trio.open_tcp_stream("127.0.0.1", self.port)


@pytest.fixture
def clock():
    """Trio's clock for these tests (pytest-trio takes a Clock among a test's arguments)."""
    return trio.testing.MockClock(autojump_threshold=0.05)


@pytest.fixture
async def server(clock, nursery):
    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.keep_alive_timeout = KEEP_ALIVE
    config.graceful_timeout = 60
    stop = trio.Event()
    binds = await nursery.start(lambda task_status: serving.serve(app, config, shutdown_trigger=stop.wait,
                                                                  task_status=task_status))
    yield Server(int(binds[0].rsplit(":", 1)[1]), stop)
    stop.set()


async def request(stream: trio.SocketStream, path: str = "/") -> bytes:
    """Send one request and read its whole response (the connection stays open)."""
    await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: ctid\r\n\r\n".encode())
    data = b""
    while not (data.endswith(b"\r\n\r\nok") or data.endswith(b"0\r\n\r\n")):
        chunk = await stream.receive_some(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


async def closed_after(stream: trio.SocketStream) -> float:
    """Seconds (on the clock) until the server closes the connection; it sends nothing meanwhile."""
    start = trio.current_time()
    with trio.fail_after(600):
        assert await stream.receive_some(65536) == b""
    return trio.current_time() - start


def watchdogs() -> int:
    """How many idle watchdogs (KeepAliveTCPServer._idle_timeout tasks) are alive in this run."""
    count, nurseries = 0, list(trio.lowlevel.current_root_task().child_nurseries)
    while nurseries:
        for task in nurseries.pop().child_tasks:
            count += task.name.endswith("._idle_timeout")
            nurseries.extend(task.child_nurseries)
    return count


def test_the_handler_is_installed_for_this_hypercorn():
    assert serving.install() is True
    assert hypercorn_run.TCPServer is serving.KeepAliveTCPServer


def test_a_hypercorn_without_what_the_handler_builds_on_keeps_its_own(monkeypatch):
    class Other:
        pass

    monkeypatch.setattr(hypercorn_run, "TCPServer", Other)
    assert serving.install() is False and hypercorn_run.TCPServer is Other
    monkeypatch.setattr(hypercorn_run, "TCPServer", TCPServer)
    monkeypatch.delattr(TCPServer, "_idle_timeout")
    assert serving.install() is False and hypercorn_run.TCPServer is TCPServer


async def test_an_idle_connection_closes_keep_alive_timeout_after_its_last_response(clock, server):
    async with await server.connect() as stream:
        for _ in range(4):  # requests 3 s apart keep it open well past one timeout
            assert (await request(stream)).startswith(b"HTTP/1.1 200")
            await trio.sleep(3)
        assert await closed_after(stream) == pytest.approx(KEEP_ALIVE - 3, abs=0.1)


async def test_a_connection_that_sends_nothing_closes_after_the_timeout(clock, server):
    async with await server.connect() as stream:
        assert await closed_after(stream) == pytest.approx(KEEP_ALIVE, abs=0.1)


async def test_a_request_longer_than_the_timeout_is_answered_and_the_timer_starts_after_it(clock, server):
    async with await server.connect() as stream:
        start = trio.current_time()
        assert (await request(stream, "/slow")).endswith(b"\r\n\r\nok")
        assert trio.current_time() - start == pytest.approx(20, abs=0.1)
        assert await closed_after(stream) == pytest.approx(KEEP_ALIVE, abs=0.1)


async def test_a_connection_busy_for_long_keeps_no_watchdog_until_it_is_idle_again(clock, server):
    async with await server.connect() as stream:
        await trio.sleep(1)
        assert watchdogs() == 1
        await stream.send_all(b"GET /slow HTTP/1.1\r\nHost: ctid\r\n\r\n")  # as long-lived as a WebSocket
        await trio.sleep(serving.BUSY_WATCH / 2)
        assert watchdogs() == 1  # still watching: a short request costs no task operation
        await trio.sleep(serving.BUSY_WATCH)
        assert watchdogs() == 0
        data = b""
        while not data.endswith(b"ok"):
            data += await stream.receive_some(65536)
        await trio.sleep(1)
        assert watchdogs() == 1
        assert await closed_after(stream) == pytest.approx(KEEP_ALIVE - 1, abs=0.1)
    assert watchdogs() == 0


async def test_sized_and_chunked_responses_follow_each_other_on_one_connection(clock, server):
    async with await server.connect() as stream:
        for path in ("/", "/chunked", "/", "/chunked"):
            response = await request(stream, path)
            head, _, body = response.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            if path == "/chunked":
                assert b"transfer-encoding: chunked" in head.lower() and body == b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"
            else:
                assert body == b"ok"


async def test_stopping_closes_idle_connections_at_once_and_busy_ones_after_their_response(clock, server):
    async with await server.connect() as idle, await server.connect() as busy:
        await request(idle)
        await busy.send_all(b"GET /slow HTTP/1.1\r\nHost: ctid\r\n\r\n")
        await trio.sleep(1)
        server.stop.set()
        assert await closed_after(idle) == pytest.approx(0, abs=0.1)
        start = trio.current_time()
        data = b""
        while chunk := await busy.receive_some(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\nok")
        assert trio.current_time() - start == pytest.approx(19, abs=0.1)  # answered, then closed
