"""The connector on its own: config errors, one DevLink3 connection per unit, stream tasks that
fail alone (an exception in a loop is logged, counted and retried), health."""

from __future__ import annotations

import pytest
import trio
from pydantic import ValidationError

from ctid.connector import SimulationContext
from ctid.errors import CapabilityError
from ctid.services import Services
from ctid.testing.daemon import eventually
from ctid.testing.memory import MemoryStorage
from ctid_avaya import simulate as s
from ctid_avaya.config import AvayaConfig
from ctid_avaya.connector import AvayaConnector
from ctid_avaya.testing.fake_ipo import LIMIT, FakeDevLink3


class Directory:
    def agents(self):
        return []

    def get(self, agent_id):
        return None

    def agent_for_login(self, connector, login):
        return {"201": "a1", "4201": "a1"}.get(login)

    def login_for_agent(self, connector, agent_id):
        return {"a1": "4201"}.get(agent_id)

    def agent_for_crm_user(self, crm_user):
        return None


class Sink:
    def __init__(self):
        self.events = []
        self.fail = 0

    async def submit(self, events):
        from ctid.errors import StoreError

        if self.fail:
            self.fail -= 1
            raise StoreError("database is down")
        self.events.extend(events)
        return len(events)


def make(port: int, sink: Sink, **extra) -> AvayaConnector:
    raw = {"plugin": "avaya", "host": "127.0.0.1",
           "devlink3": {"transport": "tcp", "port": port, "username": "ctid", "password": "s3cret-pass",
                        "backoff_initial": 0.05, "backoff_max": 0.2},
           "smdr": {"listen": "127.0.0.1:0"}, **extra}
    return AvayaConnector("ipo", AvayaConfig(**raw), Services(directory=Directory(), events=sink))


def test_config_errors_name_the_key():
    with pytest.raises(ValidationError) as caught:
        AvayaConfig(plugin="avaya", host="x", smdr={"mode": "connect"})
    assert "smdr.port" in str(caught.value)
    with pytest.raises(ValidationError, match="unknown time zone"):
        AvayaConfig(plugin="avaya", host="x", timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="bridge_url"):
        AvayaConfig(plugin="avaya", host="x", control=[{"backend": "tapi", "mode": "bridge"}])
    with pytest.raises(ValidationError, match="HOST:PORT"):
        AvayaConfig(plugin="avaya", host="x", smdr={"listen": "8808"})
    with pytest.raises(ValidationError, match="Delta2"):
        AvayaConfig(plugin="avaya", host="x", devlink3={"username": "u", "password": "p", "flags": "-CD2"})
    with pytest.raises(ValidationError, match="extra"):
        AvayaConfig(plugin="avaya", host="x", devlink3={"username": "u", "password": "p", "pasword": "typo"})
    assert AvayaConfig(plugin="avaya", host="x", devlink3={"username": "u", "password": "p"}
                       ).devlink3.effective_port() == 50796


def test_extensions_map_to_directory_logins_and_back():
    conn = make(1, Sink(), extensions={"201": "a1"})
    assert conn.login_for("201") == "4201" and conn.login_for("202") == "202"
    assert conn.extension_for("4201") == "201" and conn.extension_for("202") == "202"


async def test_one_devlink3_connection_per_unit_and_a_full_unit_refuses_a_fourth(nursery):
    fake = FakeDevLink3({"ctid": "s3cret-pass"})
    port = await nursery.start(fake.serve)
    conn = make(port, Sink())
    await nursery.start(conn.run)
    await fake.wait_subscribed()
    await trio.sleep(0.3)
    assert fake.logins == 1 and len(fake.live()) == 1
    others = [make(port, Sink()) for _ in range(LIMIT)]
    for other in others:
        nursery.start_soon(other.devlink3.run)

    async def refused():
        return any(o.devlink3.last_error and "limits exceeded" in o.devlink3.last_error for o in others)

    await eventually(refused)
    assert len(fake.live()) == LIMIT


async def test_an_exception_in_the_event_path_is_retried_and_nothing_stops(nursery):
    fake = FakeDevLink3({"ctid": "s3cret-pass"})
    port = await nursery.start(fake.serve)
    sink = Sink()
    conn = make(port, sink)
    original = conn.tracker.feed
    calls = {"n": 0}

    def flaky(record):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug in party tracking")
        return original(record)

    conn.tracker.feed = flaky
    await nursery.start(conn.run)
    await fake.wait_subscribed()
    node = s.node_of("127.0.0.1")
    trunk = s.party(s.end_id(node, 1), inbound=True, state=1, cls=5, cli="79161234567", public=1)
    ring = s.detail(node, 1, trunk, s.party(s.end_id(node, 2), inbound=False, state=1, cls=10, identity="201"))
    await fake.send(ring)  # the bug: the session is dropped, logged, counted, and reconnected
    await eventually(lambda: _true(fake.logins == 2 and len(fake.live()) == 1))
    await fake.send(ring)

    async def rang():
        return [e for e in sink.events if e.kind.value == "ring"]

    assert (await eventually(rang))[0].agent_login == "201"
    assert conn.stats.errors[("devlink3", "internal")] == 1
    # the store failing for a moment: events are retried, not lost
    sink.fail = 2
    await fake.send(s.call_lost(node, s.end_id(node, 2)), s.call_lost(node, s.end_id(node, 1)))

    async def ended():
        return [e for e in sink.events if e.kind.value == "end"]

    await eventually(ended, within=10)
    assert conn.lost_events == 0


async def test_a_taken_smdr_port_does_not_stop_devlink3(nursery):
    fake = FakeDevLink3({"ctid": "s3cret-pass"})
    port = await nursery.start(fake.serve)
    blocker = await trio.open_tcp_listeners(0, host="127.0.0.1")
    taken = blocker[0].socket.getsockname()[1]
    conn = make(port, Sink(), smdr={"listen": f"127.0.0.1:{taken}"})
    await nursery.start(conn.run)
    await fake.wait_subscribed()
    assert conn.stats.errors[("supervisor", "smdr")] >= 1
    health = await conn.health()
    assert health.checks["devlink3"].startswith("authenticated") and not health.ok
    await blocker[0].aclose()


def test_simulate_rejects_unknown_scenarios_and_builds_native_traffic():
    conn = make(1, Sink())
    with pytest.raises(CapabilityError):
        conn.simulate("nope", SimulationContext(caller="+79161234567", agent="201"))
    traffic = conn.simulate("transfer", SimulationContext(caller="+79161234567", agent="201", others=["202"]))
    assert [r.method for r in traffic] == ["DEVLINK3"] * 6 + ["SMDR"] * 2
    assert traffic[-1].body.endswith(b"\r\n") and traffic[-2].body.decode().split(",")[10] == "1"


async def _true(value):
    return value


async def test_a_ctid_restart_mid_call_keeps_the_call_id_for_devlink3_and_smdr(nursery):
    from datetime import datetime

    from ctid_avaya.smdr import parse_record

    fake = FakeDevLink3({"ctid": "s3cret-pass"})
    port = await nursery.start(fake.serve)
    storage = MemoryStorage()
    node = s.node_of("127.0.0.1")
    a_end, b_end = s.end_id(node, 4242), s.end_id(node, 4244)
    trunk = s.party(a_end, inbound=True, state=2, cls=5, cli="79161234567", public=1)
    talking = s.detail(node, 5, trunk, s.party(b_end, inbound=False, state=2, cls=10, identity="201"))

    def connector(sink):
        raw = {"plugin": "avaya", "host": "127.0.0.1", "devlink3": {
            "transport": "tcp", "port": port, "username": "ctid", "password": "s3cret-pass"},
            "smdr": {"listen": "127.0.0.1:0"}}
        return AvayaConnector("ipo", AvayaConfig(**raw), Services(directory=Directory(), events=sink,
                                                                   storage_factory=lambda plugin: storage))

    first_sink = Sink()
    with trio.CancelScope() as first_life:
        async with trio.open_nursery() as inner:
            await inner.start(connector(first_sink).run)
            await fake.wait_subscribed()
            await fake.send(talking)
            await eventually(lambda: _true(first_sink.events))
            first_life.cancel()  # ctid stops while the call goes on
    pbx = first_sink.events[0].pbx_call_id
    assert ("legs:ipo", "127.0.0.1-4242") in storage.data

    fake.in_progress = [talking]  # IP Office re-reports the call in progress to the new connection
    sink = Sink()
    conn = connector(sink)
    await nursery.start(conn.run)
    await eventually(lambda: _true(sink.events))
    await fake.send(s.call_lost(node, b_end), s.call_lost(node, a_end))
    await eventually(lambda: _true([e for e in sink.events if e.kind.value == "end"]))
    assert {e.pbx_call_id for e in sink.events} == {pbx}
    start = datetime.strptime(pbx.rsplit("-", 1)[1], "%Y%m%d%H%M%S")
    record = parse_record(s.smdr_line(start, connected=30, ring=3, caller="79161234567", direction="I", called="201",
                                      dialled="", internal=False, call_id=1000001, continuation=False,
                                      p1=("E201", "A"), p2=("T9001", "Line 1.1"), caller_ip="127.0.0.1",
                                      caller_leg=4242))
    assert conn.calllog.add_group([record])[0].pbx_call_id == pbx
