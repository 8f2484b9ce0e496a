"""Housekeeping of the daemon's memory: ends calls the PBX forgot to end, forgets old ended calls."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Protocol

import trio

from ctid.errors import CtidError
from ctid.model import CallEvent, utcnow
from ctid.storedcalls import StoredCalls
from ctid.switchboard import Switchboard

log = logging.getLogger("ctid")


class Events(Protocol):
    """What housekeeping needs of the pipeline (ctid/pipeline.py)."""

    async def submit(self, events: list[CallEvent]) -> int: ...

    def forget(self, knows_call: Callable[[str], bool]) -> None: ...


async def housekeep(switchboard: Switchboard, pipeline: Events, stored_calls: StoredCalls,
                    keep: timedelta = timedelta(hours=2)) -> None:
    """End calls the PBX forgot to end (a lost webhook would leave an agent busy forever), and
    forget ended calls after a while (they stay in the database) so memory stays bounded."""
    stale = switchboard.stale_call_events(utcnow())
    if stale:
        log.warning("ending %d calls the PBX never ended", len({e.call_id for e in stale}))
        try:
            await pipeline.submit(stale)
        except CtidError as exc:
            log.warning("could not end stale calls: %s", exc)
    dropped = switchboard.evict(utcnow() - keep)
    stored_calls.forgotten(dropped)
    stored_calls.prune(utcnow())
    pipeline.forget(switchboard.knows_call)
    if dropped:
        log.debug("evicted %d ended calls from memory", len(dropped))


async def keep_house(housekeep_once: Callable[[], Awaitable[None]], interval: float = 300) -> None:
    """Run ``housekeep_once()`` every ``interval`` seconds."""
    while True:
        await trio.sleep(interval)
        await housekeep_once()
