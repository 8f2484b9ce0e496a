"""The launcher's presence lease timer: persists and shares renewed leases, ends the ones that lapse.

A launcher holds an agent's presence with a lease it renews (docs/call-model.md); when a lease
lapses (the launcher's machine slept, its network went away) the presence it set ends here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

import trio

from ctid.errors import CtidError
from ctid.switchboard import Changes, Switchboard

log = logging.getLogger("ctid")


class LeaseStore(Protocol):
    async def set_lease(self, agent_id: str, until: datetime | None) -> None: ...


class LeaseSync(Protocol):
    """What the timer needs of instance sync (ctid/sync.py)."""

    @property
    def active(self) -> bool: ...

    async def publish(self, message: dict[str, Any]) -> None: ...


class LeaseTimer:
    """Sleeps until the earliest lease lapses; woken whenever a lease changes (here or by sync)."""

    def __init__(self, *, switchboard: Switchboard, store: LeaseStore, clock: Callable[[], datetime],
                 apply_status: Callable[[Changes], Awaitable[None]], sync: LeaseSync):
        self.switchboard = switchboard
        self.store = store
        self.clock = clock  # wall clock of timers; the daemon's (tests give one driven by trio's MockClock)
        self.apply_status = apply_status  # persist and publish a presence change (Pipeline.apply_status)
        self.sync = sync
        self._wakeup = trio.Event()  # set when a launcher lease changes: the expiry timer re-reads

    def wake(self) -> None:
        self._wakeup.set()

    async def renewed(self, agent_id: str) -> None:
        """Persist and share an agent's new lease time (its start and end went through
        ``apply_status`` already) and wake the expiry timer."""
        until = self.switchboard.agents[agent_id].lease_until
        await self.store.set_lease(agent_id, until)
        if self.sync.active:
            await self.sync.publish({"leases": [[agent_id, until.isoformat() if until else None]]})
        self._wakeup.set()

    async def run(self) -> None:
        """Sleep until the earliest lease lapses (``clock``), then end the lapsed ones."""
        while True:
            self._wakeup = trio.Event()
            due = self.switchboard.next_lease_expiry()
            if due is not None and due <= self.clock():
                await self.expire()
                continue
            with trio.move_on_after(math.inf if due is None else (due - self.clock()).total_seconds()):
                await self._wakeup.wait()

    async def expire(self) -> None:
        changes = self.switchboard.expire_leases(self.clock())
        for agent, previous in changes.agents:
            log.warning("the launcher lease of agent %s lapsed; presence %s -> %s", agent.id, previous,
                        agent.to_json()["presence"])
        try:
            await self.apply_status(changes)
        except CtidError as exc:  # in memory it has lapsed already; the store catches up on the next change
            log.warning("could not store the lapsed launcher leases: %s", exc)

