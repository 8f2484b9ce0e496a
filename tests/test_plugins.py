"""The plugin manager: built-ins through the same hooks, broken third-party plugins reported and never fatal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import ctid
from ctid.config.loader import load_config_dict
from ctid.config.models import CtidConfig
from ctid.connector import Connector, ConnectorConfig
from ctid.crm import CRMAdapter
from ctid.errors import ConfigError, PluginLoadError
from ctid.plugins import BUILTIN_PLUGINS, CtidPluginManager, PluginFailure, get_plugin_manager

FIXTURE_PLUGINS = Path(__file__).parent / "fixtures" / "plugins"
THIRD_PARTY = {"fixture-pbx", "broken-pbx", "typo-hook", "garbage"}


@pytest.fixture
def fixture_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the fixture distributions (dist-info + packages) on sys.path; load every entry point."""
    monkeypatch.syspath_prepend(str(FIXTURE_PLUGINS))
    monkeypatch.delenv("CTID_LOAD_PLUGINS", raising=False)


def third_party_failures(pm: CtidPluginManager) -> dict[str, PluginFailure]:
    return {failure.name: failure for failure in pm.failures if failure.name in THIRD_PARTY}


def test_broken_plugins_are_recorded_not_raised(fixture_path: None) -> None:
    pm = get_plugin_manager()
    failures = third_party_failures(pm)
    assert set(failures) == {"broken-pbx", "typo-hook", "garbage"}
    broken = failures["broken-pbx"]
    assert (broken.dist, broken.version) == ("ctid-broken-pbx", "0.3.0")
    assert broken.error == "RuntimeError: vendor SDK 'brokenpbx-sdk' is not installed"
    assert failures["typo-hook"].error == (
        "PluginValidationError: unknown hook 'ctid_register_conectors' (did you mean 'ctid_register_connectors'?)"
    )
    assert failures["garbage"].error == (
        "ctid_register_connectors: TypeError: returned 'garbage-pbx', which is not a Connector subclass"
    )
    assert pm.connector_classes()["fixture-pbx"].__name__ == "FixturePBX"
    assert pm.crm_classes()["fixture-crm"].__name__ == "FixtureCRM"
    assert not pm.has_plugin("typo-hook") and not pm.has_plugin("garbage")


def test_allow_list(fixture_path: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTID_LOAD_PLUGINS", "fixture-pbx, garbage")
    pm = get_plugin_manager()
    assert set(third_party_failures(pm)) == {"garbage"}
    assert "fixture-pbx" in pm.connector_classes()

    monkeypatch.setenv("CTID_LOAD_PLUGINS", "")
    pm = get_plugin_manager()
    assert third_party_failures(pm) == {}
    assert "fixture-pbx" not in pm.connector_classes()
    assert all(row["builtin"] for row in pm.describe())
    # --all adds the installed plugins the allow-list left out, not loaded
    left_out = {row["name"]: row for row in pm.describe(all=True) if not row["builtin"]}
    assert set(left_out) >= THIRD_PARTY
    assert left_out["fixture-pbx"]["skipped"] == "not in CTID_LOAD_PLUGINS"
    assert (left_out["fixture-pbx"]["dist"], left_out["fixture-pbx"]["version"]) == ("ctid-fixture-pbx", "1.2.0")
    assert left_out["fixture-pbx"]["connectors"] == [] and "error" not in left_out["fixture-pbx"]


def test_load_entry_points_false_loads_only_builtins(fixture_path: None) -> None:
    pm = get_plugin_manager(load_entry_points=False)
    assert third_party_failures(pm) == {}
    assert {name for name, _ in pm.list_name_plugin()} <= set(BUILTIN_PLUGINS)


def test_builtins_come_through_the_same_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTID_LOAD_PLUGINS", "")
    pm = get_plugin_manager()
    assert [failure for failure in pm.failures if failure.name in BUILTIN_PLUGINS] == []
    rows = pm.describe()
    assert {row["name"] for row in rows} == set(BUILTIN_PLUGINS)
    assert all(row["builtin"] and row["dist"] == "ctid" for row in rows)
    assert "generic" in {name for row in rows for name in row["connectors"]}
    assert "directory" in {name for row in rows for name in row["crms"]}
    assert "generic" in pm.connector_classes() and "directory" in pm.crm_classes()
    assert [row for row in pm.describe(all=True) if row["builtin"]] == rows


def _connector(name: str) -> type[Connector]:
    return type(f"Connector_{name}", (Connector,), {"plugin_name": name, "Config": ConnectorConfig})


def _plugin(**hooks: object) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{name: ctid.hookimpl(function) for name, function in hooks.items()})


def test_registration_garbage_is_a_failure_of_that_plugin() -> None:
    first = _connector("dup")

    def crash() -> list:
        raise KeyError("oops")

    pm = CtidPluginManager()
    pm.register(_plugin(ctid_register_connectors=lambda: [first]), name="first")
    pm.register(_plugin(ctid_register_connectors=lambda: [_connector("dup")]), name="second")
    pm.register(_plugin(ctid_register_connectors=crash), name="crasher")
    pm.register(_plugin(ctid_register_crms=lambda: "directory"), name="stringy")
    pm.register(_plugin(ctid_register_crms=lambda: [_connector("wrong-kind")]), name="wrong-kind")
    nameless = type("Nameless", (CRMAdapter,), {})
    pm.register(_plugin(ctid_register_crms=lambda: [nameless]), name="nameless")
    bad_config = type("BadConfig", (Connector,), {"plugin_name": "bad-config", "Config": dict})
    pm.register(_plugin(ctid_register_connectors=lambda: [bad_config]), name="bad-config")
    pm.register(_plugin(ctid_register_connectors=lambda: None), name="nothing")

    assert pm.connector_classes() == {"dup": first}
    assert pm.crm_classes() == {}
    errors = {failure.name: failure.error for failure in pm.failures}
    assert errors == {
        "second": "ctid_register_connectors: TypeError: plugin_name 'dup' of Connector_dup is already registered",
        "crasher": "ctid_register_connectors: KeyError: 'oops'",
        "stringy": "ctid_register_crms: TypeError: returned str, expected a list of CRMAdapter subclasses",
        "wrong-kind": (
            "ctid_register_crms: TypeError: returned <class 'test_plugins.Connector_wrong-kind'>, "
            "which is not a CRMAdapter subclass"
        ),
        "nameless": "ctid_register_crms: TypeError: Nameless has no plugin_name",
        "bad-config": "ctid_register_connectors: TypeError: BadConfig.Config is not a ConnectorConfig subclass",
    }
    assert [row["name"] for row in pm.describe() if "error" not in row] == ["first", "nothing"]


def _config(connectors: dict, crm: dict | None = None) -> CtidConfig:
    return CtidConfig.model_validate({"connectors": connectors, "crm": crm})


def test_ensure_enabled_ok(fixture_path: None) -> None:
    pm = get_plugin_manager()
    pm.ensure_enabled_ok(_config({"a": {"plugin": "fixture-pbx", "secret": "x"}}))
    # a disabled instance of a failed plugin is not needed
    pm.ensure_enabled_ok(_config({"a": {"plugin": "broken-pbx", "enabled": "false"}}))

    with pytest.raises(PluginLoadError) as info:
        pm.ensure_enabled_ok(_config({"a": {"plugin": "broken-pbx"}}))
    assert str(info.value) == (
        "connectors.a.plugin: connector plugin 'broken-pbx' is unavailable: plugin 'broken-pbx' "
        "(ctid-broken-pbx 0.3.0) failed to load: RuntimeError: vendor SDK 'brokenpbx-sdk' is not installed"
    )
    # loaded settings are accepted too (the daemon checks again before it starts)
    settings = load_config_dict({"connectors": {"a": {"plugin": "fixture-pbx", "secret": "x"}}}, pm)
    pm.ensure_enabled_ok(settings)
    # a name no failed plugin obviously provides: every failure is a suspect
    with pytest.raises(PluginLoadError) as info:
        pm.ensure_enabled_ok(_config({}, crm={"plugin": "acme-crm"}))
    message = str(info.value)
    assert message.startswith("crm.plugin: unknown CRM plugin 'acme-crm'; these plugins failed to load")
    assert "'broken-pbx': RuntimeError" in message and "'garbage':" in message and "\n" not in message


def test_disabled_instance_of_a_failed_plugin_loads_with_a_warning(fixture_path: None) -> None:
    pm = get_plugin_manager()
    data = {
        "connectors": {"old": {"plugin": "broken-pbx", "enabled": False, "host": "pbx.local", "token": "t"}}
    }
    settings = load_config_dict(data, pm)
    assert settings.enabled_connectors() == {}
    assert settings.connectors["old"].plugin == "broken-pbx" and "old" not in settings.connector_types
    assert settings.warnings == [
        "connectors.old: disabled, and its plugin 'broken-pbx' is unavailable; not validated"
    ]
    data["connectors"]["old"]["enabled"] = True
    with pytest.raises(PluginLoadError):
        load_config_dict(data, pm)


def test_unknown_plugin_without_failures_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTID_LOAD_PLUGINS", "")
    pm = get_plugin_manager()
    with pytest.raises(ConfigError) as info:
        pm.ensure_enabled_ok(_config({"office": {"plugin": "megafon-typo"}}))
    assert info.value.path == "connectors.office.plugin"
    assert "unknown connector plugin 'megafon-typo'" in str(info.value)


# -- end to end, in a subprocess with the fixture distributions on PYTHONPATH ---------------------------


def run_ctid(*args: str, cwd: Path, load: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "CTID_LOAD_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FIXTURE_PLUGINS), env.get("PYTHONPATH")]))
    if load is not None:
        env["CTID_LOAD_PLUGINS"] = load
    return subprocess.run(
        [sys.executable, "-m", "ctid", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_cli_reports_broken_plugins_and_still_works(tmp_path: Path) -> None:
    result = run_ctid("plugins", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) >= THIRD_PARTY | set(BUILTIN_PLUGINS)  # built-ins are listed without --all
    assert rows["ctid.builtins.generic"]["builtin"] is True and rows["fixture-pbx"]["builtin"] is False
    assert rows["ctid.builtins.generic"]["connectors"] == ["generic"]
    assert rows["ctid.builtins.directory"]["crms"] == ["directory"]
    assert rows["broken-pbx"]["error"] == "RuntimeError: vendor SDK 'brokenpbx-sdk' is not installed"
    assert rows["fixture-pbx"]["connectors"] == ["fixture-pbx"] and rows["fixture-pbx"]["version"] == "1.2.0"
    assert rows["fixture-pbx"]["hooks"] == [
        "ctid_call_event",
        "ctid_register_connectors",
        "ctid_register_crms",
    ]

    table = run_ctid("plugins", cwd=tmp_path)
    assert table.returncode == 0
    assert "FAILED: RuntimeError: vendor SDK 'brokenpbx-sdk' is not installed" in table.stdout
    assert "ctid.builtins.generic (built-in)" in table.stdout

    only_builtins = run_ctid("plugins", "--json", cwd=tmp_path, load="")
    assert only_builtins.returncode == 0, only_builtins.stderr
    assert {row["name"] for row in json.loads(only_builtins.stdout)} == set(BUILTIN_PLUGINS)
    everything = run_ctid("plugins", "--json", "--all", cwd=tmp_path, load="")
    assert everything.returncode == 0, everything.stderr
    rows = {row["name"]: row for row in json.loads(everything.stdout)}
    assert {name for row in rows.values() if row["builtin"] for name in row["connectors"]} >= {"generic"}
    assert {name for row in rows.values() if row["builtin"] for name in row["crms"]} >= {"directory"}
    assert rows["broken-pbx"]["skipped"] == "not in CTID_LOAD_PLUGINS" and "error" not in rows["broken-pbx"]
    skipped_table = run_ctid("plugins", "--all", cwd=tmp_path, load="fixture-pbx")
    assert "skipped: not in CTID_LOAD_PLUGINS" in skipped_table.stdout
    assert "--all" in run_ctid("plugins", "--help", cwd=tmp_path).stdout

    config = tmp_path / "ctid.yaml"
    config.write_text("connectors:\n  p1:\n    plugin: fixture-pbx\n    secret: abc\n")
    check = run_ctid("config", "check", str(config), cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert check.stdout == f"ok: {config} (0 agents, 1 connectors, crm: none)\n"
    assert "ctid: warning: plugin 'broken-pbx' failed to load" in check.stderr

    config.write_text(
        "connectors:\n  p1:\n    plugin: fixture-pbx\n    secret: abc\n  old:\n    plugin: broken-pbx\n"
    )
    needed = run_ctid("config", "check", str(config), cwd=tmp_path)
    assert needed.returncode == 3
    assert needed.stdout == ""
    assert needed.stderr.splitlines()[-1] == (
        f"ctid: error: {config}:6: connectors.old.plugin: connector plugin 'broken-pbx' is unavailable: "
        "plugin 'broken-pbx' (ctid-broken-pbx 0.3.0) failed to load: "
        "RuntimeError: vendor SDK 'brokenpbx-sdk' is not installed"
    )
    assert "Traceback" not in needed.stderr

    skipped = run_ctid("config", "check", str(config), cwd=tmp_path, load="fixture-pbx")
    assert skipped.returncode == 2  # not loaded on purpose: simply an unknown plugin name
    assert "connectors.old.plugin: unknown connector plugin 'broken-pbx'" in skipped.stderr
