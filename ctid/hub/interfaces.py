"""The hub's contracts with the rest of ctid: who is connected (Principal), what the daemon does
for the hub (HubBackend), and how hub messages travel between instances (Backplane)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["agent", "supervisor", "admin"]

#: Client -> server hub methods, in their canonical spelling (lookup is case-insensitive, as in ASP.NET).
HUB_METHODS = ("SetStatus", "Dial", "Hold", "Unhold", "Transfer", "CompleteTransfer", "CancelTransfer", "Hangup",
               "Snapshot")


@runtime_checkable
class Principal(Protocol):
    """An authenticated person or API key (ctid.auth provides the concrete class).

    ``role`` is ``agent``, ``supervisor`` or ``admin``; ``agent`` is the agent id the principal
    acts as (``None`` for a supervisor/admin that is not an agent).
    """

    subject: str
    role: str
    agent: str | None


class HubBackend(Protocol):
    """What the daemon provides to the hub."""

    async def authenticate(self, token: str) -> Principal:
        """Resolve an access token or API key. Raises :class:`ctid.errors.AuthError` when it is
        missing, unknown or expired."""
        ...

    async def resolve(self, subject: str) -> Principal:
        """The principal ``subject`` names as configured now (a connection token carries only the
        subject, role and agent of who negotiated). Raises :class:`ctid.errors.AuthError` when
        that user or API key no longer exists."""
        ...

    async def invoke(self, principal: Principal, method: str, args: list[Any]) -> Any:
        """Run a client -> server hub method (one of :data:`HUB_METHODS`, canonical spelling) for
        ``principal`` with positional ``args``. Returns a JSON-serializable result (``None`` for
        void); raises :class:`ctid.errors.CtidError` subclasses, whose message becomes the
        Completion's ``error``."""
        ...


class Backplane(Protocol):
    """Carries opaque hub messages between ctid instances (publish/subscribe on named channels).

    Delivery is best effort and may include the publisher's own messages; the hub tags each
    message with its instance id and drops its own echoes.
    """

    kind: str

    async def run(self, *, task_status: Any) -> None:
        """Keep the transport alive (connect, reconnect with backoff); started by ``Hub.run``.
        Calls ``task_status.started()`` at once: an unreachable server is not a startup failure."""
        ...

    async def publish(self, channel: str, data: bytes) -> None:
        """Hand ``data`` to every subscriber of ``channel`` on every instance. Never blocks for
        long: a backplane that is down buffers a bounded number of messages or drops them."""
        ...

    def publish_nowait(self, channel: str, data: bytes) -> None:
        """:meth:`publish` without a checkpoint: queued (or delivered locally) before it returns."""
        ...

    def subscribe(self, channel: str, *, buffer: int | None = None) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """``async with backplane.subscribe(ch) as messages: async for data in messages: ...``

        ``buffer``: messages kept for this subscriber while it is busy (the backplane's default if
        None); more are dropped, which changes :meth:`continuity`."""
        ...

    def health(self) -> dict[str, Any]:
        """``{"kind": ..., "ok": bool, ...}`` for /readyz and metrics."""
        ...

    def continuity(self, channel: str) -> int | None:
        """A token that stays the same while this process receives every message published on
        ``channel`` (by any instance); it changes when messages may have been missed (a lost
        connection, a full local buffer). None while messages published now may not arrive (not
        subscribed, or the subscription not confirmed yet)."""
        ...
