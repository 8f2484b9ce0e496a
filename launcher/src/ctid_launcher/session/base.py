"""The contract of a session watcher: the state at start-up, then events as they happen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ctid_launcher.policy import Event


class SessionWatcher(Protocol):
    #: what the watcher listens to, for logs and ``doctor`` ("logind LockedHint", "WTS", ...)
    description: str

    async def locked(self) -> bool:
        """Whether the session is locked now (False when it cannot tell)."""

    async def watch(self, emit: Callable[[Event], None]) -> None:
        """Call ``emit`` for every lock, unlock, disconnect, suspend, resume and logoff, forever."""
