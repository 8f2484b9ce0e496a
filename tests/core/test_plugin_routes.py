"""Plugin extension points served by a real daemon: HTTP routes under /plugins/{name}/ (supervised,
in /openapi.json) and the plugin's own hub events (Services.publish_plugin_event)."""

from __future__ import annotations

import types

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ctid
from ctid.errors import NotFoundError, PluginError
from ctid.hub.client import open_hub
from ctid.plugins import CtidPluginManager
from ctid.routes import PluginRoute, RouteRequest, RouteResponse
from ctid.services import Services
from ctid.testing.daemon import running_daemon

from .conftest import API_KEY, PASSWORDS

ITEMS = {"42": {"id": "42", "name": "answer"}}


async def get_item(request: RouteRequest):
    item = ITEMS.get(request.params["id"])
    if item is None:
        raise NotFoundError(f"no item {request.params['id']!r}", error_id="no_such_item")
    return item


async def callback(request: RouteRequest):
    data = request.json()
    sent = request.services.publish_plugin_event("demo", "callback", {"got": data}, agents=["alice"])
    return RouteResponse({"published": sent}, status=202)


async def crash(request: RouteRequest):
    raise ZeroDivisionError("route bug")


async def whoami(request: RouteRequest):
    return {"user": request.user.subject if request.user else None, "path": request.path, "q": request.query}


ROUTES = [
    PluginRoute("GET", "/items/{id}", get_item, "One item", response={"type": "object"},
                errors={404: "no such item"}),
    PluginRoute("POST", "/callback", callback, "Upstream callback", auth=None),
    PluginRoute("GET", "/crash", crash, "Always fails"),
    PluginRoute("GET", "/me", whoami, "Who asks", auth="supervisor", query={"x": {"type": "string"}}),
]


def routes_plugin(routes=ROUTES):
    return types.SimpleNamespace(ctid_register_routes=ctid.hookimpl(lambda: routes))


@pytest.fixture
def demo(monkeypatch):
    """Register the plugin under the name "demo" (as an entry point named demo would be)."""
    original = CtidPluginManager.register

    def register(self, plugin, name=None):
        return original(self, plugin, name="demo" if getattr(plugin, "ctid_register_routes", None) else name)

    monkeypatch.setattr(CtidPluginManager, "register", register)
    return routes_plugin()


async def test_plugin_routes_are_mounted_supervised_and_documented(config, demo):
    admin = {"Authorization": f"Bearer {API_KEY}"}
    async with running_daemon(config, plugins=[demo]) as app:
        client = app.client
        answer = await client.get("/plugins/demo/items/42", headers=admin)
        assert answer.status_code == 200 and answer.json() == ITEMS["42"]
        missing = await client.get("/plugins/demo/items/7", headers=admin)
        assert (missing.status_code, missing.json()["error"]) == (404, "no_such_item")
        assert (await client.get("/plugins/demo/items/42")).status_code == 401  # auth="user" by default

        failed = await client.get("/plugins/demo/crash", headers=admin)
        assert failed.status_code == 502 and failed.json()["error"] == "plugin_failed"
        assert "route bug" not in failed.text  # the traceback stays in the log
        assert app.daemon.pm.errors.count("demo", "route") == 1
        metrics = (await client.get("/metrics")).text
        assert 'ctid_plugin_errors_total{plugin="demo",where="route"} 1.0' in metrics
        ready = (await client.get("/readyz")).json()
        assert ready["plugins"]["demo"]["failures"][0]["where"] == "route"
        assert (await client.get("/plugins/demo/items/42", headers=admin)).status_code == 200  # still serving

        agent = await app.headers_for("alice", PASSWORDS["alice"])
        assert (await client.get("/plugins/demo/me", headers=agent)).status_code == 403
        supervisor = await app.headers_for("super", PASSWORDS["super"])
        me = (await client.get("/plugins/demo/me?x=1", headers=supervisor)).json()
        assert me == {"user": "super", "path": "/me", "q": {"x": "1"}}

        bad = await client.post("/plugins/demo/callback", content=b"{not json")
        assert (bad.status_code, bad.json()["error"]) == (400, "bad_json")

        spec = (await client.get("/openapi.json")).json()
        op = spec["paths"]["/plugins/demo/items/{id}"]["get"]
        assert op["tags"] == ["plugin:demo"] and {"401", "404", "502"} <= set(op["responses"])
        assert "security" not in spec["paths"]["/plugins/demo/callback"]["post"]
        assert spec["paths"]["/plugins/demo/me"]["get"]["parameters"][0]["name"] == "x"


async def test_a_plugin_publishes_its_own_hub_events(config, demo):
    async with running_daemon(config, plugins=[demo]) as app:
        token = await app.token("alice", PASSWORDS["alice"])
        async with open_hub(f"{app.url}/hub", token) as hub:
            answer = await app.client.post("/plugins/demo/callback", json={"n": 1})
            assert answer.status_code == 202 and answer.json() == {"published": True}
            with trio.fail_after(5):
                target, arguments = await hub.next_message()
        assert target == "pluginEvent"
        assert arguments == [{"plugin": "demo", "event": "callback", "data": {"got": {"n": 1}}}]


def test_publish_plugin_event_refuses_bad_input_and_needs_an_audience():
    services = Services(directory=None)
    assert services.publish_plugin_event("demo", "ping", {}, everyone=True) is False  # no hub here
    with pytest.raises(PluginError, match="no audience"):
        services.publish_plugin_event("demo", "ping", {})
    with pytest.raises(PluginError, match="not JSON"):
        services.publish_plugin_event("demo", "ping", {"x": object()}, supervisors=True)
    with pytest.raises(PluginError, match="bad event name"):
        services.publish_plugin_event("demo", "no spaces", {}, supervisors=True)


@pytest.mark.parametrize("route, problem", [
    (PluginRoute("FETCH", "/x", get_item, "s"), "method"),
    (PluginRoute("GET", "x", get_item, "s"), "must start with '/'"),
    (PluginRoute("GET", "/a//b", get_item, "s"), "empty segments"),
    (PluginRoute("GET", "/a/<id>", get_item, "s"), "segment"),
    (PluginRoute("GET", "/x", get_item, ""), "summary"),
    (PluginRoute("GET", "/x", get_item, "s", auth="root"), "auth"),
])
def test_bad_routes_leave_the_plugin_without_routes(route, problem):
    pm = CtidPluginManager()
    pm.register(routes_plugin([route]), name="demo")
    pm.register(routes_plugin([ROUTES[0]]), name="good")
    assert list(pm.routes()) == ["good"]
    [stat] = pm.errors.stats.values()
    assert stat.plugin == "demo" and problem in stat.last_error


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=5),
                          st.builds(PluginRoute, st.sampled_from(["GET", "PUT", "BAD"]), st.text(max_size=8),
                                    st.just(get_item), st.text(max_size=3))), max_size=4) | st.text())
def test_garbage_from_ctid_register_routes_never_escapes(result):
    pm = CtidPluginManager()
    pm.register(routes_plugin(result), name="fuzz")
    routes = pm.routes()
    assert set(routes) <= {"fuzz"}
    for route in routes.get("fuzz", []):
        route.check()


async def test_a_failing_observer_shows_in_health_until_it_works_again(config):
    class Flaky:
        broken = True

        @ctid.hookimpl
        def ctid_agent_status(self, agent, previous):
            if self.broken:
                raise RuntimeError("observer down")

    flaky = Flaky()
    admin = {"Authorization": f"Bearer {API_KEY}"}
    async with running_daemon(config, plugins=[flaky]) as app:
        name = app.daemon.pm.get_name(flaky)
        await app.client.put("/api/agents/bob/status", json={"status": "available"}, headers=admin)
        plugins = (await app.client.get("/readyz")).json()["plugins"]
        assert plugins[name]["failures"][0]["where"] == "ctid_agent_status"
        assert "RuntimeError: observer down" in plugins[name]["failures"][0]["error"]
        flaky.broken = False
        await app.client.put("/api/agents/bob/status", json={"status": "away"}, headers=admin)
        assert name not in (await app.client.get("/readyz")).json()["plugins"]
        assert app.daemon.pm.errors.count(name, "ctid_agent_status") == 1
        metrics = (await app.client.get("/metrics")).text
        assert f'ctid_plugin_errors_total{{plugin="{name}",where="ctid_agent_status"}} 1.0' in metrics
