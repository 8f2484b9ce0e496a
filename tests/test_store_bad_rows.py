"""The store's writer cannot die from one bad row (issue W2-1: a lone surrogate ended ctid from the
writer thread). A value the driver refuses fails its own batch with StoreError; the batches grouped
with it and every later one are committed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import trio

from ctid.errors import StoreError
from ctid.model import CallEvent, EventKind
from ctid.store import Store

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def ev(key: str, number: str = "+79001234567") -> CallEvent:
    return CallEvent(connector="mf", pbx_call_id=f"c-{key}", kind=EventKind.RING, key=key,
                     at=T0, received_at=T0 + timedelta(milliseconds=20), remote_number=number, agent_login="101")


async def test_a_row_the_driver_refuses_fails_its_batch_only(store: Store) -> None:
    results: dict[str, object] = {}

    async def add(key: str, number: str) -> None:
        try:
            results[key] = await store.add_events([ev(key, number)])
        except StoreError as exc:
            results[key] = exc

    async with trio.open_nursery() as nursery:  # queued together: one grouped commit, then split
        for key, number in (("a", "+7900"), ("bad", "+7900\udc00"), ("b", "+7901")):
            nursery.start_soon(add, key, number)
    assert isinstance(results["bad"], StoreError) and results["bad"].error_id == "store_rejected"
    assert results["a"] == {"mf\x00a"} and results["b"] == {"mf\x00b"}
    # the writer lives on
    assert await store.add_events([ev("c")]) == {"mf\x00c"}
    assert [e.key for e in await store.events_for_call(ev("c").call_id)] == ["c"]
