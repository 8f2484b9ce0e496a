"""ctid.testing's pytest fixtures work as a plugin author uses them: a running daemon, a hub client,
a webhook poster and a wall clock on Trio's mock clock (the pytest11 plugin ctid.testing.plugin)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from ctid.errors import PluginError, RequestError
from ctid.routes import RouteRequest
from ctid.services import Services
from ctid.testing import kit


@pytest.fixture
def ctid_config(ctid_base_config):
    """Overridden like a plugin's test module would: a second generic instance."""
    ctid_base_config["connectors"]["branch"] = {"plugin": "generic", "secret": "branch-secret-0123"}
    return ctid_base_config


async def test_a_pushed_call_reaches_the_agents_hub_connection(ctid_daemon, ctid_hub, ctid_webhooks):
    assert set(ctid_daemon.daemon.connectors) == {"office", "branch"}
    async with ctid_hub("alice") as hub:
        answer = await ctid_webhooks().post({"event": "ring", "call_id": "f-1", "from": "+79161234567",
                                             "agent": "101", "timestamp": "2026-11-25T09:00:00Z"})
        assert answer.status_code == 200, answer.text
        with trio.fail_after(5):
            target, [call] = await hub.next_message()
    assert target == "callUpdated" and call["state"] == "ringing" and call["remote_number"] == "+79161234567"


async def test_the_poster_signs_only_when_told(ctid_daemon, ctid_webhooks):
    branch = ctid_webhooks("branch", sign=kit.generic_signer("branch-secret-0123"))
    event = {"event": "ring", "call_id": "f-2", "from": "+79161234567", "timestamp": "2026-11-25T09:00:00Z"}
    assert (await branch.post(event)).status_code == 200
    unsigned = await branch.post(event, signed=False)
    assert (unsigned.status_code, unsigned.json()["error"]) == (401, "signature_missing")
    wrong = await ctid_webhooks("branch").post(event)  # no signer for this instance
    assert wrong.status_code == 401


async def test_the_wall_clock_follows_the_mock_clock(autojump_clock, ctid_clock):
    assert ctid_clock() == kit.EPOCH
    await trio.sleep(3600)
    assert ctid_clock() == kit.EPOCH + timedelta(hours=1)


async def test_the_wall_clock_refuses_the_real_clock(ctid_clock):
    with pytest.raises(RuntimeError, match="mock clock"):
        ctid_clock()


@settings(max_examples=200)
@given(body=st.binary(max_size=64))
def test_a_route_request_body_is_json_or_a_400(body):
    request = RouteRequest("POST", "/", {}, {}, {}, body, Services(directory=None))
    try:
        request.json()
    except RequestError as exc:
        assert (exc.status, exc.error_id) == (400, "bad_json")


@settings(max_examples=200)
@given(plugin=st.text(max_size=70), event=st.text(max_size=70),
       data=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                      max_size=3), max_leaves=8))
def test_plugin_events_are_published_or_refused_with_a_plugin_error(plugin, event, data):
    published = []
    hub = type("Hub", (), {"publish": lambda self, *args: published.append(args)})()
    try:
        assert Services(directory=None, hub=hub).publish_plugin_event(plugin, event, data, everyone=True)
    except PluginError:
        assert not published
    else:
        [(target, payload, groups)] = published
        assert target == "pluginEvent" and payload == {"plugin": plugin, "event": event, "data": data}
        assert groups == {"agents", "supervisors"}
