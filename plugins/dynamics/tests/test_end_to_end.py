"""The adapter inside ctid's own machinery: the contact cache, the outbox worker on a real store, ``ctid check``."""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import trio

from ctid.contacts import ContactService
from ctid.model import Outcome, TaskStatus
from ctid.outbox import LOG_CALL, RECORDING, TASK, Backoff, OutboxWorker
from ctid.store import Store
from ctid_dynamics.payloads import phonecall_id
from ctid_dynamics.testing.factories import T0, make_call, make_task


async def test_ringing_known_caller_costs_no_round_trip_once_cached(adapter, fake):
    contacts = ContactService(adapter, ttl=300, budget=10)
    [first] = await contacts.lookup("+74951234567")  # warm-up: token, users, the lookup itself
    before = len(fake.seen)
    for _ in range(5):
        [match] = await contacts.lookup("+74951234567")
        assert match.name == "Jane Doe" and match.url == first.url
    assert len(fake.seen) == before
    assert fake.token_requests == 1


async def test_outbox_worker_delivers_every_activity_once_in_order_after_an_outage(adapter, fake, world, tmp_path):
    store = Store(f"sqlite:///{tmp_path}/ctid.db", threads=1)
    await store.open()
    try:
        calls = [make_call(f"o{n}", "+74951234567", start=T0 + timedelta(minutes=n),
                           outcome=Outcome.MISSED if n == 2 else Outcome.ANSWERED) for n in range(5)]
        await store.upsert_calls(calls)
        for call in calls:
            await store.enqueue(LOG_CALL, call.id, {}, f"log:{call.id}:1")
        task = make_task("+74951234567", [calls[2]])
        await store.enqueue(TASK, task.id, task.to_json(), f"task:{task.id}:open:1")
        await store.enqueue(RECORDING, calls[0].id, {"url": "https://ctid.example/rec/o0"}, f"rec:{calls[0].id}")
        task.status = TaskStatus.DONE
        await store.enqueue(TASK, task.id, task.to_json(), f"task:{task.id}:done:1")

        worker = OutboxWorker(store, adapter, world.directory, backoff=Backoff(base=0, cap=0))

        async def drain() -> None:
            with trio.fail_after(30):
                while await worker.run_once() is not None or (await store.outbox_stats())["due"]:
                    pass

        await adapter.lookup("+74951234567")  # warm
        fake.down = True
        for _ in range(3):  # the worker keeps trying the head job while Dynamics is down
            assert await worker.run_once() == 0
        assert fake.records["phonecalls"] == {} and worker.delivered == 0
        fake.down = False
        await drain()
        first = fake.records["phonecalls"][phonecall_id(calls[0].id)]
        assert (first["actualdurationminutes"], first["actualend"]) == (3, "2026-03-02T09:32:13.000Z")
        # The PBX history corrects the first call (it began earlier and lasted 10 minutes): the daemon
        # stores the corrected call and queues a second log job for it. The outcome stays "answered".
        corrected = make_call("o0", "+74951234567", start=T0 - timedelta(seconds=20), talk=600)
        await store.upsert_calls([corrected])
        await store.enqueue(LOG_CALL, calls[0].id, {}, f"log:{calls[0].id}:2")
        await drain()
        stats = await store.outbox_stats()
        assert worker.delivered == 9, stats
        assert (first["statecode"], first["statuscode"]) == (1, 4)
        assert first["actualdurationminutes"] == 10
        assert first["actualstart"] == "2026-03-02T09:29:40.000Z"
        assert first["actualend"] == "2026-03-02T09:39:48.000Z"
        assert "talked: 600 s" in first["description"]

        records = list(fake.records["phonecalls"].values())  # in the order Dynamics created them
        assert [r["activityid"] for r in records] == [phonecall_id(c.id) for c in calls]
        assert [(r["statecode"], r["statuscode"]) for r in records] == [(1, 4), (1, 4), (2, 3), (1, 4), (1, 4)]
        [callback] = fake.records["tasks"].values()
        assert (callback["statecode"], callback["statuscode"]) == (1, 5)
        [note] = fake.records["annotations"].values()
        assert note["_objectid_value"] == phonecall_id(calls[0].id)
    finally:
        await store.aclose()


def _write_config(tmp_path, fake, ca_file, secret: str, url: str | None = None) -> str:
    config = {
        "database": {"url": f"sqlite:///{tmp_path}/ctid.db"},
        "agents": {"alice": {"name": "Alice", "extension": "101"}},
        "crm": {
            "plugin": "dynamics",
            "url": url or fake.url,
            "auth": {"type": "client_credentials", "tenant": fake.tenant, "client_id": fake.client_id,
                     "client_secret": secret, "authority": f"{fake.url}/{fake.tenant}", "instance_discovery": False},
            "ca_bundle": str(ca_file),
        },
    }
    path = tmp_path / f"ctid-{secret}.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return str(path)


async def test_ctid_check_reports_a_wrong_secret_or_url(fake, world, ca_file, tmp_path):
    async def ctid(*args: str) -> trio.Process:
        with trio.fail_after(60):
            return await trio.run_process([sys.executable, "-m", "ctid", *args], capture_stdout=True,
                                          capture_stderr=True, check=False)

    async def check(path: str):
        result = await ctid("check", "--config", path, "--json")
        return result.returncode, json.loads(result.stdout)

    good = _write_config(tmp_path, fake, ca_file, fake.client_secret)
    upgrade = await ctid("db", "upgrade", "--config", good)
    assert upgrade.returncode == 0, upgrade.stderr
    code, report = await check(good)
    crm = next(c for c in report["checks"] if c["name"] == "crm (dynamics)")
    assert code == 0 and crm["ok"], report

    code, report = await check(_write_config(tmp_path, fake, ca_file, "wrong-secret"))
    crm = next(c for c in report["checks"] if c["name"] == "crm (dynamics)")
    assert code == 1 and not crm["ok"]
    assert "invalid_client" in crm["detail"] and "wrong-secret" not in json.dumps(report)

    code, report = await check(_write_config(tmp_path, fake, ca_file, "s3cret", url="https://127.0.0.1:9/org"))
    crm = next(c for c in report["checks"] if c["name"] == "crm (dynamics)")
    assert code == 1 and not crm["ok"] and "AADSTS500011" in crm["detail"]
