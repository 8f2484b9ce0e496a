"""Plugins fail alone (ctid/supervise.py): a CRM lookup, a webhook parser, a connector's task or its
history pull that raises anything leaves ``ctid serve`` up and every other connector working; the
failure is logged once with its traceback, counted in ``ctid_plugin_errors_total`` and shown in
``/readyz`` with the exception named. A webhook whose plugin raised is kept as a dead letter."""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

import trio

from ctid import hookimpl
from ctid.builtins.directory import DirectoryConfig, DirectoryCRM
from ctid.builtins.generic import GenericConfig, GenericConnector, sign
from ctid.testing.daemon import eventually, running_daemon

from .conftest import API_KEY, SECRET, make_config, post_events

ADMIN = {"Authorization": f"Bearer {API_KEY}"}
RING = {"event": "ring", "call_id": "s-1", "from": "+79161234567", "to": "+74951234567", "agent": "101",
        "timestamp": "2026-11-25T10:00:00Z"}


class FlakyCRMConfig(DirectoryConfig):
    plugin: Literal["flaky-crm"] = "flaky-crm"  # type: ignore[assignment]


class FlakyCRM(DirectoryCRM):
    """The directory CRM whose lookup raises a KeyError while ``broken`` is set."""

    plugin_name = "flaky-crm"
    Config = FlakyCRMConfig
    broken = True
    log_raises = False

    async def log_call(self, call, *args, **kwargs):
        if FlakyCRM.log_raises:
            raise IndexError("list index out of range")
        return await super().log_call(call, *args, **kwargs)

    async def lookup(self, phone):
        if FlakyCRM.broken:
            raise KeyError("mobilephone")
        return await super().lookup(phone)


class FlakyConfig(GenericConfig):
    plugin: Literal["flaky"] = "flaky"  # type: ignore[assignment]


class FlakyConnector(GenericConnector):
    """The generic connector with bugs switched on by class flags."""

    plugin_name = "flaky"
    Config = FlakyConfig
    parse_raises: BaseException | None = None
    hold_raises: BaseException | None = None
    run_failures = 0  # how many runs raise before one stays up
    runs = 0

    async def handle_webhook(self, request):
        if FlakyConnector.parse_raises is not None:
            raise FlakyConnector.parse_raises
        return await super().handle_webhook(request)

    async def recording(self, call):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    async def aclose(self):
        await super().aclose()
        raise RuntimeError("close failed")

    async def hold(self, call, login):
        if FlakyConnector.hold_raises is not None:
            raise FlakyConnector.hold_raises
        return await super().hold(call, login)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
        FlakyConnector.runs += 1
        if FlakyConnector.runs <= FlakyConnector.run_failures:
            raise RuntimeError(f"socket gone (run {FlakyConnector.runs})")
        task_status.started()
        await trio.sleep_forever()


class Plugin:
    @hookimpl
    def ctid_register_crms(self):
        return [FlakyCRM]

    @hookimpl
    def ctid_register_connectors(self):
        return [FlakyConnector]


def _config(config: dict[str, Any]) -> dict[str, Any]:
    config["crm"] = {**config["crm"], "plugin": "flaky-crm"}
    config["connectors"]["flaky"] = {"plugin": "flaky", "secret": SECRET,
                                     "command_url": config["connectors"]["office"].get("command_url")}
    return config


def _reset(**flags: Any) -> None:
    FlakyCRM.broken = flags.get("crm_broken", False)
    FlakyCRM.log_raises = flags.get("log_raises", False)
    FlakyConnector.parse_raises = flags.get("parse_raises")
    FlakyConnector.hold_raises = flags.get("hold_raises")
    FlakyConnector.run_failures = flags.get("run_failures", 0)
    FlakyConnector.runs = 0


async def _post(app, instance: str, events: list[dict[str, Any]]):
    body = json.dumps(events).encode()
    return await app.client.post(f"/hooks/{instance}", content=body, headers={"X-Ctid-Signature": sign(SECRET, body)})


async def test_a_crm_lookup_that_raises_leaves_the_daemon_serving(config, caplog):
    _reset(crm_broken=True)
    caplog.set_level(logging.DEBUG, logger="ctid")
    async with running_daemon(_config(config), plugins=[Plugin()]) as app:
        await post_events(app, [RING])

        async def unavailable():
            call = next(iter(app.daemon.switchboard.calls.values()), None)
            return call is not None and (call.contact or {}).get("status") == "unavailable"

        await eventually(unavailable)
        # a second caller: the daemon still takes webhooks and looks up again (same failure, no new traceback)
        await post_events(app, [{**RING, "call_id": "s-2", "from": "+74957770000"}])
        await eventually(lambda: _has_failures(app, "flaky-crm", 2))
        ready = (await app.client.get("/readyz")).json()
        assert ready["status"] == "ready"
        failure = ready["plugins"]["flaky-crm"]["failures"][0]
        assert failure["where"] == "lookup" and failure["error"].startswith("KeyError") and failure["count"] == 2
        metrics = (await app.client.get("/metrics")).text
        assert 'ctid_plugin_errors_total{plugin="flaky-crm",where="lookup"} 2.0' in metrics
        tracebacks = [r for r in caplog.records if r.exc_info and "flaky-crm" in r.getMessage()]
        assert len(tracebacks) == 1, "logged once with its traceback"
        # fixed: the next lookup works and health is green again
        FlakyCRM.broken = False
        await post_events(app, [{**RING, "call_id": "s-3", "from": "+74957770001"}])
        await eventually(lambda: _green(app, "flaky-crm"))


async def _has_failures(app, plugin: str, count: int) -> bool:
    return any(f.count >= count for (p, _), f in app.daemon.supervisor.failures.items() if p == plugin)


async def _green(app, plugin: str) -> bool:
    return plugin not in (await app.client.get("/readyz")).json()["plugins"]


async def test_a_webhook_parser_that_raises_is_kept_as_a_dead_letter(config):
    _reset(parse_raises=KeyError("cmd"))
    async with running_daemon(_config(config), plugins=[Plugin()]) as app:
        response = await _post(app, "flaky", [RING])
        assert response.status_code == 202
        answer = response.json()
        assert answer["error"] == "plugin_failed" and isinstance(answer["dead_letter"], int)
        # the other connector is untouched
        assert (await _post(app, "office", [RING])).status_code == 200
        letters = (await app.client.get("/api/dead-letters", headers=ADMIN)).json()["items"]
        assert [(d["id"], d["connector"], d["error"]) for d in letters] == [(answer["dead_letter"], "flaky",
                                                                              "plugin_failed")]
        assert "KeyError" in letters[0]["message"]
        ready = (await app.client.get("/readyz")).json()
        assert ready["plugins"]["flaky"]["failures"][0]["error"] == "KeyError: 'cmd'"
        # agents may not see them
        agent = await app.headers_for("alice", "alice-pw")
        assert (await app.client.get("/api/dead-letters", headers=agent)).status_code == 403
        # the plugin is fixed: re-submitting takes the events and removes the letter
        FlakyConnector.parse_raises = None
        letter = answer["dead_letter"]
        retried = await app.client.post(f"/api/dead-letters/{letter}/retry", headers=ADMIN)
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == 200
        assert any(c.connector == "flaky" for c in app.daemon.switchboard.calls.values())
        assert (await app.client.get("/api/dead-letters", headers=ADMIN)).json()["items"] == []
        assert (await app.client.get(f"/api/dead-letters/{letter}", headers=ADMIN)).status_code == 404


async def test_a_dead_letter_can_be_read_and_deleted(config):
    _reset(parse_raises=RuntimeError("boom"))
    async with running_daemon(_config(config), plugins=[Plugin()]) as app:
        body = b'{"anything": "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82"}'
        response = await app.client.post("/hooks/flaky?x=1", content=body, headers={"X-Test": "yes"})
        letter = response.json()["dead_letter"]
        one = (await app.client.get(f"/api/dead-letters/{letter}", headers=ADMIN)).json()
        import base64

        assert base64.b64decode(one["body_base64"]) == body
        assert one["query"] == {"x": "1"} and one["headers"]["x-test"] == "yes"
        # a retry that still fails keeps it
        again = await app.client.post(f"/api/dead-letters/{letter}/retry", headers=ADMIN)
        assert again.status_code == 502 and again.json()["error"] == "plugin_failed"
        assert (await app.client.delete(f"/api/dead-letters/{letter}", headers=ADMIN)).status_code == 204
        assert (await app.client.delete(f"/api/dead-letters/{letter}", headers=ADMIN)).status_code == 404


async def test_a_connector_task_that_raises_is_restarted_and_the_rest_serves(config):
    _reset(run_failures=2)
    async with running_daemon(_config(config), plugins=[Plugin()]) as app:
        # start-up did not wait for the broken task; webhooks are served meanwhile
        assert (await _post(app, "office", [RING])).status_code == 200
        ready = (await app.client.get("/readyz")).json()
        assert "RuntimeError: socket gone" in ready["plugins"]["flaky"]["failures"][0]["error"]
        # (the restart schedule is tested with a mock clock in tests/test_supervise.py)


async def test_ctid_check_shows_the_running_daemons_failing_plugins(config):
    from ctid.cli.check_cmd import _running_daemon

    _reset(crm_broken=True)
    async with running_daemon(_config(config), plugins=[Plugin()]) as app:
        server = app.daemon.settings.core.server
        healthy = await _running_daemon(server, 3)
        assert healthy["ok"] is True and healthy["checks"] == {}
        await post_events(app, [RING])
        await eventually(lambda: _has_failures(app, "flaky-crm", 1))
        failing = await _running_daemon(server, 3)
        assert failing["ok"] is False and failing["checks"]["flaky-crm lookup"].startswith("KeyError: 'mobilephone'")
    assert await _running_daemon(server, 3) is None  # nothing listening: no entry


def test_ctid_check_names_the_exception_of_a_health_that_raises(tmp_path):
    from ctid.cli.check_cmd import _run_checks
    from ctid.config.loader import load_config_dict
    from ctid.plugins import get_plugin_manager

    class BrokenHealth(FlakyCRM):
        async def health(self):
            raise ZeroDivisionError("division by zero")

    class HealthPlugin:
        @hookimpl
        def ctid_register_crms(self):
            return [BrokenHealth]

        @hookimpl
        def ctid_register_connectors(self):
            return [FlakyConnector]

    pm = get_plugin_manager()
    pm.register(HealthPlugin())
    settings = load_config_dict(_config(make_config(tmp_path)), pm)

    async def migrate() -> None:
        from ctid.store import Store

        async with Store(settings.core.database.url):
            pass

    trio.run(migrate)
    results = trio.run(_run_checks, settings, pm, 5.0)
    crm = next(r for r in results if r["name"].startswith("crm"))
    assert crm["ok"] is False and crm["detail"] == "ZeroDivisionError: division by zero"
    database = next(r for r in results if r["name"] == "database")
    assert database["checks"]["dead letters"] == "0"


async def test_a_command_that_raises_is_a_502_naming_it_and_the_daemon_serves(config):
    _reset(hold_raises=AttributeError("'NoneType' object has no attribute 'json'"))
    async with running_daemon(_config(config), plugins=[Plugin()]) as app:
        assert (await _post(app, "flaky", [{**RING, "event": "answer"}])).status_code == 200
        call = next(c for c in app.daemon.switchboard.calls.values() if c.connector == "flaky")
        response = await app.client.post(f"/api/calls/{call.id}/hold", headers=ADMIN)
        assert response.status_code == 502 and response.json()["error"] == "plugin_failed"
        assert "AttributeError" in response.json()["message"]
        ready = (await app.client.get("/readyz")).json()
        assert ready["plugins"]["flaky"]["failures"][0]["where"] == "hold"
        FlakyConnector.hold_raises = None
        assert (await app.client.post(f"/api/calls/{call.id}/hold", headers=ADMIN)).status_code == 200


async def test_a_crm_write_that_raises_is_parked_counted_and_shown(config):
    _reset(log_raises=True)
    async with running_daemon(_config(config), plugins=[Plugin()]) as app:
        await post_events(app, [RING, {**RING, "event": "end", "timestamp": "2026-11-25T10:00:30Z"}])
        await eventually(lambda: _has_failures(app, "flaky-crm", 1))
        failure = (await app.client.get("/readyz")).json()["plugins"]["flaky-crm"]["failures"][0]
        assert failure["where"] == "log_call" and failure["error"].startswith("IndexError")
        assert (await app.client.get("/healthz")).status_code == 200


async def test_a_recording_that_raises_is_a_502_and_a_close_that_raises_stops_nothing(config):
    _reset()
    async with running_daemon(_config(config), plugins=[Plugin()]) as app:
        assert (await _post(app, "flaky", [{**RING, "event": "answer"}])).status_code == 200
        call = next(c for c in app.daemon.switchboard.calls.values() if c.connector == "flaky")
        response = await app.client.get(f"/api/calls/{call.id}/recording", headers=ADMIN)
        assert response.status_code == 502 and response.json()["error"] == "plugin_failed"
        assert "UnicodeDecodeError" in response.json()["message"]
        daemon = app.daemon
    # the flaky connector's aclose raised at shutdown: the store was closed all the same
    assert ("flaky", "aclose") in daemon.supervisor.failures
    assert daemon.store._engine is None
