"""Conformance suites any connector or CRM plugin runs against itself, through a real daemon.

A plugin's test module subclasses a suite, names its plugin and gives a configuration pointing at
its fake upstream server; pytest collects the inherited tests (the class name must start with
``Test``)::

    from ctid.testing.conformance import ConnectorConformance

    class TestConformance(ConnectorConformance):
        plugin_name = "mypbx"
        logins = {"alice": "201", "bob": "202"}  # agent id -> login on the PBX

        @pytest.fixture
        async def connector_config(self, nursery):
            url = await nursery.start(serve, FakeMyPBX())  # your fake upstream
            return {"plugin": "mypbx", "api_url": url, "token": "token-0123456789"}

        def with_wrong_secret(self, request):  # a webhook as a stranger would send it
            return dataclasses.replace(request, headers={**request.headers, "x-token": "wrong-token"})

:class:`ConnectorConformance` checks that the plugin is installed and keeps the contract (version,
declared capabilities implemented), that every declared capability works against the fake and every
undeclared one fails with ``capability_missing:<name>``, that ``simulate`` drives every scenario it
claims through a real daemon to ended calls, that health answers ok, and that bad webhooks (garbage,
a wrong secret) get a 4xx and store nothing while mutated ones never get a 5xx.
:class:`CRMConformance` checks the same of a CRM adapter, with a call driven through the daemon's
generic connector: lookups, idempotent writes, sales facts, and the daemon's outbox delivering them.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import random
from datetime import timedelta
from typing import Any, ClassVar

import pytest
import trio

from ctid.connector import (
    CONNECTOR_CAPABILITIES,
    Connector,
    Health,
    SimulatedRequest,
    SimulationContext,
    contract_problems,
)
from ctid.errors import CapabilityError
from ctid.model import Call, CallEvent, CallState, Capability
from ctid.testing import kit

#: Bodies no PBX sends: every one must get a 4xx from a webhook connector.
GARBAGE: tuple[tuple[str, bytes], ...] = (
    ("application/json", b""),
    ("application/json", b"{"),
    ("application/json", b"[]"),
    ("application/json", b"null"),
    ("application/json", b'{"unexpected": true}'),
    ("application/json", b"\xff\xfe\x00garbage"),
    ("application/x-www-form-urlencoded", b"a=1&b=%ZZ"),
    ("text/plain", b"hello"),
)
#: How many mutations of real simulated requests each webhook connector gets (seeded, repeatable).
MUTATIONS = 40


def plugin_row(plugin_name: str, kind: str) -> dict[str, Any]:
    """The ``ctid plugins --json`` row of the plugin that provides ``plugin_name`` (kind: connectors|crms)."""
    from ctid.plugins import get_plugin_manager

    rows = [row for row in get_plugin_manager().describe() if plugin_name in row[kind]]
    assert rows, f"no installed plugin provides {kind[:-1]} {plugin_name!r} (is its entry point installed?)"
    return rows[0]


async def wait_for(check: Any, what: str, within: float = 15.0) -> Any:
    """Poll ``check()`` (sync) until truthy, across the daemon's network boundary."""
    with trio.move_on_after(within):
        while True:
            value = check()
            if value:
                return value
            await trio.sleep(0.02)
    raise AssertionError(f"timed out after {within} s waiting for {what}")


class _Common:
    plugin_name: ClassVar[str] = ""

    def _check_installed(self, kind: str, classes: dict[str, type]) -> type:
        from ctid import CONTRACT_VERSION
        from ctid.plugins import check_contract

        row = plugin_row(self.plugin_name, kind)
        assert "error" not in row, row.get("error")
        assert row["contract"], f"plugin {row['name']!r} declares no CTID_CONTRACT"
        assert check_contract(type("Declared", (), {"CTID_CONTRACT": row["contract"]}), row["name"])
        assert row["contract"].split(".")[0] == CONTRACT_VERSION.split(".")[0]
        cls = classes[self.plugin_name]
        assert contract_problems(cls) == []
        return cls


class ConnectorConformance(_Common):
    """The conformance suite of a PBX connector plugin (see the module docstring)."""

    #: The connector instance name the suite configures.
    instance: ClassVar[str] = "pbx"
    #: Agent id -> login on the PBX (``agents.<id>.pbx.<instance>``); empty: the extensions 101, 102.
    logins: ClassVar[dict[str, str]] = {}
    #: The caller numbers of simulated calls: this prefix and 4 digits (one number per scenario, so
    #: calls do not mix).
    caller_prefix: ClassVar[str] = "+7916123"
    #: Our line number in simulated calls.
    line: ClassVar[str | None] = "+74950001122"
    #: The number dialled by the ``dial`` check.
    dial_number: ClassVar[str] = "+74951234567"

    # -- what the plugin's test gives -----------------------------------------------------------------
    @pytest.fixture
    def connector_config(self) -> dict[str, Any]:
        """The ``connectors.<instance>`` entry (override: point it at your fake upstream)."""
        raise NotImplementedError("override the connector_config fixture with your connector's configuration")

    def with_wrong_secret(self, request: SimulatedRequest) -> SimulatedRequest:
        """``request`` as someone without the webhook secret / token would send it (override)."""
        raise NotImplementedError("a webhook connector's conformance test overrides with_wrong_secret()")

    async def active_call(self, app: Any, connector: Connector) -> Call:
        """A call of this connector that is talking now (for hold / transfer / hangup / recording):
        the ``answered`` scenario (else the first) sent up to the moment the call is answered."""
        scenario = "answered" if "answered" in connector.scenarios else (connector.scenarios or ("",))[0]
        assert scenario, "declare scenarios, or override active_call() to make a talking call"
        poster = kit.WebhookPoster(app.client, self.instance)
        for request in connector.simulate(scenario, self.context(app, scenario, 99)):
            answer = await poster.send(request)
            assert answer.status_code < 400, answer.text
            talking = [c for c in self._calls(app) if c.state is CallState.TALKING]
            if talking:
                return talking[0]
        raise AssertionError(f"scenario {scenario!r} never had a talking call; override active_call()")

    # -- the configuration ---------------------------------------------------------------------------
    @pytest.fixture
    def ctid_config(self, ctid_base_config: dict[str, Any], connector_config: dict[str, Any]) -> dict[str, Any]:
        config = copy.deepcopy(ctid_base_config)
        config["connectors"][self.instance] = connector_config
        for agent, login in self.logins.items():
            config["agents"][agent].setdefault("pbx", {})[self.instance] = login
        return config

    def login(self, app: Any, agent: str) -> str:
        login = app.daemon.directory.login_for_agent(self.instance, agent)
        assert login, f"agent {agent!r} has no login on {self.instance!r}: set logins"
        return login

    def context(self, app: Any, scenario: str, index: int) -> SimulationContext:
        """Who takes part in simulated call ``index``: alice answers, bob is the other agent."""
        return SimulationContext(caller=f"{self.caller_prefix}{4500 + index:04d}", agent=self.login(app, "alice"),
                                 others=[self.login(app, "bob")], line=self.line, group="sales")

    def connector(self, app: Any) -> Connector:
        return app.daemon.connectors[self.instance]

    def _calls(self, app: Any) -> list[Call]:
        return [c for c in app.daemon.switchboard.calls.values() if c.connector == self.instance]

    # -- the checks ----------------------------------------------------------------------------------
    def test_plugin_is_installed_and_keeps_the_contract(self) -> None:
        from ctid.plugins import get_plugin_manager

        cls = self._check_installed("connectors", get_plugin_manager().connector_classes())
        assert issubclass(cls, Connector)

    async def test_declared_capabilities_work_and_undeclared_ones_fail(self, ctid_daemon: Any) -> None:
        connector = self.connector(ctid_daemon)
        assert contract_problems(connector) == []
        declared = set(connector.capabilities)
        alice, bob = self.login(ctid_daemon, "alice"), self.login(ctid_daemon, "bob")
        for capability in Capability:
            if capability in declared:
                continue
            for method in CONNECTOR_CAPABILITIES[capability]:
                if getattr(type(connector), method) is not getattr(Connector, method):
                    continue  # overridden although not declared: ctid never calls it
                with pytest.raises(CapabilityError) as info:
                    await _call_method(connector, method, None, alice, bob)
                assert info.value.error_id == f"capability_missing:{capability.value}"
        if Capability.DIAL in declared:
            pbx_id = await connector.dial(alice, self.dial_number)
            assert pbx_id is None or isinstance(pbx_id, str)
        if Capability.DND in declared:
            await connector.set_dnd(alice, True)
            await connector.set_dnd(alice, False)
        if Capability.HISTORY in declared:
            events = await connector.history(ctid_daemon.daemon.clock() - timedelta(hours=2))
            assert isinstance(events, list) and all(isinstance(e, CallEvent) for e in events)
            assert {e.connector for e in events} <= {self.instance}
        on_call = declared & {Capability.HOLD, Capability.TRANSFER, Capability.HANGUP, Capability.RECORDINGS}
        if on_call:
            call = await self.active_call(ctid_daemon, connector)
            if Capability.RECORDINGS in declared:
                recording = await connector.recording(call)
                assert recording is None or (isinstance(recording[0], bytes) and isinstance(recording[1], str))
            if Capability.HOLD in declared:
                await connector.hold(call, alice)
                await connector.unhold(call, alice)
            if Capability.TRANSFER in declared:
                await connector.transfer(call, alice, bob)
            if Capability.HANGUP in declared:
                await connector.hangup(call, alice)

    async def test_simulate_drives_every_scenario_to_ended_calls(self, ctid_daemon: Any) -> None:
        connector = self.connector(ctid_daemon)
        if not connector.scenarios:
            with pytest.raises(CapabilityError):
                connector.simulate("answered", self.context(ctid_daemon, "answered", 0))
            return
        for index, scenario in enumerate(connector.scenarios):
            before = {c.id for c in self._calls(ctid_daemon)}
            context = self.context(ctid_daemon, scenario, index)
            await connector.send_simulation(scenario, context, base_url=ctid_daemon.url, report=lambda _line: None)

            def ended(before: set[str] = before) -> list[Call]:
                new = [c for c in self._calls(ctid_daemon) if c.id not in before]
                return new if new and all(c.state is CallState.ENDED for c in new) else []

            calls = await wait_for(ended, f"scenario {scenario!r} to end its calls")
            assert all(c.outcome is not None for c in calls), f"{scenario}: an ended call without outcome"

    async def test_health_answers(self, ctid_daemon: Any) -> None:
        with trio.fail_after(10):
            health = await self.connector(ctid_daemon).health()
        assert isinstance(health, Health) and health.ok is True, health
        assert isinstance(health.to_json()["checks"], dict)

    async def test_bad_webhooks_get_4xx_and_store_nothing(self, ctid_daemon: Any) -> None:
        connector = self.connector(ctid_daemon)
        poster = kit.WebhookPoster(ctid_daemon.client, self.instance)
        if not connector.accepts_webhooks:
            answer = await poster.post(b"{}", content_type="application/json")
            assert (answer.status_code, answer.json()["error"]) == (404, "unknown_instance")
            return
        calls, rows = await self._stored(ctid_daemon)
        for content_type, body in GARBAGE:
            answer = await poster.post(body, content_type=content_type)
            assert 400 <= answer.status_code < 500, (body, answer.status_code, answer.text[:200])
        requests = [r for s in connector.scenarios for r in connector.simulate(s, self.context(ctid_daemon, s, 50))]
        assert requests or not connector.scenarios
        for request in requests[:3]:
            answer = await poster.send(self.with_wrong_secret(request))
            assert 400 <= answer.status_code < 500, (request.description, answer.status_code, answer.text[:200])
        assert await self._stored(ctid_daemon) == (calls, rows), "a refused webhook stored something"
        rng = random.Random(f"{self.plugin_name}-conformance")
        for _ in range(MUTATIONS if requests else 0):
            answer = await poster.send(_mutate(rng, rng.choice(requests)))
            assert answer.status_code < 500, (answer.status_code, answer.text[:200])

    async def _stored(self, app: Any) -> tuple[int, int]:
        rows = await app.daemon.store.list_calls(limit=100_000)
        return len(self._calls(app)), len(rows)


class CRMConformance(_Common):
    """The conformance suite of a CRM adapter plugin (see the module docstring)."""

    #: A caller number (E.164) the fake CRM has exactly one record for.
    known_phone: ClassVar[str] = "+74951234567"
    #: A caller number the fake CRM has no record for.
    unknown_phone: ClassVar[str] = "+74959999999"
    #: Agent id -> the agent's CRM user (``agents.<id>.crm_user``).
    crm_users: ClassVar[dict[str, str]] = {}

    @pytest.fixture
    def crm_config(self) -> dict[str, Any]:
        """The ``crm`` section (override: point it at your fake CRM, seeded with ``known_phone``)."""
        raise NotImplementedError("override the crm_config fixture with your CRM adapter's configuration")

    @pytest.fixture
    def ctid_config(self, ctid_base_config: dict[str, Any], crm_config: dict[str, Any]) -> dict[str, Any]:
        config = copy.deepcopy(ctid_base_config)
        config["crm"] = crm_config
        for agent, user in self.crm_users.items():
            config["agents"][agent]["crm_user"] = user
        return config

    async def missed_call(self, app: Any) -> Call:
        """A missed call from :attr:`known_phone` through the daemon's generic connector (ended)."""
        generic = app.daemon.connectors[kit.GENERIC_INSTANCE]
        context = SimulationContext(caller=self.known_phone, agent="101", line="+74950001122", group="sales",
                                    start=app.daemon.clock() - timedelta(minutes=5))
        poster = kit.WebhookPoster(app.client, kit.GENERIC_INSTANCE)
        for request in generic.simulate("missed", context):
            answer = await poster.send(request)
            assert answer.status_code == 200, answer.text
        calls = [c for c in app.daemon.switchboard.calls.values()
                 if c.remote_number == self.known_phone and c.state is CallState.ENDED]
        assert calls, "the generic connector's missed call did not end"
        return calls[-1]

    def test_plugin_is_installed_and_keeps_the_contract(self) -> None:
        from ctid.crm import CRMAdapter
        from ctid.plugins import get_plugin_manager

        cls = self._check_installed("crms", get_plugin_manager().crm_classes())
        assert issubclass(cls, CRMAdapter)

    async def test_declared_capabilities_work_and_undeclared_ones_fail(self, ctid_daemon: Any) -> None:
        from ctid.crm import CRM_CAPABILITIES, FACT_KINDS, ContactMatch, CRMAdapter, CRMFact

        crm = ctid_daemon.daemon.crm
        assert crm is not None and contract_problems(crm) == []
        declared = set(crm.capabilities)
        call = await self.missed_call(ctid_daemon)
        task = next(t for t in ctid_daemon.daemon.switchboard.tasks.values() if t.number == self.known_phone)
        agent = ctid_daemon.daemon.directory.get("alice")
        for capability in set(CRM_CAPABILITIES) - declared:
            for method in CRM_CAPABILITIES[capability]:
                if getattr(type(crm), method) is getattr(CRMAdapter, method):
                    with pytest.raises(CapabilityError) as info:
                        await _call_crm(crm, method, call, task, agent)
                    assert info.value.error_id == f"capability_missing:{capability}"
        if "lookup" in declared:
            matches = await crm.lookup(self.known_phone)
            assert len(matches) == 1 and isinstance(matches[0], ContactMatch), matches
            assert await crm.lookup(self.unknown_phone) == []
        if "log_call" in declared:
            first = await crm.log_call(call, agent)
            assert await crm.log_call(call, agent) == first, "log_call is not idempotent"
        if "recordings" in declared:
            await crm.attach_recording(call, f"{ctid_daemon.url}/api/calls/{call.id}/recording")
        if "tasks" in declared:
            first = await crm.create_callback_task(task, agent)
            assert await crm.create_callback_task(task, agent) == first, "create_callback_task is not idempotent"
            await crm.close_callback_task(task)
        if "sales_facts" in declared:
            until = ctid_daemon.daemon.clock() + timedelta(days=1)
            since = until - timedelta(days=400)
            facts = await crm.sales_facts([self.known_phone], since, until)
            assert isinstance(facts, list) and all(isinstance(f, CRMFact) for f in facts)
            for fact in facts:
                assert fact.kind in FACT_KINDS and since <= fact.at < until and fact.at.tzinfo is not None
                assert fact.phone in (None, self.known_phone)

    async def test_the_daemon_delivers_what_the_adapter_declares(self, ctid_daemon: Any) -> None:
        declared = set(ctid_daemon.daemon.crm.capabilities)
        outbox = ctid_daemon.daemon.outbox
        await self.missed_call(ctid_daemon)
        expected = ("log_call" in declared) + ("tasks" in declared)
        await wait_for(lambda: outbox.delivered >= expected, f"{expected} CRM jobs delivered")
        stats = await ctid_daemon.daemon.store.outbox_stats()
        assert stats["dead"] == 0, stats

    async def test_health_answers(self, ctid_daemon: Any) -> None:
        with trio.fail_after(10):
            health = await ctid_daemon.daemon.crm.health()
        assert isinstance(health, Health) and health.ok is True, health


async def _call_method(connector: Connector, method: str, call: Any, login: str, other: str) -> Any:
    args = {"dial": (login, "+74951234567"), "hold": (call, login), "unhold": (call, login),
            "transfer": (call, login, other), "hangup": (call, login), "set_dnd": (login, True),
            "recording": (call,), "history": (None,)}[method]
    return await getattr(connector, method)(*args)


async def _call_crm(crm: Any, method: str, call: Call, task: Any, agent: Any) -> Any:
    args = {"lookup": ("+74951234567",), "log_call": (call, agent), "create_callback_task": (task, agent),
            "close_callback_task": (task,), "attach_recording": (call, "http://x"),
            "sales_facts": (["+74951234567"], None, None)}[method]
    return await getattr(crm, method)(*args)


def _mutate(rng: random.Random, request: SimulatedRequest) -> SimulatedRequest:
    """A real request damaged one way: truncated, a byte flipped, a header dropped, or a body doubled."""
    body = request.body
    choice = rng.randrange(4)
    if choice == 0 and body:
        body = body[: rng.randrange(len(body))]
    elif choice == 1 and body:
        index = rng.randrange(len(body))
        body = body[:index] + bytes([body[index] ^ (1 << rng.randrange(8))]) + body[index + 1:]
    elif choice == 2 and request.headers:
        dropped = rng.choice(sorted(request.headers))
        return dataclasses.replace(request, headers={k: v for k, v in request.headers.items() if k != dropped})
    else:
        body = body + body
    with contextlib.suppress(Exception):
        return dataclasses.replace(request, body=body)
    return request
