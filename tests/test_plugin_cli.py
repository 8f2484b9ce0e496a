"""ctid.plugin_cli: what a plugin's own sub-command uses to pick its connector instance from the
configuration, build that connector for a one-shot job, and report errors as one line."""

from __future__ import annotations

import json

import pytest
import typer
import yaml

from ctid.errors import ConfigError, RequestError
from ctid.plugin_cli import command_connector, connector_instance, echo_import, exit_on_error
from ctid.testing.kit import base_config


def _write(tmp_path, connectors: dict) -> object:
    config = base_config(tmp_path)
    config["connectors"] = connectors
    path = tmp_path / "ctid.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_only_instance_of_the_plugin_is_chosen(tmp_path) -> None:
    path = _write(tmp_path, {"office": {"plugin": "generic", "secret": "secret-0123456789"}})
    name, config, settings = connector_instance(path, "generic")
    assert name == "office" and config.plugin == "generic" and settings.connectors["office"] is config
    assert connector_instance(path, "generic", "office")[0] == "office"


def test_an_instance_must_be_named_among_several_and_be_the_plugins(tmp_path) -> None:
    path = _write(tmp_path, {"b": {"plugin": "generic", "secret": "secret-0123456789"},
                             "a": {"plugin": "generic", "secret": "secret-0123456789"}})
    with pytest.raises(RequestError, match=r"name the instance with --connector \(generic instances: a, b\)") as many:
        connector_instance(path, "generic")
    assert many.value.error_id == "bad_connector"
    with pytest.raises(RequestError, match=r"'c' is not a generic connector instance \(have: a, b\)"):
        connector_instance(path, "generic", "c")
    with pytest.raises(RequestError, match=r"\(megafon instances: none\)"):
        connector_instance(path, "megafon")
    with pytest.raises(ConfigError):
        connector_instance(tmp_path / "missing.yaml", "generic")


async def test_command_connector_builds_the_configured_class_with_the_agents(tmp_path) -> None:
    path = _write(tmp_path, {"office": {"plugin": "generic", "secret": "secret-0123456789"}})
    _, _, settings = connector_instance(path, "generic")
    async with command_connector(path, "generic") as connector:
        assert type(connector) is settings.connector_types["office"] and connector.name == "office"
        assert connector.services.directory.get("alice").extension == "101"
        assert connector.services.data_dir == settings.core.data_dir


def test_exit_on_error_prints_one_line_and_exits_with_the_errors_code(capsys) -> None:
    with pytest.raises(typer.Exit) as stopped, exit_on_error("ctid-mypbx"):
        raise RequestError("no such thing", error_id="bad_thing")
    assert stopped.value.exit_code == RequestError("x").exit_code
    assert capsys.readouterr().err == "ctid-mypbx: error: no such thing\n"
    with pytest.raises(ValueError), exit_on_error("ctid-mypbx"):  # only ctid's errors are turned into lines
        raise ValueError("a bug")
    with exit_on_error("ctid-mypbx"):
        pass
    assert capsys.readouterr().err == ""


def test_echo_import_prints_json_or_a_summary_and_the_agents_block(capsys) -> None:
    data = {"instance": "pbx", "users": [{"login": "anna"}], "agents": {"anna": {"name": "Анна", "pbx": {"pbx": "anna"}}}}
    echo_import(data, "1 users on pbx", as_json=True)
    assert json.loads(capsys.readouterr().out) == data
    echo_import(data, "1 users on pbx", as_json=False)
    out = capsys.readouterr().out
    assert out.startswith("# 1 users on pbx\nagents:\n") and "Анна" in out
    assert yaml.safe_load(out) == {"agents": data["agents"]}
