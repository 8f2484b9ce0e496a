"""The Redis backplane: its RESP codec, and two hub instances (two servers on two ports) sharing
a real Redis, including a Redis outage: local delivery goes on, cross-instance delivery recovers."""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from functools import partial

import pytest
import trio
import trio.testing

from ctid.hub import Hub, MemoryBackplane, backplane_from_url
from ctid.hub.client import HubClient, open_hub
from ctid.hub.redis_backplane import (
    RedisBackplane,
    RedisProtocolError,
    RespReader,
    _parse_url,
    _redact,
    encode_command,
)
from ctid.testing import services

from .conftest import FakeBackend, free_port, running_hub


def test_encode_command() -> None:
    assert encode_command("PUBLISH", "ch", b"\x00\xff") == b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$2\r\n\x00\xff\r\n"


async def test_resp_reader_parses_every_reply_type_across_chunks() -> None:
    client, server = trio.testing.memory_stream_pair()
    reader = RespReader(server)
    await client.send_all(b"+OK\r\n-ERR bad\r\n:42\r\n$5\r\nhel")
    assert await reader.read() == "OK"
    error = await reader.read()
    assert isinstance(error, RedisProtocolError) and str(error) == "ERR bad"
    assert await reader.read() == 42
    await client.send_all(b"lo\r\n$-1\r\n*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$0\r\n\r\n")
    assert await reader.read() == b"hello"
    assert await reader.read() is None
    assert await reader.read() == [b"message", b"ch", b""]
    await client.send_all(b"?what\r\n")
    with pytest.raises(RedisProtocolError):
        await reader.read()
    await client.aclose()
    with pytest.raises(trio.BrokenResourceError):
        await reader.read()


def test_url_parsing_and_redaction() -> None:
    assert _parse_url("redis://:s3cret@db.example:6380/2") == {
        "tls": False, "unix": None, "host": "db.example", "port": 6380, "username": None, "password": "s3cret",
    }
    assert _parse_url("rediss://user:pw@h")["tls"] is True
    assert _parse_url("unix:///run/redis.sock?password=x") == {
        "tls": False, "unix": "/run/redis.sock", "host": "127.0.0.1", "port": 6379, "username": None, "password": "x",
    }
    assert _redact("redis://:s3cret@h:1/0") == "redis://:***@h:1/0"
    assert isinstance(backplane_from_url("redis://127.0.0.1:6379/0"), RedisBackplane)
    with pytest.raises(ValueError):
        _parse_url("http://nope")


async def next_call_id(client: HubClient) -> str:
    with trio.fail_after(3):
        target, arguments = await client.next_message()
    assert target == "callUpdated"
    return arguments[0]["id"]


async def nothing_more(client: HubClient, wait: float = 0.2) -> None:
    with trio.move_on_after(wait):
        message = await client.next_message()
        raise AssertionError(f"unexpected {message}")


def redis_hub(url: str, channel: str, **backplane: float) -> Hub:
    return Hub(FakeBackend(), RedisBackplane(url, **backplane), connection_secret=b"deployment", channel=channel)


async def wait_healthy(*hubs: Hub, ok: bool = True) -> None:
    with trio.fail_after(10):
        while any(hub.backplane.health()["ok"] is not ok for hub in hubs):  # noqa: ASYNC110 (polls a status)
            await trio.sleep(0.02)


async def test_event_published_on_one_instance_reaches_clients_on_the_other(redis_url: str) -> None:
    channel = f"ctid-test:{uuid.uuid4().hex}"
    a, b = redis_hub(redis_url, channel), redis_hub(redis_url, channel)
    async with running_hub(a) as url_a, running_hub(b) as url_b:
        await wait_healthy(a, b)
        async with open_hub(url_a, "tok-alice") as alice_a, open_hub(url_b, "tok-alice") as alice_b, open_hub(
            url_b, "tok-bob"
        ) as bob_b, open_hub(url_a, "tok-sue") as sue_a:
            a.publish_call({"id": "from-a"}, {"alice"})
            assert await next_call_id(alice_b) == "from-a"
            assert await next_call_id(alice_a) == "from-a"
            assert await next_call_id(sue_a) == "from-a"
            b.publish_agent({"id": "bob", "status": "dnd"})  # presence set on B, seen on A
            with trio.fail_after(3):
                assert await sue_a.next_message() == ("agentUpdated", [{"id": "bob", "status": "dnd"}])
            await nothing_more(alice_a)  # exactly one copy: its own echo is dropped by A
            with trio.fail_after(3):
                assert await bob_b.next_message() == ("agentUpdated", [{"id": "bob", "status": "dnd"}])
            await nothing_more(bob_b)  # never alice's call
        health = a.health()["backplane"]
        assert health["kind"] == "redis" and health["ok"] and health["buffered"] == 0


def _redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        services.fail_or_skip("redis-server is not installed")
    return binary


class RedisServer:
    """A private redis-server on ``port`` that the test stops and starts again."""

    def __init__(self, nursery: trio.Nursery, port: int, *extra: str):
        self.nursery, self.port, self.extra = nursery, port, list(extra)
        self.process: trio.Process | None = None

    async def start(self) -> None:
        args = [_redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                *self.extra]
        self.process = await self.nursery.start(
            partial(trio.run_process, args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        )
        with trio.fail_after(5):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    return
                except OSError:
                    await trio.sleep(0.02)

    async def stop(self) -> None:
        assert self.process is not None
        self.process.kill()
        await self.process.wait()


async def test_redis_outage_keeps_local_delivery_and_recovers() -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    options = {"backoff_min": 0.05, "backoff_max": 0.2, "health_interval": 0.5, "connect_timeout": 1.0}
    a, b = redis_hub(url, "ctid:test", **options), redis_hub(url, "ctid:test", **options)
    async with trio.open_nursery() as nursery:
        redis = RedisServer(nursery, port)
        await redis.start()
        async with running_hub(a) as url_a, running_hub(b) as url_b:
            await wait_healthy(a, b)
            async with open_hub(url_a, "tok-alice") as alice_a, open_hub(url_b, "tok-alice") as alice_b:
                a.publish_call({"id": "before"}, {"alice"})
                assert await next_call_id(alice_b) == "before"
                assert await next_call_id(alice_a) == "before"

                # Redis goes away: each instance keeps serving its own clients
                await redis.stop()
                await wait_healthy(a, b, ok=False)
                a.publish_call({"id": "during"}, {"alice"})
                assert await next_call_id(alice_a) == "during"
                assert a.backplane.health()["error"]
                assert await alice_a.invoke("SetStatus", "away") == {"agent": "alice", "status": "away"}
                await redis.start()

                # Redis is back: both instances reconnect and cross-instance delivery resumes
                await wait_healthy(a, b)
                b.publish_call({"id": "after"}, {"alice"})
                ids = {await next_call_id(alice_a)}
                while "after" not in ids:  # "during", buffered on A, may arrive first on B
                    ids.add(await next_call_id(alice_a))
                seen_b = set()
                while "after" not in seen_b:
                    seen_b.add(await next_call_id(alice_b))
                assert seen_b <= {"during", "after"}
        await redis.stop()


async def test_password_protected_redis() -> None:
    port = free_port()
    async with trio.open_nursery() as nursery:
        redis = RedisServer(nursery, port, "--requirepass", "s3cret")
        await redis.start()
        good = Hub(FakeBackend(), RedisBackplane(f"redis://:s3cret@127.0.0.1:{port}/0", backoff_min=0.05))
        bad = Hub(FakeBackend(), RedisBackplane(f"redis://:not-the-pw-Xq9@127.0.0.1:{port}/0", backoff_min=0.05))
        async with running_hub(good), running_hub(bad):
            await wait_healthy(good)
            with trio.fail_after(5):
                while not bad.backplane.health()["error"]:  # noqa: ASYNC110 (polls a status)
                    await trio.sleep(0.02)
            health = bad.backplane.health()
            assert health["ok"] is False and "AUTH failed" in health["error"]
            assert "Xq9" not in str(health)  # the password never shows
        await redis.stop()


async def test_two_hubs_in_one_process_share_a_memory_backplane() -> None:
    shared = MemoryBackplane()
    a, b = Hub(FakeBackend(), shared), Hub(FakeBackend(), shared)
    async with running_hub(a) as url_a, running_hub(b) as url_b:
        async with open_hub(url_a, "tok-alice") as alice_a, open_hub(url_b, "tok-alice") as alice_b:
            for garbage in (b"not json", b'{"o":"x","g":"agent:alice","m":5}', b'{"o":"x"}', b"[]"):
                await shared.publish(a.channel, garbage)  # ignored, logged, nothing breaks
            b.publish_call({"id": "from-b"}, {"alice"})
            assert await next_call_id(alice_a) == "from-b"
            assert await next_call_id(alice_b) == "from-b"
            await nothing_more(alice_b)
    assert shared.health() == {"kind": "memory", "ok": True, "dropped": 0}


class FakeRedis:
    """Enough of a Redis server to watch the publisher: records PUBLISH commands, and can be told
    to answer the next one with garbage."""

    def __init__(self) -> None:
        self.published: list[tuple[bytes, bytes]] = []
        self.garbage_next = False
        self.connections = 0
        self.changed = trio.Event()

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        reader = RespReader(stream)
        async with stream:
            try:
                while True:
                    command = await reader.read()
                    name = command[0].upper()
                    if name == b"PUBLISH":
                        if self.garbage_next:
                            self.garbage_next = False
                            await stream.send_all(b"?garbage\r\n")
                            continue
                        self.published.append((command[1], command[2]))
                        self.changed.set()
                        await stream.send_all(b":0\r\n")
                    elif name == b"SUBSCRIBE":
                        for channel in command[1:]:
                            await stream.send_all(b"*3\r\n$9\r\nsubscribe\r\n" + encode_command(channel)[4:] + b":1\r\n")
                    elif name == b"PING":
                        await stream.send_all(b"+PONG\r\n")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def wait_published(self, count: int) -> None:
        with trio.fail_after(5):
            while len(self.published) < count:
                self.changed = trio.Event()
                await self.changed.wait()


async def test_publisher_buffers_while_redis_is_down_and_resends_after_a_broken_reply() -> None:
    port = free_port()
    backplane = RedisBackplane(f"redis://127.0.0.1:{port}", backoff_min=0.02, backoff_max=0.05, buffer=3)
    async with trio.open_nursery() as nursery:
        await nursery.start(backplane.run)
        for number in range(5):  # nobody listens on the port: buffered, the oldest two dropped
            await backplane.publish("ch", b"m%d" % number)
        health = backplane.health()
        assert (health["ok"], health["buffered"], health["dropped"]) == (False, 3, 2)

        fake = FakeRedis()
        listeners = await nursery.start(partial(trio.serve_tcp, fake.handle, port, host="127.0.0.1"))
        await fake.wait_published(3)
        assert fake.published == [(b"ch", b"m2"), (b"ch", b"m3"), (b"ch", b"m4")]
        with trio.fail_after(5):
            while backplane.health()["buffered"]:  # noqa: ASYNC110 (the replies are read after the fake records)
                await trio.sleep(0.01)

        fake.garbage_next = True  # a broken reply: reconnect, and the message is sent again
        await backplane.publish("ch", b"again")
        await fake.wait_published(4)
        assert fake.published[-1] == (b"ch", b"again")
        assert fake.connections >= 3  # publisher, subscriber, then the publisher's reconnect
        assert "unexpected reply" in backplane.last_error
        for listener in listeners:
            await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_channels_subscribed_later_on_a_live_connection(redis_url: str, redis_prefix: str) -> None:
    """The daemon subscribes its own channel next to the hub's: a subscription made while the
    subscriber connection is up takes effect on it, and both keep working."""
    first, second = f"{redis_prefix}hub", f"{redis_prefix}sync"
    listener, talker = RedisBackplane(redis_url), RedisBackplane(redis_url)
    async with trio.open_nursery() as nursery:
        await nursery.start(listener.run)
        await nursery.start(talker.run)
        async with listener.subscribe(first) as hub_messages:
            await wait_backplanes(listener, talker)
            async with listener.subscribe(second) as sync_messages:
                with trio.fail_after(5):
                    while True:  # the SUBSCRIBE for the new channel is in flight: publish until it lands
                        await talker.publish(second, b"sync-1")
                        with trio.move_on_after(0.05):
                            assert await sync_messages.receive() == b"sync-1"
                            break
                    await talker.publish(first, b"hub-1")
                    assert await hub_messages.receive() == b"hub-1"
        nursery.cancel_scope.cancel()


async def wait_backplanes(*backplanes: RedisBackplane) -> None:
    with trio.fail_after(10):
        while not all(b.health()["ok"] for b in backplanes):  # noqa: ASYNC110 (polls a status)
            await trio.sleep(0.02)


async def test_continuity_tells_when_messages_may_have_been_missed(redis_url: str, redis_prefix: str) -> None:
    """``continuity`` is None until Redis confirms the subscription (a message published before
    may not arrive), then a token that changes once the subscriber connection is lost, even when
    it is back before anyone looked: what was published in between never arrives."""
    import redis

    channel = f"{redis_prefix}sync"
    listener, talker = RedisBackplane(redis_url, backoff_min=0.05), RedisBackplane(redis_url)
    async with trio.open_nursery() as nursery:
        await nursery.start(listener.run)
        await nursery.start(talker.run)
        assert listener.continuity(channel) is None  # nobody here subscribed
        async with listener.subscribe(channel) as messages:
            await wait_backplanes(listener, talker)
            with trio.fail_after(5):
                while (token := listener.continuity(channel)) is None:  # noqa: ASYNC110 (polls a status)
                    await trio.sleep(0.01)
            await talker.publish(channel, b"confirmed")  # confirmed: this one must arrive
            with trio.fail_after(5):
                assert await messages.receive() == b"confirmed"
            assert listener.continuity(channel) == token

            client = redis.Redis.from_url(redis_url)
            try:
                client.client_kill_filter(_type="pubsub")
            finally:
                client.close()
            with trio.fail_after(10):
                while listener.continuity(channel) in (None, token):  # noqa: ASYNC110 (polls a status)
                    await trio.sleep(0.01)
            assert listener.continuity(channel) != token
            await talker.publish(channel, b"after")
            with trio.fail_after(5):
                assert await messages.receive() == b"after"
        assert listener.continuity(channel) is None  # unsubscribed here
        nursery.cancel_scope.cancel()


def test_memory_backplane_continuity_changes_with_every_dropped_message() -> None:
    backplane = MemoryBackplane(buffer=1)
    assert backplane.continuity("sync") is None

    async def main() -> None:
        async with backplane.subscribe("sync") as messages, backplane.subscribe("hub") as _, \
                backplane.subscribe("big", buffer=3) as big:
            token = backplane.continuity("sync")
            assert token is not None
            backplane.deliver("sync", b"1")
            assert backplane.continuity("sync") == token
            for n in range(3):  # another channel's subscriber drops two: not this channel's gap
                backplane.deliver("hub", b"%d" % n)
            assert backplane.continuity("sync") == token and backplane.dropped == 2
            big_token = backplane.continuity("big")
            for n in range(3):  # a subscriber's own buffer
                backplane.deliver("big", b"%d" % n)
            assert backplane.continuity("big") == big_token
            assert [await big.receive() for _ in range(3)] == [b"0", b"1", b"2"]
            backplane.deliver("sync", b"2")  # the buffer of one is full: dropped
            assert backplane.continuity("sync") != token
            assert await messages.receive() == b"1"

    trio.run(main)
