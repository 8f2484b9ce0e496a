"""The in-memory backplane (one process; the default) and the factory that picks a backplane
from ``hub.backplane`` in the configuration."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from ctid.hub.interfaces import Backplane


def sender_prefix(instance_id: str) -> bytes:
    """How a message published by ``instance_id`` begins when it is compact JSON with ``"o"`` (the
    sender) as its first key, as the hub's envelopes and the daemon's sync messages are: a
    subscriber skips the backplane's echoes of its own messages by this prefix, without parsing."""
    return ('{"o":' + json.dumps(instance_id) + ",").encode()


class MemoryBackplane:
    """Publish/subscribe inside one process. Several hubs may share one instance (tests, or two
    hubs mounted in one daemon); a slow subscriber loses messages instead of blocking publishers."""

    kind = "memory"

    def __init__(self, *, buffer: int = 1000):
        self._buffer = buffer
        self._subscribers: dict[str, set[trio.MemorySendChannel[bytes]]] = {}
        self._dropped: dict[str, int] = {}  # messages dropped for a busy subscriber, per channel

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    async def publish(self, channel: str, data: bytes) -> None:
        self.deliver(channel, data)

    def publish_nowait(self, channel: str, data: bytes) -> None:
        self.deliver(channel, data)

    def deliver(self, channel: str, data: bytes) -> None:
        """Hand ``data`` to this process's subscribers of ``channel`` without waiting."""
        for sender in list(self._subscribers.get(channel, ())):
            try:
                sender.send_nowait(data)
            except trio.WouldBlock:
                self._dropped[channel] = self._dropped.get(channel, 0) + 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.get(channel, set()).discard(sender)

    @property
    def dropped(self) -> int:
        return sum(self._dropped.values())

    def subscribers(self, channel: str) -> int:
        """How many subscriptions of ``channel`` this backplane has."""
        return len(self._subscribers.get(channel, ()))

    def channels(self) -> set[str]:
        """Channels with at least one subscriber in this process."""
        return {channel for channel, senders in self._subscribers.items() if senders}

    @asynccontextmanager
    async def subscribe(self, channel: str, *, buffer: int | None = None) -> AsyncIterator[AsyncIterator[bytes]]:
        sender, receiver = trio.open_memory_channel[bytes](self._buffer if buffer is None else buffer)
        self._subscribers.setdefault(channel, set()).add(sender)
        try:
            async with receiver:
                yield receiver
        finally:
            self._subscribers.get(channel, set()).discard(sender)
            sender.close()

    def health(self) -> dict[str, Any]:
        return {"kind": self.kind, "ok": True, "dropped": self.dropped}

    def continuity(self, channel: str) -> int | None:
        """Changes whenever a message of ``channel`` was dropped for a subscriber here."""
        return self._dropped.get(channel, 0) if self.subscribers(channel) else None


def backplane_from_url(url: str) -> Backplane:
    """``memory`` or a ``redis://``, ``rediss://`` or ``unix://`` URL (``hub.backplane``)."""
    if url == "memory":
        return MemoryBackplane()
    from ctid.hub.redis_backplane import RedisBackplane

    return RedisBackplane(url)
