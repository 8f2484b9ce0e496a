"""Through a real daemon: the fake IP Office's DevLink3 and SMDR streams, simulate-call's native
traffic for every scenario, DevLink3 down with SMDR still flowing, and TAPI control from REST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import trio

from ctid.connector import SimulationContext
from ctid.testing.daemon import eventually, running_daemon
from ctid_avaya.testing.fake_ipo import FakeDevLink3, FakeSmdr
from ctid_avaya.testing.fake_tapi import FakeTapi

ADMIN_KEY = "avaya-e2e-admin-key-0123456"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CALLER = "+79161234567"


def config(tmp_path, devlink3_port: int, **extra) -> dict[str, Any]:
    connector = {
        "plugin": "avaya", "host": "127.0.0.1", "timezone": "Europe/Moscow",
        "devlink3": {"transport": "tcp", "port": devlink3_port, "username": "ctid", "password": "s3cret-pass",
                     "keepalive": 5, "backoff_initial": 0.05, "backoff_max": 0.2, "resync_grace": 0.3},
        "smdr": {"mode": "listen", "listen": "127.0.0.1:0", "allowed_peers": ["127.0.0.1"]},
        "hunt_groups": {"200": "sales"},
        "simulation": {"devlink3_port": 0, "smdr_port": 0},
    }
    connector.update(extra)
    return {
        "database": {"url": f"sqlite:///{tmp_path / 'ctid.db'}"},
        "data_dir": str(tmp_path / "var"),
        "auth": {"api_keys": [{"name": "admin", "key": ADMIN_KEY, "role": "admin"}]},
        "agents": {
            "a1": {"name": "Anna", "extension": "201", "groups": ["sales"]},
            "a2": {"name": "Boris", "extension": "202", "groups": ["sales"]},
            "a3": {"name": "Vera", "extension": "203", "groups": ["sales"]},
        },
        "connectors": {"ipo": connector},
    }


async def _calls(app) -> dict[str, dict[str, Any]]:
    items = (await app.client.get("/api/calls", headers=ADMIN)).json()["items"]
    return {c["pbx_call_id"]: c for c in items}


async def _sim_port(connector) -> None:
    async def ready():
        return "devlink3" in connector.simulation_ports and "smdr" in connector.simulation_ports
    await eventually(ready)
    connector.config.simulation.devlink3_port = connector.simulation_ports["devlink3"]
    connector.config.simulation.smdr_port = connector.simulation_ports["smdr"]


async def test_simulate_call_drives_every_scenario(tmp_path, nursery):
    fake = FakeDevLink3({"ctid": "s3cret-pass"})
    port = await nursery.start(fake.serve)
    async with running_daemon(config(tmp_path, port)) as app:
        connector = app.daemon.connectors["ipo"]
        await _sim_port(connector)
        await fake.wait_subscribed()
        ids = {}
        base = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=70)
        for index, (scenario, others, group) in enumerate([
            ("answered", [], None), ("missed", ["202", "203"], None), ("group", ["202", "203"], "200"),
            ("transfer", ["202"], None), ("hold", [], None), ("outbound_no_answer", [], None),
        ]):
            context = SimulationContext(caller=CALLER, agent="201", others=others, line="+74950000001", group=group)
            # 10 s apart (SMDR starts are whole seconds; tasks walk calls in start order), all within
            # the join tolerance of the moment DevLink3 sees them
            context.start = base + timedelta(seconds=10 * index)
            sent: list[str] = []
            await connector.send_simulation(scenario, context, base_url=app.url, report=sent.append)
            smdr = [line for line in sent if line.startswith("SMDR")]
            ids[scenario] = smdr[0].split(",")[30] + "-" + smdr[0].split(",")[31]

        async def all_ended():
            calls = await _calls(app)
            found = {s: next((c for p, c in calls.items() if p.startswith(i + "-")), None) for s, i in ids.items()}
            if all(c and c["state"] == "ended" and c["outcome"] for c in found.values()):
                return found
            return None

        found = await eventually(all_ended)
        got = {s: (c["outcome"], c["agent"]) for s, c in found.items()}
        assert got == {
            "answered": ("answered", "a1"),
            "missed": ("missed", None),
            "group": ("answered", "a1"),
            "transfer": ("answered", "a2"),
            "hold": ("answered", "a1"),
            "outbound_no_answer": ("no_answer", "a1"),
        }
        answered = found["answered"]
        assert (answered["wait_seconds"], answered["talk_seconds"]) == (7, 60)
        assert answered["remote_number"] == CALLER and answered["line_number"] == "+74950000001"
        assert found["transfer"]["transferred_from"] == "a1" and found["transfer"]["agents"] == ["a1", "a2"]
        assert found["transfer"]["talk_seconds"] == 70
        # DevLink3 saw a hold of a few ms; SMDR's hold total (15 s) and talk time stand
        assert found["hold"]["hold_seconds"] == 15 and found["hold"]["talk_seconds"] == 60
        assert found["answered"]["hold_seconds"] == 0
        assert found["group"]["group"] == "sales"
        assert found["outbound_no_answer"]["direction"] == "outbound"
        tasks = (await app.client.get("/api/tasks", headers=ADMIN)).json()["items"]
        assert [(t["number"], t["missed_count"], t["status"]) for t in tasks] == [(CALLER, 1, "done")]
        assert tasks[0]["missed_calls"] == [found["missed"]["id"]]


async def test_devlink3_pop_then_smdr_corrects_and_a_down_link_leaves_smdr_only_calls(tmp_path, nursery):
    from ctid_avaya import simulate as s

    fake = FakeDevLink3({"ctid": "s3cret-pass"})
    port = await nursery.start(fake.serve)
    async with running_daemon(config(tmp_path, port)) as app:
        connector = app.daemon.connectors["ipo"]
        await fake.wait_subscribed()
        node = s.node_of("127.0.0.1")
        a_end, t1, t2 = s.end_id(node, 5000), s.end_id(node, 5002), s.end_id(node, 5003)
        trunk = s.party(a_end, inbound=True, state=1, cls=5, did="74950000001", cli="79161234567", public=1)
        # hunt group 200 rings 201 and 202; the second extension answers: the pop is on Boris's panel
        await fake.send(s.detail(node, 7, trunk, None, [s.target(t1, "201"), s.target(t2, "202")], group="200"))

        async def ringing():
            calls = await _calls(app)
            call = next(iter(calls.values()), None)
            return call if call and call["state"] == "ringing" and len(call["ringing_agents"]) == 2 else None

        rung = await ringing_call(app, ringing)
        assert rung["ringing_agents"] == ["a1", "a2"] and rung["remote_number"] == CALLER  # both panels pop
        answered = s.party(t2, inbound=False, state=2, cls=10, identity="202")
        await fake.send(s.detail(node, 7, trunk.replace(",1,1,", ",1,2,", 1), answered, [], group="200"))

        async def talking():
            calls = await _calls(app)
            call = next(iter(calls.values()), None)
            return call if call and call["state"] == "talking" else None

        call = await eventually(talking)
        assert call["agent"] == "a2" and call["group"] == "sales"
        await fake.send(s.call_lost(node, t2), s.call_lost(node, a_end))

        async def ended():
            calls = await _calls(app)
            return calls[call["pbx_call_id"]] if calls[call["pbx_call_id"]]["state"] == "ended" else None

        await eventually(ended)
        # SMDR for it arrives later and corrects the durations (joined by the caller leg)
        start = connector.tracker.now().astimezone(connector.config.zone).replace(tzinfo=None, microsecond=0)
        smdr = FakeSmdr()
        smdr.add([s.smdr_line(start, connected=50, ring=9, caller="79161234567", direction="I", called="200",
                              dialled="74950000001", internal=False, call_id=smdr.next_call_id(),
                              continuation=False, p1=("E202", "Boris"), p2=("T9001", "Line 1.1"),
                              caller_ip="127.0.0.1", caller_leg=5000, called_ip="127.0.0.1", called_leg=5003)])

        # DevLink3 goes down; calls go on and only SMDR sees them (one missed, cut into tiny writes)
        await fake.drop()
        smdr.add([s.smdr_line(start + timedelta(minutes=3), connected=0, ring=30, caller="79169990000",
                              direction="I", called="201", dialled="74950000001", internal=False,
                              call_id=smdr.next_call_id(), continuation=False, p1=("E201", "Anna"),
                              p2=("T9001", "Line 1.2"), caller_ip="127.0.0.1", caller_leg=6000)])
        await smdr.send_to("127.0.0.1", connector.smdr.port, cuts=range(1, 400, 7))

        async def corrected():
            calls = await _calls(app)
            first = calls.get(call["pbx_call_id"])
            missed = [c for c in calls.values() if c["remote_number"] == "+79169990000"]
            if first and first["talk_seconds"] == 50 and missed:
                return first, missed[0]
            return None

        first, missed = await eventually(corrected)
        assert (first["wait_seconds"], first["agent"], first["outcome"]) == (9, "a2", "answered")
        assert (missed["outcome"], missed["agent"], missed["wait_seconds"]) == ("missed", "a1", 30)
        tasks = (await app.client.get("/api/tasks", headers=ADMIN)).json()["items"]
        assert [(t["number"], t["owner"]) for t in tasks] == [("+79169990000", "a1")]
        health = await connector.health()
        assert "smdr" in health.checks and health.checks["smdr"].startswith("last record")


async def test_tapi_controls_from_rest_reach_the_fake_boundary(tmp_path, nursery, monkeypatch):
    from ctid_avaya.control import tapi

    fake_tapi = FakeTapi({"201": "Anna", "202": "Boris"})
    original = tapi.TapiBackend.__init__

    def with_fake(self, config, instance, **kw):
        original(self, config, instance, boundary=fake_tapi)

    monkeypatch.setattr(tapi.TapiBackend, "__init__", with_fake)
    fake = FakeDevLink3({"ctid": "s3cret-pass"})
    port = await nursery.start(fake.serve)
    cfg = config(tmp_path, port, control=[{"backend": "tapi", "mode": "local"}])
    async with running_daemon(cfg) as app:
        connector = app.daemon.connectors["ipo"]
        assert connector.capabilities == {"dial", "hold", "transfer", "hangup"}
        await eventually(lambda: _true(connector.routes["dial"].engine and connector.routes["dial"].engine.started.is_set()))
        response = await app.client.post("/api/calls", json={"number": "+79161234567", "agent": "a1"}, headers=ADMIN)
        assert response.status_code == 200, response.text
        assert fake_tapi.log[-1] == ("lineMakeCall", "201", "+79161234567")
        # a live call on 201 seen by DevLink3; hold / unhold / transfer / hang up from REST
        from ctid_avaya import simulate as s
        await fake.wait_subscribed()
        node = s.node_of("127.0.0.1")
        a_end, b_end = s.end_id(node, 7000), s.end_id(node, 7002)
        trunk = s.party(a_end, inbound=True, state=2, cls=5, cli="79160001122", public=1)
        await fake.send(s.detail(node, 9, trunk, s.party(b_end, inbound=False, state=2, cls=10, identity="201")))
        handle = fake_tapi.offer("201", "79160001122")

        async def live():
            calls = await _calls(app)
            return next((c for c in calls.values() if c["state"] == "talking"), None)

        call = await eventually(live)
        from avaya_kit import knows

        engine = connector.routes["dial"].engine
        await knows(engine, "201", handle)
        for command, body in [("hold", None), ("unhold", None)]:
            response = await app.client.post(f"/api/calls/{call['id']}/{command}", json=body or {}, headers=ADMIN)
            assert response.status_code == 200, (command, response.text)
        assert [entry[0] for entry in fake_tapi.log[-2:]] == ["lineHold", "lineUnhold"]
        # a PBX refusal is a clear API error
        fake_tapi.refuse_next = 0x80000048
        response = await app.client.post(f"/api/calls/{call['id']}/hold", json={}, headers=ADMIN)
        assert response.status_code == 409 and response.json()["error"] == "pbx_refused"
        assert "LINEERR_OPERATIONFAILED" in response.json()["message"]
        response = await app.client.post(f"/api/calls/{call['id']}/transfer", json={"to": "a2"}, headers=ADMIN)
        assert response.status_code == 200, response.text
        assert fake_tapi.log[-1] == ("lineBlindTransfer", handle, "202")
        handle2 = fake_tapi.offer("201", "79160001122")
        await knows(engine, "201", handle2)
        response = await app.client.post(f"/api/calls/{call['id']}/hangup", json={}, headers=ADMIN)
        assert response.status_code == 200, response.text
        assert fake_tapi.log[-1] == ("lineDrop", handle2)


async def ringing_call(app, check):
    return await eventually(check)


async def _true(value):
    return value


async def test_aes_backends_from_rest_click_to_call_transfer_hold(tmp_path, nursery):
    from avaya_kit import start_tws
    from ctid_avaya import simulate as s
    from ctid_avaya.testing.fake_dmcc import FakeDmcc
    from ctid_avaya.testing.fake_tws import FakeTelephonyService

    tws = FakeTelephonyService("ctid@CM1", "pw-1")
    url = await start_tws(nursery, tws)
    dmcc = FakeDmcc("ctid", "pw-2", calls={"201": [["77", "connected", "79160001122"]]})
    dmcc_port = await nursery.start(dmcc.serve)
    fake = FakeDevLink3({"ctid": "s3cret-pass"})
    port = await nursery.start(fake.serve)
    cfg = config(tmp_path, port, control=[
        {"backend": "aes-tws", "wsdl_url": url + "?wsdl", "username": "ctid@CM1", "password": "pw-1"},
        {"backend": "aes-dmcc", "host": "127.0.0.1", "port": dmcc_port, "tls": False, "username": "ctid",
         "password": "pw-2", "switch_name": "CM1"},
    ])
    async with running_daemon(cfg) as app:
        connector = app.daemon.connectors["ipo"]
        assert {c.value: b.name for c, b in connector.routes.items()} == {
            "dial": "aes-tws", "transfer": "aes-tws", "hangup": "aes-tws", "hold": "aes-dmcc"}
        response = await app.client.post("/api/calls", json={"number": "+79161234567", "agent": "a1"}, headers=ADMIN)
        assert response.status_code == 200, response.text
        assert tws.calls("makeCall") == [{"originatingExtension": "201", "originatingNumber": "+79161234567"}]
        await fake.wait_subscribed()
        node = s.node_of("127.0.0.1")
        a_end, b_end = s.end_id(node, 8000), s.end_id(node, 8002)
        trunk = s.party(a_end, inbound=True, state=2, cls=5, cli="79160001122", public=1)
        await fake.send(s.detail(node, 11, trunk, s.party(b_end, inbound=False, state=2, cls=10, identity="201")))

        async def live():
            calls = await _calls(app)
            return next((c for c in calls.values() if c["state"] == "talking"), None)

        call = await eventually(live)
        snapshot = (await app.client.get(f"/api/calls/{call['id']}", headers=ADMIN)).json()
        assert snapshot["capabilities"] == ["dial", "hangup", "hold", "transfer"]

        async def dmcc_ready():
            return connector.routes["hold"]._ready.is_set()

        await eventually(dmcc_ready)
        for command in ("hold", "unhold"):
            response = await app.client.post(f"/api/calls/{call['id']}/{command}", json={}, headers=ADMIN)
            assert response.status_code == 200, (command, response.text)
        assert dmcc.requests[-4:] == ["SnapshotDevice", "HoldCall", "SnapshotDevice", "RetrieveCall"]
        response = await app.client.post(f"/api/calls/{call['id']}/transfer", json={"to": "a2"}, headers=ADMIN)
        assert response.status_code == 200, response.text
        assert tws.calls("transferCall") == [{"deviceExtension": "201", "destinationNumber": "202"}]
        tws.refuse["dropCall"] = "No active call at 201"
        response = await app.client.post(f"/api/calls/{call['id']}/hangup", json={}, headers=ADMIN)
        assert response.status_code == 409 and response.json()["error"] == "pbx_refused"
        assert "No active call at 201" in response.json()["message"]
        health = await connector.health()
        assert health.checks["control:aes-tws"].startswith("session") and "started" in health.checks["control:aes-dmcc"]


async def test_without_a_backend_the_connector_monitors_and_logs_only(tmp_path, nursery):
    fake = FakeDevLink3({"ctid": "s3cret-pass"})
    port = await nursery.start(fake.serve)
    async with running_daemon(config(tmp_path, port)) as app:
        connector = app.daemon.connectors["ipo"]
        assert connector.capabilities == frozenset()
        response = await app.client.post("/api/calls", json={"number": "+79161234567", "agent": "a1"}, headers=ADMIN)
        assert response.status_code == 409 and response.json()["error"] == "capability_missing:dial"
        await fake.wait_subscribed()
        health = await connector.health()
        assert health.checks["control"].startswith("none configured")
        assert health.checks["devlink3"].startswith("authenticated, receiving")
        assert health.ok and health.checks["smdr"].startswith("no record yet")  # the window starts at start-up


async def test_bad_smdr_bytes_are_counted_on_the_daemons_metrics(tmp_path, nursery):
    """The wire-error counters reach ctid's own /metrics (Services.metrics_registry), per instance."""
    fake = FakeDevLink3({"ctid": "s3cret-pass"})
    port = await nursery.start(fake.serve)
    async with running_daemon(config(tmp_path, port)) as app:
        connector = app.daemon.connectors["ipo"]
        await eventually(lambda: _true(connector.smdr.port))
        stream = await trio.open_tcp_stream("127.0.0.1", connector.smdr.port)
        await stream.send_all(b"not,an,smdr,record\r\n")
        await stream.aclose()
        await eventually(lambda: _true(connector.stats.error_count("smdr")))
        text = (await app.client.get("/metrics")).text
        assert 'ctid_avaya_wire_errors_total{connector="ipo",reason="bad_line",stream="smdr"} 1.0' in text
