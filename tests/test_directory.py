"""The static agent directory: agents from config, PBX login mapping per connector instance."""

from __future__ import annotations

import pytest

from ctid.config.models import AgentConfig, CtidConfig
from ctid.directory import StaticDirectory
from ctid.errors import ConfigError


def make() -> StaticDirectory:
    return StaticDirectory(
        {
            "anna": AgentConfig(name="Anna", extension="101", groups=["sales"], crm_user="u-anna"),
            "boris": AgentConfig(name="Boris", extension="102", pbx={"mf": "Boris.MF", "avaya": "202"}),
            "vera": AgentConfig(name="Vera", pbx={"mf": "vera"}),
        }
    )


def test_agents_come_from_config_in_id_order_as_fresh_objects():
    directory = make()
    agents = directory.agents()
    assert [a.id for a in agents] == ["anna", "boris", "vera"]
    anna = agents[0]
    assert (anna.name, anna.extension, anna.groups, anna.crm_user, anna.status.value) == (
        "Anna",
        "101",
        ["sales"],
        "u-anna",
        "offline",
    )
    anna.groups.append("changed")
    assert directory.get("anna").groups == ["sales"] and directory.get("nobody") is None


def test_explicit_login_wins_and_extension_is_the_fallback():
    directory = make()
    assert directory.agent_for_login("mf", "101") == "anna"  # no mf login: extension
    assert directory.agent_for_login("mf", "boris.mf") == "boris"  # case-insensitive
    assert directory.agent_for_login("mf", " BORIS.MF ") == "boris"
    assert directory.agent_for_login("mf", "102") is None  # boris has an explicit mf login
    assert directory.agent_for_login("other", "102") == "boris"  # other instances: extension
    assert directory.agent_for_login("avaya", "202") == "boris"
    assert directory.agent_for_login("mf", "vera") == "vera"
    assert directory.agent_for_login("avaya", "vera") is None
    assert directory.agent_for_login("mf", "") is None


def test_login_for_agent_and_crm_user():
    directory = make()
    assert directory.login_for_agent("mf", "boris") == "Boris.MF"
    assert directory.login_for_agent("comagic", "boris") == "102"
    assert directory.login_for_agent("mf", "anna") == "101"
    assert directory.login_for_agent("comagic", "vera") is None
    assert directory.login_for_agent("mf", "nobody") is None
    assert directory.agent_for_crm_user("u-anna") == "anna"
    assert directory.agent_for_crm_user("u-x") is None


def test_duplicate_logins_are_config_errors_with_their_path():
    with pytest.raises(ConfigError) as excinfo:
        StaticDirectory(
            {"a": AgentConfig(name="A", extension="101"), "b": AgentConfig(name="B", extension=101)}
        )
    assert excinfo.value.path == "agents.b.extension" and "'a'" in str(excinfo.value)
    with pytest.raises(ConfigError) as excinfo:
        StaticDirectory(
            {"a": AgentConfig(name="A", pbx={"mf": "x"}), "b": AgentConfig(name="B", pbx={"mf": "X"})}
        )
    assert excinfo.value.path == "agents.b.pbx.mf"


def test_explicit_login_wins_over_another_agents_extension():
    directory = StaticDirectory(
        {"a": AgentConfig(name="A", extension="101"), "b": AgentConfig(name="B", pbx={"mf": "101"})}
    )
    assert directory.agent_for_login("mf", "101") == "b"
    assert directory.agent_for_login("avaya", "101") == "a"


def test_from_config():
    config = CtidConfig.model_validate(
        {"connectors": {"mf": {"plugin": "megafon"}}, "agents": {"anna": {"name": "Anna", "pbx": {"mf": 55}}}}
    )
    directory = StaticDirectory.from_config(config)
    assert directory.agent_for_login("mf", "55") == "anna"
