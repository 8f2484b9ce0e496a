"""Housekeeping of the daemon's memory: ends calls the PBX forgot to end, forgets old ended calls."""

from __future__ import annotations

import logging
from datetime import timedelta

import trio

from ctid.errors import CtidError
from ctid.model import utcnow
from ctid.pipeline import Pipeline
from ctid.storedcalls import StoredCalls
from ctid.switchboard import Switchboard

log = logging.getLogger("ctid")


async def housekeep(switchboard: Switchboard, pipeline: Pipeline, stored_calls: StoredCalls,
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


async def keep_house(housekeep_once, interval: float = 300) -> None:
    """Run ``housekeep_once()`` every ``interval`` seconds."""
    while True:
        await trio.sleep(interval)
        await housekeep_once()
