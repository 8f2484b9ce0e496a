"""The whole path in a running ctid: PBX webhooks -> screen pop from Dynamics -> phonecall and task in Dynamics."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import trio

from ctid.connector import SimulationContext
from ctid.testing.daemon import running_daemon
from ctid_dynamics.payloads import phonecall_id

API_KEY = "dynamics-test-admin-key"
ADMIN = {"Authorization": f"Bearer {API_KEY}"}
START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)


def daemon_config(tmp_path, world, crm: dict) -> dict:
    return {
        "database": {"url": f"sqlite:///{tmp_path / 'ctid.db'}"},
        "data_dir": str(tmp_path / "var"),
        "auth": {"api_keys": [{"name": "admin", "key": API_KEY, "role": "admin"}]},
        "agents": {
            "alice": {"name": "Alice Agent", "extension": "101", "groups": ["sales"], "crm_user": world.alice_user},
            "bob": {"name": "Bob Agent", "extension": "102", "groups": ["sales"], "crm_user": "bob@contoso.example"},
            # the manager that crm.callback_task.group_managers names
            "mary": {"name": "Mary Manager", "extension": "100", "groups": ["sales"], "crm_user": world.manager_user},
        },
        "connectors": {"office": {"plugin": "generic", "secret": "dynamics-test-secret"}},
        "crm": crm,
    }


async def simulate(app, scenario: str, caller: str, start: datetime) -> str:
    connector = app.daemon.connectors["office"]
    context = SimulationContext(caller=caller, agent="101", others=[], line="+74950001122", group="sales", start=start)
    call_ids = set()
    for request in connector.simulate(scenario, context):
        response = await app.client.post(request.path, content=request.body, headers=request.headers)
        assert response.status_code == 200, response.text
        call_ids.add(json.loads(request.body)["call_id"])
    [pbx_call_id] = call_ids
    return pbx_call_id


async def call_by_pbx_id(app, pbx_call_id: str) -> dict:
    items = (await app.client.get("/api/calls", headers=ADMIN)).json()["items"]
    [call] = [c for c in items if c["pbx_call_id"] == pbx_call_id]
    return call


async def until_delivered(app, done) -> None:
    """Wait for the outbox worker until ``done()`` holds."""
    with trio.fail_after(20):
        while True:
            delivered = app.daemon.outbox.next_delivery()
            if done():
                return
            await delivered.wait()


async def test_calls_through_ctid_reach_dynamics(fake, world, crm_config, tmp_path):
    async with running_daemon(daemon_config(tmp_path, world, crm_config())) as app:
        answered = await simulate(app, "answered", "+74951234567", START)
        missed = await simulate(app, "missed", "+74957770000", START + timedelta(minutes=5))
        calls = {name: await call_by_pbx_id(app, pbx) for name, pbx in (("answered", answered), ("missed", missed))}

        await until_delivered(app, lambda: len(fake.records["phonecalls"]) == 2 and fake.records["tasks"])
        known = fake.records["phonecalls"][phonecall_id(calls["answered"]["id"])]
        assert (known["statecode"], known["statuscode"]) == (1, 4)
        assert known["_regardingobjectid_value"] == world.jane
        assert known["_ownerid_value"] == world.alice_user
        shared = fake.records["phonecalls"][phonecall_id(calls["missed"]["id"])]
        assert (shared["statecode"], shared["statuscode"]) == (2, 3)
        assert shared.get("_regardingobjectid_value") is None  # three contacts share the number
        assert all(p["entity"] == "systemuser" for p in shared.get("parties", []))
        [task] = fake.records["tasks"].values()
        assert task["subject"].startswith("Call back +74957770000")
        assert task.get("_regardingobjectid_value") is None

        # The screen pop: the caller's card for the known number, three candidates for the shared one.
        with trio.fail_after(10):
            # the pop is enriched beside the webhook and has no event to wait on: poll the REST API
            while ((await call_by_pbx_id(app, answered))["contact"] or {}).get("status") != "found":  # noqa: ASYNC110
                await trio.sleep(0.01)
        call = await call_by_pbx_id(app, answered)
        [match] = call["contact"]["matches"]
        assert (match["name"], match["company"], match["owner"]) == ("Jane Doe", "Acme Ltd", "bob")
        assert match["url"].endswith(f"etn=contact&id={world.jane}&pagetype=entityrecord")
        shared_pop = (await call_by_pbx_id(app, missed))["contact"]
        assert shared_pop["status"] == "multiple" and len(shared_pop["matches"]) == 3
