"""Presence writes land in the order they were asked for, even when the first one is slow.

Found end to end (launcher/tests/test_e2e.py, the restart test): the launcher's first lease renewal
and its "available" reached ctid together; the renewal persisted the agent as it was (offline), the
status change persisted "available", both in worker threads, and the stale "offline" landed last.
Memory said available, the database said offline, and the next start loaded offline.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import trio
import trio.testing
from sqlalchemy import event

from ctid.model import Presence
from ctid.store import Store

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("second", ["status", "lease"])
async def test_a_later_presence_write_never_lands_before_an_earlier_slow_one(store: Store, second: str) -> None:
    await store.set_presence("anna", Presence.OFFLINE, T0 - timedelta(hours=1))
    first_in, release = threading.Event(), threading.Event()
    checkouts = 0

    @event.listens_for(store.engine, "checkout")  # before any BEGIN (SQLite's IMMEDIATE takes its lock)
    def hold_the_first(*_connection) -> None:  # noqa: ANN002
        nonlocal checkouts
        checkouts += 1
        if checkouts == 1:
            first_in.set()
            release.wait(10)  # the first write is slow (a busy database)

    lease = T0 + timedelta(seconds=60)
    second_done = trio.Event()

    async def second_write() -> None:
        if second == "status":  # the launcher's "available", applied while the renewal is stored
            await store.set_presence("anna", Presence.AVAILABLE, T0 + timedelta(seconds=1), source="launcher",
                                     lease_until=lease)
        else:  # or the lease's next renewal
            await store.set_lease("anna", lease + timedelta(seconds=20))
        second_done.set()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            # a lease renewal persisting the agent as it is: offline, the lease started
            nursery.start_soon(lambda: store.set_presence("anna", Presence.OFFLINE, T0, lease_until=lease))
            await trio.to_thread.run_sync(first_in.wait, 10)
            nursery.start_soon(second_write)
            await trio.testing.wait_all_tasks_blocked()
            if store.limiter.statistics().borrowed_tokens > 1:  # the second write runs beside the first:
                await second_done.wait()  # let it finish first
            release.set()

    assert checkouts == 2
    stored = await store.load_presence()
    leases = await store.load_leases()
    if second == "status":
        assert stored["anna"] == (Presence.AVAILABLE, T0 + timedelta(seconds=1))
        assert leases["anna"] == ("launcher", lease)
        assert [s for s, _ in await store.presence_history("anna", since=T0)] == [Presence.OFFLINE, Presence.AVAILABLE]
    else:
        assert stored["anna"] == (Presence.OFFLINE, T0)
        assert leases["anna"] == ("user", lease + timedelta(seconds=20))
