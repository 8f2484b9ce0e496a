"""Every hook of ctid/hookspecs.py is exercised here with a plugin registered like a third party's."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pluggy

from ctid import hookimpl, hookspecs
from ctid.builtins.generic import sign
from ctid.connector import Connector, ConnectorConfig
from ctid.crm import CRMAdapter, CRMConfig
from ctid.testing.daemon import running_daemon

from .conftest import API_KEY, SECRET

TESTED_HOOKS = {
    "ctid_register_connectors", "ctid_register_crms", "ctid_serve_started", "ctid_serve_stopping",
    "ctid_call_event", "ctid_call_ended", "ctid_agent_status", "ctid_task_updated",
    "ctid_register_routes",  # tests/core/test_plugin_routes.py
}
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def test_every_hookspec_has_a_test_here():
    specs = {name for name in dir(hookspecs) if name.startswith("ctid_")}
    assert specs == TESTED_HOOKS, "add a test for each new hook and list it in TESTED_HOOKS"


class NullConnector(Connector):
    plugin_name = "null"
    Config = type("NullConfig", (ConnectorConfig,), {"__annotations__": {"colour": str}, "colour": "grey"})


class NullCRM(CRMAdapter):
    plugin_name = "nullcrm"
    Config = type("NullCRMConfig", (CRMConfig,), {})


class Observer:
    """Observer hooks only."""

    def __init__(self, crash: bool = False) -> None:
        self.calls: list[tuple[str, object]] = []
        self.crash = crash

    @hookimpl
    def ctid_serve_started(self, services):
        self.calls.append(("started", services.public_url))

    @hookimpl
    def ctid_serve_stopping(self, services):
        self.calls.append(("stopping", services.public_url))

    @hookimpl
    def ctid_call_event(self, event, call):
        self.calls.append(("event", (event.kind.value, call.state.value)))
        if self.crash:
            raise RuntimeError("observer bug")

    @hookimpl
    def ctid_call_ended(self, call):
        self.calls.append(("ended", (call.outcome.value, call.remote_number)))

    @hookimpl
    def ctid_agent_status(self, agent, previous):
        self.calls.append(("agent", (agent.id, previous, agent.to_json()["presence"])))

    @hookimpl
    def ctid_task_updated(self, task):
        self.calls.append(("task", (task.number, task.status.value, task.missed_count)))


class Recorder(Observer):
    """Observers plus registration hooks (connector and CRM classes)."""

    @hookimpl
    def ctid_register_connectors(self):
        return [NullConnector]

    @hookimpl
    def ctid_register_crms(self):
        return [NullCRM]


async def _missed_call(app):
    events = [{"event": "ring", "call_id": "h-1", "from": "+79161234567", "agent": "101",
               "timestamp": START.isoformat()},
              {"event": "end", "call_id": "h-1", "timestamp": (START + timedelta(seconds=20)).isoformat()}]
    body = json.dumps(events).encode()
    return await app.client.post("/hooks/office", content=body, headers={"X-Ctid-Signature": sign(SECRET, body)})


async def test_observers_and_registration_hooks(config):
    recorder = Recorder()
    config["connectors"]["extra"] = {"plugin": "null", "colour": "blue"}
    async with running_daemon(config, plugins=[recorder]) as app:
        assert app.daemon.connectors["extra"].config.colour == "blue"
        assert (await _missed_call(app)).status_code == 200
        response = await app.client.put("/api/agents/bob/status", json={"status": "available"},
                                        headers={"Authorization": f"Bearer {API_KEY}"})
        assert response.status_code == 200
        kinds = [name for name, _ in recorder.calls]
        assert kinds[0] == "started"
        assert ("event", ("ring", "ended")) in recorder.calls  # the call state after the whole batch
        assert ("ended", ("missed", "+79161234567")) in recorder.calls
        assert ("task", ("+79161234567", "open", 1)) in recorder.calls
        assert ("agent", ("bob", "offline", "available")) in recorder.calls
        assert ("agent", ("alice", "offline", "offline")) not in recorder.calls
    assert recorder.calls[-1][0] == "stopping"


async def test_a_crashing_observer_loses_nothing_and_stops_no_other_plugin(config, caplog):
    crashing, healthy = Observer(crash=True), Observer()
    async with running_daemon(config, plugins=[crashing, healthy]) as app:
        assert (await _missed_call(app)).status_code == 200
        calls = (await app.client.get("/api/calls", headers={"Authorization": f"Bearer {API_KEY}"})).json()
        assert [c["outcome"] for c in calls["items"]] == ["missed"]
    # the healthy plugin saw everything although the other one raised on each call event
    assert [name for name, _ in healthy.calls if name == "event"] == ["event", "event"]
    assert ("ended", ("missed", "+79161234567")) in healthy.calls
    # logged once with its traceback (the same failure again is one debug line), counted each time
    failures = [r for r in caplog.records if "failed in ctid_call_event" in r.getMessage()]
    assert len(failures) == 1 and "RuntimeError: observer bug" in failures[0].getMessage()
    assert failures[0].exc_info is not None
    assert app.daemon.pm.errors.count(where="ctid_call_event") == 2


def test_crm_registration_hook_offers_the_class():
    pm = pluggy.PluginManager("ctid")
    pm.add_hookspecs(hookspecs)
    pm.register(Recorder())
    assert pm.hook.ctid_register_crms() == [[NullCRM]]
