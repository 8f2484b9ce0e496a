"""The pipeline reads the store before a call's events only when the store may hold that call: a
brand-new call's screen pop does not wait for the database, while calls stored before a restart, or
evicted from memory since, are restored before their late events are folded."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ctid.model import Call, CallEvent, EventKind, call_id_for, utcnow
from ctid.storedcalls import StoredCalls
from ctid.testing.daemon import eventually, running_daemon

from .conftest import API_KEY, make_config, post_events, stored_calls_loaded

ADMIN = {"Authorization": f"Bearer {API_KEY}"}
NOW = utcnow().replace(microsecond=0)
CALLER = "+79161234567"


def ev(kind, pbx_call_id, at, **fields):
    return {"event": kind, "call_id": pbx_call_id, "timestamp": at.isoformat(), **fields}


def count_reads(daemon) -> list[str]:
    """The call ids the pipeline reads from the store from now on."""
    reads: list[str] = []
    read = daemon.store.events_for_call

    async def counting(call_id):
        reads.append(call_id)
        return await read(call_id)

    daemon.store.events_for_call = counting
    return reads


async def get_call(app, pbx_call_id):
    response = await app.client.get(f"/api/calls/{call_id_for('office', pbx_call_id)}", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_new_call_is_folded_without_reading_the_store(config):
    async with running_daemon(config) as app:
        reads = count_reads(app.daemon)
        await post_events(app, [ev("ring", "n-1", NOW - timedelta(seconds=30), **{"from": CALLER}, agent="101")])
        await post_events(app, [ev("answer", "n-1", NOW - timedelta(seconds=25), agent="101"),
                         ev("end", "n-1", NOW - timedelta(seconds=5))])
        assert reads == []
        call = await get_call(app, "n-1")
        assert (call["state"], call["outcome"], call["talk_seconds"]) == ("ended", "answered", 20.0)


async def test_an_event_older_than_the_horizon_is_read_first(config):
    async with running_daemon(config) as app:
        reads = count_reads(app.daemon)
        old = NOW - timedelta(days=2)
        await post_events(app, [ev("ring", "o-1", old, **{"from": CALLER}, agent="101"),
                         ev("end", "o-1", old + timedelta(seconds=20))])
        assert reads == [call_id_for("office", "o-1")]


async def test_a_call_stored_before_a_restart_is_restored_for_its_next_event(config):
    async with running_daemon(config) as app:
        await post_events(app, [ev("ring", "r-1", NOW - timedelta(minutes=10), **{"from": CALLER}, agent="101"),
                         ev("answer", "r-1", NOW - timedelta(minutes=9), agent="101")])
    async with running_daemon(config) as app:
        assert call_id_for("office", "r-1") in app.daemon.stored_calls
        reads = count_reads(app.daemon)
        await post_events(app, [ev("end", "r-1", NOW)])
        assert reads == [call_id_for("office", "r-1")]
        call = await get_call(app, "r-1")
        assert (call["state"], call["outcome"], call["talk_seconds"], call["remote_number"]) == (
            "ended", "answered", 540.0, CALLER)


async def test_an_evicted_call_is_restored_for_a_late_event(config):
    start = NOW - timedelta(hours=3)
    async with running_daemon(config) as app:
        await post_events(app, [ev("ring", "e-1", start, **{"from": CALLER}, agent="101"),
                         ev("answer", "e-1", start + timedelta(seconds=5), agent="101"),
                         ev("end", "e-1", start + timedelta(seconds=65), id="end-1")])
        call_id = call_id_for("office", "e-1")
        await app.daemon.housekeep()
        assert not app.daemon.switchboard.knows_call(call_id)
        assert call_id in app.daemon.stored_calls
        reads = count_reads(app.daemon)
        # the PBX repeats the end of the call under another id; alone, it would fold to a call
        # without caller, agent or talk time
        await post_events(app, [ev("end", "e-1", start + timedelta(seconds=95), id="end-2")])
        assert reads == [call_id]
        call = await get_call(app, "e-1")
        assert (call["outcome"], call["talk_seconds"], call["remote_number"], call["agent"]) == (
            "answered", 60.0, CALLER, "alice")


# -- with a backplane (several instances) -------------------------------------------------------------


def kill_pubsub_connections(redis_url: str) -> None:
    """Cut every subscriber connection of the Redis server: messages published until the
    subscribers reconnect are lost, as in a network failure."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.client_kill_filter(_type="pubsub")
    finally:
        client.close()


async def test_with_a_backplane_new_calls_skip_the_read_only_while_no_sync_message_can_be_missed(
        tmp_path, postgres_schema_url, redis_url, redis_prefix):
    config = make_config(tmp_path, db_url=postgres_schema_url)
    config["hub"] = {"backplane": redis_url}
    async with running_daemon(config) as app:
        daemon, backplane = app.daemon, app.daemon.hub.backplane

        await eventually(lambda: stored_calls_loaded(daemon))
        reads = count_reads(daemon)
        await post_events(app, [ev("ring", "b-1", NOW - timedelta(seconds=30), **{"from": CALLER}, agent="101")])
        assert reads == []

        # Redis drops the subscriber: other instances' commits of that time never reach this one
        before = backplane.continuity(daemon.SYNC_CHANNEL)
        kill_pubsub_connections(redis_url)

        async def connection_lost():
            return backplane.continuity(daemon.SYNC_CHANNEL) != before

        await eventually(connection_lost)
        await post_events(app, [ev("ring", "b-2", NOW - timedelta(seconds=20), **{"from": CALLER}, agent="102")])
        assert reads == [call_id_for("office", "b-2")]  # the index is not trusted across the gap

        await eventually(lambda: stored_calls_loaded(daemon), within=20)  # subscribed again, then reloaded (loads are 5 s apart)
        assert call_id_for("office", "b-1") in daemon.switchboard.calls
        await post_events(app, [ev("ring", "b-3", NOW - timedelta(seconds=10), **{"from": CALLER}, agent="103")])
        assert reads == [call_id_for("office", "b-2")]


async def test_a_call_another_instance_committed_is_taken_from_its_sync_message_without_a_read(
        tmp_path, postgres_schema_url, redis_url, redis_prefix):
    config = make_config(tmp_path, db_url=postgres_schema_url)
    config["hub"] = {"backplane": redis_url}
    async with running_daemon(config) as a, running_daemon(config) as b:
        await eventually(lambda: stored_calls_loaded(b.daemon))
        reads = count_reads(b.daemon)
        await post_events(a, [ev("ring", "s-1", NOW - timedelta(seconds=30), **{"from": CALLER}, agent="101"),
                       ev("answer", "s-1", NOW - timedelta(seconds=25), agent="101")])
        call_id = call_id_for("office", "s-1")

        async def b_sees_talking():
            call = b.daemon.switchboard.calls.get(call_id)
            return call is not None and call.state.value == "talking"

        await eventually(b_sees_talking)
        assert reads == []
        # B takes the call's next event itself: it folds with what A committed
        await post_events(b, [ev("end", "s-1", NOW - timedelta(seconds=5))])
        assert reads == []
        call = await get_call(b, "s-1")
        assert (call["state"], call["outcome"], call["talk_seconds"], call["agent"]) == (
            "ended", "answered", 20.0, "alice")


# -- the index on its own ----------------------------------------------------------------------------


def event(pbx_call_id: str, at) -> CallEvent:
    return CallEvent(connector="office", pbx_call_id=pbx_call_id, kind=EventKind.RING, key=f"k-{at}", at=at)


def test_an_index_never_loaded_says_the_store_may_hold_anything():
    index = StoredCalls()
    assert index.may_hold("c-1", [event("1", NOW)])
    index.forgotten([Call(id="c-2", connector="office", pbx_call_id="2", updated_at=NOW)])
    assert index.prune(NOW + timedelta(days=3)) == 0 and index.may_hold("c-9", [event("9", NOW)])


def test_may_hold_is_false_only_for_unknown_calls_with_every_event_after_the_horizon():
    index = StoredCalls(window=timedelta(hours=24))
    index.load(NOW - timedelta(hours=24), {"c-1": NOW - timedelta(hours=1)})
    assert index.may_hold("c-1", [event("1", NOW)])
    assert not index.may_hold("c-2", [event("2", NOW), event("2", NOW - timedelta(hours=23))])
    assert index.may_hold("c-2", [event("2", NOW), event("2", NOW - timedelta(hours=25))])
    # an event without a PBX time counts from its receipt
    received = CallEvent(connector="office", pbx_call_id="3", kind=EventKind.RING, key="k", received_at=NOW)
    assert not index.may_hold("c-3", [received])


@pytest.mark.parametrize("hours_ago, kept", [(1, True), (23, True), (25, False)])
def test_forgotten_calls_are_kept_while_written_after_the_horizon(hours_ago, kept):
    index = StoredCalls(window=timedelta(hours=24))
    index.load(NOW - timedelta(hours=24), {})
    index.forgotten([Call(id="c-1", connector="office", pbx_call_id="1", updated_at=NOW - timedelta(hours=hours_ago))])
    assert ("c-1" in index) is kept
    assert index.may_hold("c-1", [event("1", NOW)]) is True or not kept


def test_prune_moves_the_horizon_and_drops_what_was_written_before_it():
    index = StoredCalls(window=timedelta(hours=24))
    index.load(NOW - timedelta(hours=24), {"old": NOW - timedelta(hours=20), "new": NOW - timedelta(hours=2)})
    assert index.prune(NOW + timedelta(hours=6)) == 1
    assert index.horizon == NOW - timedelta(hours=18)
    assert "old" not in index and "new" in index
    # an unknown call with an event from before the new horizon may be one of the dropped ones
    assert index.may_hold("old", [event("x", NOW - timedelta(hours=19))])
    assert not index.may_hold("other", [event("y", NOW - timedelta(hours=17))])
    assert index.prune(NOW) == 0 and index.horizon == NOW - timedelta(hours=18)


async def test_the_index_loader_waits_between_attempts_and_warns_once_while_the_store_fails(autojump_clock, caplog):
    """A failing database is not hammered: loads are ``spacing`` apart, one warning per failure."""
    import types

    import trio

    from ctid.errors import StoreError
    from ctid.sync import InstanceSync

    attempts: list[float] = []
    failures = 3

    async def call_ids_updated_since(horizon):
        attempts.append(trio.current_time())
        if len(attempts) <= failures:
            raise StoreError("database is down")
        return {"c-1": NOW}

    sync = InstanceSync(instance_id="i-1", switchboard=None, stored_calls=StoredCalls(), lease_changed=lambda: None,
                        store=types.SimpleNamespace(call_ids_updated_since=call_ids_updated_since))
    sync.backplane = types.SimpleNamespace(kind="redis", continuity=lambda channel: 7)
    with caplog.at_level("DEBUG", logger="ctid"):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sync.keep_stored_calls, 0.25, 5.0)
            await trio.sleep(60)
            nursery.cancel_scope.cancel()
    start = attempts[0]
    assert [round(t - start, 2) for t in attempts] == [0.0, 5.0, 10.0, 15.0]  # then loaded: no more
    assert sync.stored_token == 7 and "c-1" in sync.stored_calls and sync.stored_calls.trusted
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "stored-calls index" in r.message]
    assert len(warnings) == 1
