"""Two ctid instances sharing one PostgreSQL and one Redis: any instance takes any webhook and any
panel connection; call events and presence cross over."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import trio

from ctid.builtins.generic import sign
from ctid.hub.client import open_hub
from ctid.testing.daemon import eventually, running_daemon

from .conftest import API_KEY, PASSWORDS, SECRET, make_config

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
