"""HubConnection over an in-memory socket under Trio's autojump clock: handshake, framing,
keep-alive Pings, the client timeout, invocations and protocol errors, with no real waiting."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from ctid.hub.connection import HubConnection, KeepAlive
from ctid.hub.hub import HubSettings

from .conftest import TOKENS, FakeBackend

RS = "\x1e"


class MemorySocket:
    """The server's side of a WebSocket; the test plays the client through ``client_send`` and
    ``client_receive``."""

    def __init__(self) -> None:
        self._in_send, self._in_receive = trio.open_memory_channel[str | bytes](100)
        self._out_send, self._out_receive = trio.open_memory_channel[str](100)
        self.close_code: int | None = None
        self.records: list[str] = []
        self._tail = ""

    async def receive(self) -> str | bytes:
        return await self._in_receive.receive()

    async def send(self, data: str) -> None:
        assert isinstance(data, str) and data.endswith(RS), "frames must end on a record boundary"
        await self._out_send.send(data)

    async def close(self, code: int, reason: str = "") -> None:
        self.close_code = code
        self._out_send.close()

    # the client's side
    async def client_send(self, data: str | bytes) -> None:
        await self._in_send.send(data)

    async def next(self) -> dict[str, Any] | None:
        """The next record the server sent (None once the socket is closed)."""
        while not self.records:
            try:
                frame = await self._out_receive.receive()
            except trio.EndOfChannel:
                return None
            self.records.extend(frame.split(RS)[:-1])
        return json.loads(self.records.pop(0))


async def serve_with_clock(conn: HubConnection, keepalive: KeepAlive) -> None:
    """``conn.serve()`` with the hub's keep-alive clock running beside it, until the connection ends."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(keepalive.run)
        await conn.serve()
        nursery.cancel_scope.cancel()


async def start(
    nursery: trio.Nursery, backend: FakeBackend, token: str = "tok-alice", handshake: bool = True, **settings: Any
) -> tuple[MemorySocket, HubConnection]:
    socket = MemorySocket()
    options = {"ping_interval": 15.0, "client_timeout": 30.0, "max_message_bytes": 1024, **settings}
    keepalive = KeepAlive()
    conn = HubConnection(socket, TOKENS[token], "conn-1", backend, HubSettings(**options), keepalive=keepalive)
    nursery.start_soon(serve_with_clock, conn, keepalive)
    if handshake:
        await socket.client_send('{"protocol":"json","version":1}' + RS)
        assert await socket.next() == {}
    return socket, conn


async def test_server_pings_after_ping_interval_without_sending(autojump_clock: trio.testing.MockClock) -> None:
    backend = FakeBackend()
    async with trio.open_nursery() as nursery:
        socket, conn = await start(nursery, backend)
        began = trio.current_time()
        assert await socket.next() == {"type": 6}
        assert trio.current_time() - began == pytest.approx(15, abs=0.01)
        await trio.sleep(10)
        conn.send_record('{"type":1,"target":"callUpdated","arguments":[{}]}' + RS)  # postpones the Ping
        sent_at = trio.current_time()
        assert (await socket.next())["target"] == "callUpdated"
        assert await socket.next() == {"type": 6}
        assert trio.current_time() - sent_at == pytest.approx(15, abs=0.01)
        nursery.cancel_scope.cancel()


async def test_silent_client_is_not_timed_out_before_its_first_ping(autojump_clock: trio.testing.MockClock) -> None:
    """signalrcore without auto-reconnect never pings: it must stay connected (as with ASP.NET)."""
    async with trio.open_nursery() as nursery:
        socket, conn = await start(nursery, FakeBackend())
        for _ in range(10):  # 150 s of silence: only our Pings
            assert await socket.next() == {"type": 6}
        assert socket.close_code is None
        nursery.cancel_scope.cancel()


async def test_client_timeout_armed_by_first_ping(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        socket, conn = await start(nursery, FakeBackend(), ping_interval=100)
        await socket.client_send('{"type":6}' + RS)
        armed_at = trio.current_time()
        close = await socket.next()
        assert close == {
            "type": 7,
            "error": "Server timeout elapsed without receiving a message from the client.",
        }
        assert trio.current_time() - armed_at == pytest.approx(30, abs=0.01)
        assert await socket.next() is None and socket.close_code == 1000


async def test_client_traffic_keeps_an_armed_connection_alive(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        socket, conn = await start(nursery, FakeBackend(), ping_interval=100)
        for _ in range(6):
            await socket.client_send('{"type":6}' + RS)
            await trio.sleep(20)
        assert socket.close_code is None
        nursery.cancel_scope.cancel()


async def test_handshake_timeout(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        socket, conn = await start(nursery, FakeBackend(), handshake=False)
        assert await socket.next() == {"error": "Handshake was canceled."}
        assert trio.current_time() == pytest.approx(15, abs=0.01)
        assert await socket.next() is None


async def test_handshake_rejects_unsupported_protocol() -> None:
    async with trio.open_nursery() as nursery:
        socket, conn = await start(nursery, FakeBackend(), handshake=False)
        await socket.client_send('{"protocol":"messagepack","version":1}' + RS)
        assert await socket.next() == {"error": "The protocol 'messagepack' is not supported."}
        assert await socket.next() is None and socket.close_code == 1000


async def test_handshake_split_across_frames_with_messages_after_it() -> None:
    backend = FakeBackend()
    async with trio.open_nursery() as nursery:
        socket, conn = await start(nursery, backend, handshake=False)
        await socket.client_send('{"protocol":"js')
        await socket.client_send('on","version":0}' + RS + '{"type":1,"target":"SetStatus","arguments":["away"],"invocationId":"a"}' + RS)
        assert await socket.next() == {}
        assert await socket.next() == {"type": 3, "invocationId": "a", "result": {"agent": "alice", "status": "away"}}
        assert conn.handshake_version == 0
        nursery.cancel_scope.cancel()


async def test_invocations_in_one_frame_partial_records_and_binary_frames() -> None:
    backend = FakeBackend()
    async with trio.open_nursery() as nursery:
        socket, conn = await start(nursery, backend)
        await socket.client_send(
            '{"type":1,"target":"dial","arguments":["+100"],"invocationId":"1"}' + RS
            + '{"type":1,"target":"SETSTATUS","arguments":["dnd"],"invocationId":"2"}' + RS + '{"type":1,"tar'
        )
        await socket.client_send('get":"Snapshot","arguments":[],"invocationId":"3","headers":{"Authorization":"Bearer x"}}' + RS)
        await socket.client_send(b'{"type":1,"target":"Hold","arguments":["call-1"],"invocationId":"4"}' + RS.encode())
        replies = [await socket.next() for _ in range(4)]
        assert replies == [
            {"type": 3, "invocationId": "1", "result": {"call_id": "call-1"}},
            {"type": 3, "invocationId": "2", "result": {"agent": "alice", "status": "dnd"}},
            {"type": 3, "invocationId": "3", "result": {"calls": [{"id": "call-1", "agent": "alice", "state": "ringing"}], "agents": [], "tasks": []}},
            {"type": 3, "invocationId": "4"},
        ]
        assert [method for _, method, _ in backend.invocations] == ["Dial", "SetStatus", "Snapshot", "Hold"]
        nursery.cancel_scope.cancel()


async def test_backend_errors_unknown_methods_and_non_blocking_sends() -> None:
    backend = FakeBackend()
    backend.calls["bobs"] = {"id": "bobs", "agent": "bob", "state": "talking"}
    async with trio.open_nursery() as nursery:
        socket, conn = await start(nursery, backend)
        await socket.client_send('{"type":1,"target":"Hangup","arguments":["bobs"],"invocationId":"1"}' + RS)
        assert await socket.next() == {"type": 3, "invocationId": "1", "error": "forbidden: not your call"}
        await socket.client_send('{"type":1,"target":"SetStatus","arguments":["sleepy"],"invocationId":"2"}' + RS)
        assert (await socket.next())["error"].startswith("invalid_status: ")
        await socket.client_send('{"type":1,"target":"FormatDisk","arguments":[],"invocationId":"3"}' + RS)
        assert await socket.next() == {"type": 3, "invocationId": "3", "error": "Unknown hub method 'FormatDisk'"}
        # non-blocking: no invocationId -> it runs, but no Completion comes back
        await socket.client_send('{"type":1,"target":"SetStatus","arguments":["away"]}' + RS)
        await socket.client_send('{"type":1,"target":"Nope","arguments":[]}' + RS)
        await socket.client_send('{"type":4,"target":"Dial","arguments":[],"invocationId":"5"}' + RS)
        reply = await socket.next()
        assert reply["invocationId"] == "5" and "Streaming is not supported" in reply["error"]
        assert backend.invocations[-1] == ("alice", "SetStatus", ["away"])
        # completions, cancels, acks from the client are ignored
        await socket.client_send('{"type":3,"invocationId":"9"}' + RS + '{"type":5,"invocationId":"9"}' + RS + '{"type":8,"sequenceId":1}' + RS)
        await socket.client_send('{"type":1,"target":"Unhold","arguments":[],"invocationId":"6"}' + RS)
        assert (await socket.next())["error"] == "not_found: no call None"
        nursery.cancel_scope.cancel()


async def test_unexpected_backend_exception_becomes_an_internal_error() -> None:
    class Broken(FakeBackend):
        async def invoke(self, principal: Any, method: str, args: list[Any]) -> Any:
            raise ZeroDivisionError("boom")

    async with trio.open_nursery() as nursery:
        socket, conn = await start(nursery, Broken())
        await socket.client_send('{"type":1,"target":"Snapshot","arguments":[],"invocationId":"1"}' + RS)
        assert await socket.next() == {
            "type": 3,
            "invocationId": "1",
            "error": "internal: An unexpected error occurred invoking 'Snapshot' on the server.",
        }
        await socket.client_send('{"type":6}' + RS)  # still alive
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("this is not json" + RS, "Error parsing message: invalid JSON."),
        ('{"type":42}' + RS, "Unknown message type: 42"),
        ('{"type":1,"arguments":[]}' + RS, "Error parsing message: missing or invalid 'target'."),
        ("x" * 2000, "Message exceeds the maximum size of 1024 bytes."),
        (b"\xff\xfe" + RS.encode(), "Binary frame is not valid UTF-8 JSON."),
    ],
)
async def test_protocol_errors_close_with_an_error(frame: str | bytes, error: str) -> None:
    async with trio.open_nursery() as nursery:
        socket, conn = await start(nursery, FakeBackend())
        await socket.client_send(frame)
        assert await socket.next() == {"type": 7, "error": error}
        assert await socket.next() is None and socket.close_code == 1000


async def test_client_close_and_server_close_with_allow_reconnect() -> None:
    async with trio.open_nursery() as nursery:
        socket, conn = await start(nursery, FakeBackend())
        await socket.client_send('{"type":7}' + RS)
        assert await socket.next() is None and socket.close_code == 1000  # no Close echoed back
    async with trio.open_nursery() as nursery:
        socket, conn = await start(nursery, FakeBackend())
        conn.close("Server is restarting.", allow_reconnect=True)
        assert await socket.next() == {"type": 7, "error": "Server is restarting.", "allowReconnect": True}
        assert await socket.next() is None


async def test_slow_client_is_disconnected_instead_of_blocking_publishers() -> None:
    async with trio.open_nursery() as nursery:
        socket, conn = await start(nursery, FakeBackend(), send_queue=5)
        accepted = [conn.send_record('{"type":6}' + RS) for _ in range(200)]
        assert accepted.count(False) > 0  # never blocks, never raises
        assert conn.close_error == "Client too slow: send queue overflow."
    # the nursery exits: the connection ended itself


async def test_a_peer_that_vanished_mid_send_ends_the_connection_quietly() -> None:
    class Vanishing(MemorySocket):
        async def send(self, data: str) -> None:
            raise trio.BrokenResourceError("peer gone")

    socket = Vanishing()
    conn = HubConnection(socket, TOKENS["tok-alice"], "c", FakeBackend(), HubSettings(), keepalive=KeepAlive())
    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn.serve)
            await socket.client_send('{"protocol":"json","version":1}' + RS)  # the {} reply fails


async def test_an_internal_failure_closes_only_that_connection_with_an_error() -> None:
    class Exploding(MemorySocket):
        calls = 0

        async def receive(self) -> str | bytes:
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("bug")
            return await super().receive()

    socket = Exploding()
    conn = HubConnection(socket, TOKENS["tok-alice"], "c", FakeBackend(), HubSettings(), keepalive=KeepAlive())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(conn.serve)
        await socket.client_send('{"protocol":"json","version":1}' + RS)
        assert await socket.next() == {}
        assert await socket.next() == {"type": 7, "error": "An unexpected error occurred."}
        assert await socket.next() is None
