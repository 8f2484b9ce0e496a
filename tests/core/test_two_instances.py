"""Two ctid instances sharing one PostgreSQL and one Redis: any instance takes any webhook and any
panel connection; call events and presence cross over."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta

import trio

from ctid.builtins.generic import sign
from ctid.hub.client import open_hub
from ctid.testing.daemon import eventually, running_daemon

from .conftest import API_KEY, PASSWORDS, SECRET, make_config, post_events, stored_calls_loaded

ADMIN = {"Authorization": f"Bearer {API_KEY}"}
START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


async def test_call_on_a_reaches_panel_on_b_and_presence_on_b_reaches_a(tmp_path, postgres_schema_url,
                                                                        redis_url, redis_prefix):
    config = make_config(tmp_path, db_url=postgres_schema_url)
    config["hub"] = {"backplane": redis_url}
    async with running_daemon(config) as a, running_daemon(config) as b:
        token = await b.token("alice", PASSWORDS["alice"])
        # the panel is connected to B while the PBX posts to A (cross-instance negotiate: tests/hub)
        async with open_hub(f"{b.url}/hub", token) as hub:
            body = json.dumps([{"event": "ring", "call_id": "x-1", "from": "+79161234567", "agent": "101",
                                "timestamp": START.isoformat()}]).encode()
            response = await a.client.post("/hooks/office", content=body,
                                           headers={"X-Ctid-Signature": sign(SECRET, body)})
            assert response.status_code == 200
            with trio.fail_after(5):
                async for target, args in hub.messages():
                    if target == "callUpdated" and args[0]["pbx_call_id"] == "x-1":
                        assert args[0]["state"] == "ringing"
                        break
            async def b_knows_the_call():
                return (await hub.invoke("Snapshot"))["calls"]

            await eventually(b_knows_the_call)
            await hub.invoke("SetStatus", "available")
        async def a_sees_alice_available():
            agents = (await a.client.get("/api/agents", headers=ADMIN)).json()["items"]
            return {x["id"]: x["status"] for x in agents}["alice"] == "available"

        await eventually(a_sees_alice_available)
        # the call answered on B's side of the world is one call for both
        body = json.dumps([{"event": "answer", "call_id": "x-1", "agent": "101",
                            "timestamp": (START + timedelta(seconds=4)).isoformat()}]).encode()
        assert (await b.client.post("/hooks/office", content=body,
                                    headers={"X-Ctid-Signature": sign(SECRET, body)})).status_code == 200
        async def a_sees_talking():
            return [c.state.value for c in a.daemon.switchboard.calls.values()] == ["talking"]

        await eventually(a_sees_talking)
        calls = (await a.client.get("/api/calls", headers=ADMIN)).json()["items"]
        assert [(c["state"], c["agent"]) for c in calls] == [("talking", "alice")]


async def test_a_call_split_across_instances_is_stored_whole_whatever_commit_lands_last(
        tmp_path, postgres_schema_url, redis_url, redis_prefix):
    """The PBX's pushes of one call reach A and B within the sync delay: each folds a part of the call.
    B commits last, with only its part (ring + end: a missed call). Once the sync messages arrive,
    the stored row, the callback task and the CRM log are those of the whole call (answered)."""
    from ctid.model import call_id_for

    config = make_config(tmp_path, db_url=postgres_schema_url)
    config["hub"] = {"backplane": redis_url}
    async with running_daemon(config) as a, running_daemon(config) as b:
        for instance in (a, b):
            await eventually(functools.partial(stored_calls_loaded, instance.daemon))
        # sync messages are held up, as a slow link would hold them
        arrived = trio.Event()
        for instance in (a, b):
            def late(sync_in):
                async def late_sync_in(message):
                    await arrived.wait()
                    await sync_in(message)
                return late_sync_in

            instance.daemon.sync.sync_in = late(instance.daemon.sync.sync_in)

        caller = "+79161234567"
        call_id = call_id_for("office", "split-1")
        await post_events(a, [{"event": "answer", "call_id": "split-1", "agent": "101",
                        "timestamp": (START + timedelta(seconds=4)).isoformat()}])
        await post_events(b, [{"event": "ring", "call_id": "split-1", "from": caller, "agent": "101",
                        "timestamp": START.isoformat()},
                       {"event": "end", "call_id": "split-1", "timestamp": (START + timedelta(seconds=30)).isoformat()}])
        row = await b.daemon.store.get_call(call_id)
        assert (row["state"], row["outcome"]) == ("ended", "missed")  # B's half, committed last
        assert await b.daemon.store.open_task_for_number(caller) is not None
        arrived.set()

        async def stored_whole():
            row = await a.daemon.store.get_call(call_id)
            return row if (row["outcome"], row["talk_seconds"]) == ("answered", 26.0) else None

        row = await eventually(stored_whole)
        assert (row["state"], row["agent"], row["remote_number"]) == ("ended", "alice", caller)
        for instance in (a, b):
            call = instance.daemon.switchboard.calls[call_id]
            assert call.to_json() == row  # every instance and the row agree
        assert await a.daemon.store.open_task_for_number(caller) is None
        # the CRM log of the whole call is queued (once: both instances give it the same dedupe key)
        from sqlalchemy import select

        from ctid.store.schema import outbox

        keys = await a.daemon.store._read(lambda conn: conn.execute(
            select(outbox.c.dedupe_key).where(outbox.c.ref == call_id, outbox.c.kind == "log_call")).scalars().all())
        assert sorted(keys) == [f"log:{call_id}:answered:alice:26.0:4.0", f"log:{call_id}:missed:alice:None:30.0"]


async def test_an_instance_writes_nothing_for_a_call_only_another_instance_took(
        tmp_path, postgres_schema_url, redis_url, redis_prefix):
    config = make_config(tmp_path, db_url=postgres_schema_url)
    config["hub"] = {"backplane": redis_url}
    async with running_daemon(config) as a, running_daemon(config) as b:
        queued = []
        add = b.daemon.store.add_events_nowait

        def spy(events, calls=(), **rows):
            queued.append([call.id for call in calls])
            return add(events, calls, **rows)

        b.daemon.store.add_events_nowait = spy
        for events in ([{"event": "ring", "call_id": "only-a", "from": "+79161234567", "agent": "101",
                         "timestamp": START.isoformat()}],
                       [{"event": "end", "call_id": "only-a", "timestamp": (START + timedelta(seconds=9)).isoformat()}]):
            await post_events(a, events)

        async def b_sees_it_ended():
            return [c.state.value for c in b.daemon.switchboard.calls.values()] == ["ended"]

        await eventually(b_sees_it_ended)
        assert queued == []
