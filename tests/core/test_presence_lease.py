"""The desktop launcher's presence lease and status precedence in the core (docs/call-model.md,
"Presence and the launcher's lease"): the switchboard rules, the daemon's expiry timer (Trio
MockClock), persistence across a restart, sync between instances, and the REST routes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import groupby

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from ctid.auth import Principal
from ctid.config.loader import load_config_dict
from ctid.config.models import Role
from ctid.daemon import Daemon
from ctid.errors import RequestError
from ctid.model import Agent, Presence, PresenceSource
from ctid.plugins import get_plugin_manager
from ctid.switchboard import Switchboard, launcher_may_set
from ctid.testing.daemon import eventually, running_daemon

from .conftest import AGENT_KEY, API_KEY, PASSWORDS, make_config

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
ALICE = Principal(subject="alice", role=Role.AGENT, agent="alice")
ADMIN = {"Authorization": f"Bearer {API_KEY}"}


# --- switchboard rules ------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "source", "may"), [
    (status, source, not (source is PresenceSource.USER and status in (Presence.AWAY, Presence.DND)))
    for status in Presence for source in PresenceSource
])
def test_the_launcher_never_overrides_an_away_or_dnd_the_person_chose(status, source, may):
    agent = Agent(id="a", name="A", status=status, status_source=source)
    assert launcher_may_set(agent) is may


class _Agents:
    def agents(self):
        return [Agent(id="alice", name="Alice"), Agent(id="bob", name="Bob")]


def _board() -> Switchboard:
    return Switchboard(_Agents())


def test_a_lapsed_lease_turns_available_into_away_and_leaves_other_statuses():
    sb = _board()
    sb.set_status("alice", "available", T0, "launcher")
    sb.set_status("bob", "dnd", T0, "user")
    assert not sb.set_lease("alice", T0 + timedelta(seconds=30)).agents == []  # a lease starting is news
    assert sb.set_lease("alice", T0 + timedelta(seconds=60)).agents == []  # a renewal is not
    sb.set_lease("bob", T0 + timedelta(seconds=45))
    assert sb.next_lease_expiry() == T0 + timedelta(seconds=45)
    assert sb.expire_leases(T0 + timedelta(seconds=44)).agents == []
    [(bob, previous)] = sb.expire_leases(T0 + timedelta(seconds=45)).agents
    assert (bob.id, bob.status, previous, bob.lease_until) == ("bob", Presence.DND, "dnd", None)
    [(alice, previous)] = sb.expire_leases(T0 + timedelta(seconds=61)).agents
    assert (alice.status, alice.status_source, alice.status_since, previous) == (
        Presence.AWAY, PresenceSource.LEASE, T0 + timedelta(seconds=61), "available")
    assert sb.next_lease_expiry() is None
    assert alice.to_json()["status_source"] == "lease" and alice.to_json()["lease_until"] is None


@given(hst.lists(hst.tuples(hst.sampled_from(["set", "lease", "end", "expire"]), hst.sampled_from(list(Presence)),
                            hst.sampled_from(["user", "launcher"]), hst.integers(0, 120)), max_size=30))
def test_an_agent_whose_lease_lapsed_is_never_left_available(steps):
    sb = _board()
    now = T0
    for op, status, source, seconds in steps:
        now += timedelta(seconds=seconds)
        alice = sb.agents["alice"]
        if op == "set":
            sb.set_status("alice", status, now, source)
        elif op == "lease":
            sb.set_lease("alice", now + timedelta(seconds=seconds))
        elif op == "end":
            sb.set_lease("alice", None)
        else:
            due = alice.lease_until is not None and alice.lease_until <= now
            before = alice.status
            sb.expire_leases(now)
            assert alice.lease_until is None or alice.lease_until > now
            if due:
                assert alice.status is (Presence.AWAY if before is Presence.AVAILABLE else before)
            else:
                assert alice.status is before


# --- the daemon: expiry timer, restart, sync ------------------------------------------------------

@pytest.fixture
def clock():
    # SQL runs in threads: jump only after a second of real idleness (see test_reconcile.py)
    return trio.testing.MockClock(autojump_threshold=1.0)


def _daemon(tmp_path, offset: float = 0) -> Daemon:
    pm = get_plugin_manager()
    cfg = make_config(tmp_path)
    del cfg["connectors"], cfg["crm"]
    daemon = Daemon(load_config_dict(cfg, pm), pm)
    daemon.clock = lambda: T0 + timedelta(seconds=offset + trio.current_time())
    return daemon


async def test_the_lease_lapses_on_the_daemon_timer_unless_renewed(tmp_path, clock):
    daemon = _daemon(tmp_path)
    await daemon.open()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon._lease_loop)
            agent = await daemon.commands.set_status(ALICE, "alice", "available", "launcher", 30)
            assert agent["status_source"] == "launcher" and agent["lease_until"] is not None
            await trio.sleep(25)
            await daemon.commands.renew_lease(ALICE, "alice", 30)
            await trio.sleep(25)
            assert daemon.switchboard.agents["alice"].status is Presence.AVAILABLE  # renewed in time
            await trio.sleep(6)
            alice = daemon.switchboard.agents["alice"]
            assert (alice.status, alice.status_source, alice.lease_until) == (
                Presence.AWAY, PresenceSource.LEASE, None)
            history = await daemon.store.presence_history("alice")
            assert [status for status, _ in history] == [Presence.AVAILABLE, Presence.AWAY]
            # a clean end (the launcher signs out) has no fallback
            await daemon.commands.set_status(ALICE, "alice", "available", "user", 30)
            await daemon.commands.end_lease(ALICE, "alice")
            await trio.sleep(120)
            assert daemon.switchboard.agents["alice"].status is Presence.AVAILABLE
            nursery.cancel_scope.cancel()
    finally:
        await daemon.store.aclose()


async def test_a_lease_survives_a_restart_and_lapses_if_the_launcher_is_gone(tmp_path, clock):
    daemon = _daemon(tmp_path)
    await daemon.open()
    await daemon.commands.set_status(ALICE, "alice", "available", "launcher", 60)
    await daemon.store.aclose()

    again = _daemon(tmp_path, offset=30)  # restarted 30 s later: the lease still holds
    await again.open()
    try:
        alice = again.switchboard.agents["alice"]
        assert (alice.status, alice.status_source, alice.lease_until) == (
            Presence.AVAILABLE, PresenceSource.LAUNCHER, T0 + timedelta(seconds=60))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(again._lease_loop)
            await trio.sleep(29)
            assert alice.status is Presence.AVAILABLE
            await trio.sleep(2)
            assert (alice.status, alice.status_source) == (Presence.AWAY, PresenceSource.LEASE)
            nursery.cancel_scope.cancel()
        assert (await again.store.load_leases())["alice"] == ("lease", None)
    finally:
        await again.store.aclose()


@pytest.mark.parametrize("request_", ["renew", "set_status"])
async def test_a_lease_that_lapsed_while_ctid_was_down_is_not_revived_by_the_launcher(tmp_path, clock, request_):
    """ctid was down longer than the lease; the launcher's first request after the restart reaches
    ctid before the expiry timer's first turn. The lapse still happens first (away, source lease, in
    the history and the store), and the answer tells the launcher so that its policy restores
    available (launcher/tests/test_e2e.py, the restart test: a renewal used to extend the lapsed
    lease, hiding the lapse)."""
    daemon = _daemon(tmp_path)
    await daemon.open()
    await daemon.commands.set_status(ALICE, "alice", "available", "launcher", 5)
    await daemon.store.aclose()

    again = _daemon(tmp_path, offset=7)  # down 7 s, longer than the 5 s lease; no lease timer running
    await again.open()
    try:
        if request_ == "renew":
            answer = await again.commands.renew_lease(ALICE, "alice", 5)
            assert (answer["status"], answer["status_source"]) == ("away", "lease")
            expected = [Presence.AVAILABLE, Presence.AWAY]
        else:  # the launcher sets available (an unlock while ctid was down) after the lapse, not over it
            answer = await again.commands.set_status(ALICE, "alice", "available", "launcher", 5)
            assert (answer["status"], answer["status_source"]) == ("available", "launcher")
            expected = [Presence.AVAILABLE, Presence.AWAY, Presence.AVAILABLE]
        until = datetime.fromisoformat(answer["lease_until"])  # a new lease, from now
        assert until >= T0 + timedelta(seconds=12) and until == again.switchboard.agents["alice"].lease_until
        history = [status for status, _ in await again.store.presence_history("alice")]
        assert [status for status, _ in groupby(history)] == expected  # (a lease start repeats the status)
        assert (await again.store.load_leases())["alice"][1] == until
    finally:
        await again.store.aclose()


async def test_the_person_beats_the_launcher(tmp_path, clock):
    daemon = _daemon(tmp_path)
    await daemon.open()
    try:
        await daemon.commands.set_status(ALICE, "alice", "dnd")  # from the panel
        with pytest.raises(RequestError) as refused:
            await daemon.commands.set_status(ALICE, "alice", "available", "launcher", 30)
        assert (refused.value.error_id, refused.value.status) == ("status_set_by_user", 409)
        assert daemon.switchboard.agents["alice"].status is Presence.DND
        await daemon.commands.set_status(ALICE, "alice", "available")  # chosen again by hand
        await daemon.commands.set_status(ALICE, "alice", "away", "launcher", 30)  # locked
        await daemon.commands.set_status(ALICE, "alice", "available", "launcher", 30)  # unlocked
        assert daemon.switchboard.agents["alice"].status_source is PresenceSource.LAUNCHER
        for bad, error_id in (({"source": "robot"}, "bad_source"), ({"lease_seconds": 4}, "bad_lease"),
                              ({"lease_seconds": True}, "bad_lease"), ({"lease_seconds": "30"}, "bad_lease")):
            with pytest.raises(RequestError) as exc:
                await daemon.commands.set_status(ALICE, "alice", "away", **bad)
            assert exc.value.error_id == error_id
    finally:
        await daemon.store.aclose()


async def test_leases_are_synced_between_instances(tmp_path, clock):
    daemon = _daemon(tmp_path)
    await daemon.open()
    try:
        until = (T0 + timedelta(seconds=40)).isoformat()
        await daemon.sync.sync_in({"presence": [["alice", "available", T0.isoformat(), "launcher", until]]})
        alice = daemon.switchboard.agents["alice"]
        assert (alice.status, alice.status_source, alice.lease_until) == (
            Presence.AVAILABLE, PresenceSource.LAUNCHER, T0 + timedelta(seconds=40))
        await daemon.sync.sync_in({"leases": [["alice", (T0 + timedelta(seconds=90)).isoformat()]]})
        assert alice.lease_until == T0 + timedelta(seconds=90)
        await daemon.sync.sync_in({"presence": [["alice", "dnd", T0.isoformat()]]})  # an older instance's message
        assert (alice.status, alice.status_source) == (Presence.DND, PresenceSource.USER)
    finally:
        await daemon.store.aclose()


# --- REST -------------------------------------------------------------------------------------------

async def _token(app, user: str) -> dict[str, str]:
    response = await app.client.post("/api/auth/token", json={"username": user, "password": PASSWORDS[user]})
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_rest_status_source_lease_and_errors(tmp_path):
    async with running_daemon(make_config(tmp_path)) as app:
        alice = await _token(app, "alice")
        put = await app.client.put("/api/agents/alice/status", headers=alice,
                                   json={"status": "available", "source": "launcher", "lease_seconds": 60})
        assert put.status_code == 200 and put.json()["status_source"] == "launcher"
        assert put.json()["lease_until"] is not None
        renew = await app.client.post("/api/agents/alice/lease", headers=alice, json={"lease_seconds": 90})
        assert renew.status_code == 200 and renew.json()["lease_until"] > put.json()["lease_until"]
        listed = (await app.client.get("/api/agents", headers=ADMIN)).json()["items"]
        assert [a["lease_until"] is not None for a in listed if a["id"] == "alice"] == [True]
        assert (await app.client.post("/api/agents/bob/lease", headers=alice, json={"lease_seconds": 90})
                ).status_code == 403
        for body in ({"lease_seconds": 4}, {"lease_seconds": 3601}, {}, {"lease_seconds": None}):
            bad = await app.client.post("/api/agents/alice/lease", headers=alice, json=body)
            assert (bad.status_code, bad.json()["error"]) == (400, "bad_lease")
        await app.client.put("/api/agents/alice/status", headers=alice, json={"status": "dnd"})
        refused = await app.client.put("/api/agents/alice/status", headers=alice,
                                       json={"status": "away", "source": "launcher"})
        assert (refused.status_code, refused.json()["error"]) == (409, "status_set_by_user")
        ended = await app.client.delete("/api/agents/alice/lease", headers=alice)
        assert ended.status_code == 200 and ended.json()["lease_until"] is None
        doc = (await app.client.get("/openapi.json")).json()
        assert {"post", "delete"} <= set(doc["paths"]["/api/agents/{id}/lease"])
        assert "lease_seconds" in json.dumps(doc["paths"]["/api/agents/{id}/status"]["put"])


async def test_a_one_time_code_and_a_refreshed_token(tmp_path):
    async with running_daemon(make_config(tmp_path)) as app:
        alice = await _token(app, "alice")
        issued = (await app.client.post("/api/auth/handoff", headers=alice)).json()
        assert issued["expires_in"] == 60 and issued["panel_url"].endswith(f"/panel/#code={issued['code']}")
        redeemed = await app.client.post("/api/auth/handoff/redeem", json={"code": issued["code"]})
        assert redeemed.status_code == 200 and redeemed.json()["user"]["agent"] == "alice"
        me = await app.client.get("/api/me", headers={"Authorization": f"Bearer {redeemed.json()['access_token']}"})
        assert me.json()["subject"] == "alice"
        again = await app.client.post("/api/auth/handoff/redeem", json={"code": issued["code"]})
        assert (again.status_code, again.json()["error"]) == (401, "bad_code")
        for forged in (issued["code"][:-2] + "xx", "\udc00", "a.b.\udc00"):  # JSON may carry lone surrogates
            body = json.dumps({"code": forged}).encode()  # ASCII with \u escapes, as any client may send
            refused = await app.client.post("/api/auth/handoff/redeem", content=body,
                                            headers={"content-type": "application/json"})
            # refused as a bad code, or earlier by the core's guard against lone surrogates (bad_encoding)
            assert (refused.status_code, refused.json()["error"]) in ((401, "bad_code"), (400, "bad_encoding")), forged
        fresh = await app.client.post("/api/auth/refresh", headers=alice)
        assert fresh.status_code == 200 and fresh.json()["expires_in"] > 0
        me = await app.client.get("/api/me", headers={"Authorization": f"Bearer {fresh.json()['access_token']}"})
        assert me.json()["agent"] == "alice"
        keyed = await app.client.post("/api/auth/refresh", headers={"Authorization": f"Bearer {AGENT_KEY}"})
        assert (keyed.status_code, keyed.json()["error"]) == (400, "refresh_needs_user")
        key = await app.client.post("/api/auth/handoff", headers={"Authorization": f"Bearer {AGENT_KEY}"})
        assert (key.status_code, key.json()["error"]) == (400, "handoff_needs_user")
        assert (await app.client.post("/api/auth/handoff")).status_code == 401


_JSON = hst.recursive(hst.none() | hst.booleans() | hst.integers() | hst.floats(allow_nan=False) | hst.text(),
                      lambda inner: hst.lists(inner, max_size=3) | hst.dictionaries(hst.text(), inner, max_size=3),
                      max_leaves=8)


async def test_fuzzed_status_lease_and_code_bodies_never_500(tmp_path):
    async with running_daemon(make_config(tmp_path)) as app:
        alice = await _token(app, "alice")
        bodies = hst.fixed_dictionaries({}, optional={"status": _JSON | hst.sampled_from([p.value for p in Presence]),
                                                      "source": _JSON | hst.sampled_from(["user", "launcher"]),
                                                      "lease_seconds": _JSON | hst.integers(0, 4000),
                                                      "code": _JSON})
        seen: list[dict] = []

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(bodies)
        def collect(body):
            seen.append(body)

        collect()
        for body in seen:
            for method, path in (("PUT", "/api/agents/alice/status"), ("POST", "/api/agents/alice/lease"),
                                 ("POST", "/api/auth/handoff/redeem")):
                content = json.dumps(body).encode()  # ASCII: lone surrogates and Infinity go out as any client may send them
                response = await app.client.request(method, path, content=content,
                                                    headers={**alice, "content-type": "application/json"})
                assert response.status_code in (200, 400, 401, 409), (body, response.text)
                assert "error" in response.json() or response.status_code == 200


async def test_a_lease_renewed_on_one_instance_holds_on_the_other(tmp_path, postgres_schema_url, redis_url,
                                                                  redis_prefix):
    """Two instances (PostgreSQL + Redis): the launcher talks to B only; A learns the lease and its
    renewals through the sync channel, so A's timer does not end it early, and both end it once the
    renewals stop."""
    config = make_config(tmp_path, db_url=postgres_schema_url)
    config["hub"] = {"backplane": redis_url}
    async with running_daemon(config) as a, running_daemon(config) as b:
        alice = await _token(b, "alice")
        put = await b.client.put("/api/agents/alice/status", headers=alice,
                                 json={"status": "available", "source": "launcher", "lease_seconds": 5})
        assert put.status_code == 200

        async def on_a() -> dict:
            return a.daemon.switchboard.agents["alice"].to_json()

        async def a_holds_the_lease() -> bool:
            return (await on_a())["lease_until"] == put.json()["lease_until"]

        await eventually(a_holds_the_lease)
        for _ in range(3):  # 6 s of renewals: past the first lease's end
            await trio.sleep(2)  # about the launcher's renewal period (real clocks on two real instances)
            assert (await b.client.post("/api/agents/alice/lease", headers=alice, json={"lease_seconds": 5})
                    ).status_code == 200
            assert (await on_a())["status"] == "available"

        async def both_away() -> bool:
            seen = [(await on_a()), b.daemon.switchboard.agents["alice"].to_json()]
            return all((x["status"], x["status_source"]) == ("away", "lease") for x in seen)

        await eventually(both_away, within=10)
