"""Two `ctid serve` processes sharing one PostgreSQL and one Redis (real servers): a call received
by A pops on a panel connected to B, presence set on B is seen on A; with Redis down each instance
keeps serving its own clients, and crossing over resumes when Redis returns."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import trio
import yaml

from ctid.builtins.generic import sign
from ctid.hub.client import open_hub
from ctid.testing import services
from ctid.testing.daemon import ServeProcess, eventually, free_port

from .conftest import API_KEY, PASSWORDS, SECRET, make_config

ADMIN = {"Authorization": f"Bearer {API_KEY}"}
START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


def _start_redis(port: int) -> subprocess.Popen:
    binary = shutil.which("redis-server")
    if binary is None:
        services.fail_or_skip("redis-server is not installed")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:  # a real process coming up: poll the socket
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("private redis-server did not start")
            time.sleep(0.05)


@pytest.fixture
def two_instances(tmp_path, postgres_schema_url):
    redis_port = free_port()
    redis = _start_redis(redis_port)
    config = make_config(tmp_path, db_url=postgres_schema_url)
    config["hub"] = {"backplane": f"redis://127.0.0.1:{redis_port}/0"}
    path = tmp_path / "ctid.yaml"
    path.write_text(yaml.safe_dump(config))
    a, b = ServeProcess(path), ServeProcess(path)
    try:
        a.start()
        b.start()
        yield a.url, b.url, redis_port, lambda: redis
    except RuntimeError as exc:
        pytest.fail(str(exc))
    finally:
        a.stop()
        b.stop()
        redis.kill()
        redis.wait()


async def _ring(client: httpx.AsyncClient, url: str, call_id: str, login: str) -> None:
    body = json.dumps([{"event": "ring", "call_id": call_id, "from": "+79161234567", "agent": login,
                        "timestamp": START.isoformat()}]).encode()
    response = await client.post(f"{url}/hooks/office", content=body, headers={"X-Ctid-Signature": sign(SECRET, body)})
    assert response.status_code == 200, response.text


async def _pop(hub, call_id: str) -> dict:
    async for target, args in hub.messages():
        if target == "callUpdated" and args[0]["pbx_call_id"] == call_id:
            return args[0]
    raise AssertionError("hub connection closed")


async def _backplane_ok(client, url) -> bool:
    return (await client.get(f"{url}/readyz")).json()["hub"]["backplane"]["ok"]


async def test_two_processes_share_calls_and_presence_and_survive_a_redis_outage(two_instances):
    url_a, url_b, redis_port, _redis = two_instances
    async with httpx.AsyncClient(timeout=10) as client:
        async def token(url, user):
            response = await client.post(f"{url}/api/auth/token", json={"username": user, "password": PASSWORDS[user]})
            return response.json()["access_token"]

        alice_b = await token(url_b, "alice")
        alice_a = await token(url_a, "alice")  # tokens are valid on both (shared secret in the database)
        async with open_hub(f"{url_b}/hub", alice_a) as hub_b, open_hub(f"{url_a}/hub", alice_b) as hub_a:
            await eventually(lambda: _backplane_ok(client, url_a))
            await eventually(lambda: _backplane_ok(client, url_b))
            await _ring(client, url_a, "two-1", "101")
            with trio.fail_after(5):
                assert (await _pop(hub_b, "two-1"))["state"] == "ringing"

            await hub_b.invoke("SetStatus", "away")

            async def a_sees_away():
                agents = (await client.get(f"{url_a}/api/agents", headers=ADMIN)).json()["items"]
                return {x["id"]: x["status"] for x in agents}["alice"] == "away"

            await eventually(a_sees_away)

            # Redis goes down: A still pops its own panels, B still answers its own
            _redis().kill()
            _redis().wait()
            await eventually(lambda: _not(client, url_a), within=15)
            await _ring(client, url_a, "two-2", "101")
            with trio.fail_after(5):
                assert (await _pop(hub_a, "two-2"))["state"] == "ringing"
            assert (await hub_b.invoke("Snapshot"))["me"]["agent"] == "alice"

            # Redis returns on the same port: crossing over resumes
            _restarted = _start_redis(redis_port)
            try:
                await eventually(lambda: _backplane_ok(client, url_a), within=20)
                await eventually(lambda: _backplane_ok(client, url_b), within=20)
                await _ring(client, url_a, "two-3", "101")
                with trio.fail_after(5):
                    assert (await _pop(hub_b, "two-3"))["state"] == "ringing"
            finally:
                _restarted.kill()
                _restarted.wait()


async def _not(client, url) -> bool:
    return not await _backplane_ok(client, url)
