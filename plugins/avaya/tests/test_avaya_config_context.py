"""`ctid config check` refuses `extensions` / `hunt_groups` entries naming an agent or a group that is
not configured (the core passes its agents to plugin config validators as ValidationInfo.context)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctid.config.loader import load_config_dict
from ctid.errors import ConfigError
from ctid.plugins import get_plugin_manager
from ctid_avaya.config import AvayaConfig


def config(**mappings):
    return {"agents": {"anna": {"name": "Anna", "groups": ["sales"]}, "boris": {"name": "Boris"}},
            "connectors": {"ipo": {"plugin": "avaya", "host": "10.0.0.1", **mappings}}}


@pytest.mark.parametrize(("mappings", "path", "message"), [
    ({"extensions": {"299": "ghost"}}, "connectors.ipo.extensions.299",
     "unknown agent 'ghost'; the agents are anna, boris"),
    ({"extensions": {"201": "anna", "202": "vera"}}, "connectors.ipo.extensions.202", "unknown agent 'vera'"),
    ({"hunt_groups": {"200": "nogroup"}}, "connectors.ipo.hunt_groups.200",
     "unknown group 'nogroup' (no agent lists it in groups); the groups are sales"),
])
def test_a_mapping_to_nothing_is_a_config_error_with_its_path(mappings, path, message):
    with pytest.raises(ConfigError) as info:
        load_config_dict(config(**mappings), get_plugin_manager())
    assert info.value.path == path
    assert message in str(info.value)


def test_mappings_to_configured_agents_and_groups_are_accepted():
    settings = load_config_dict(config(extensions={"201": "anna", "202": "boris"},
                                       hunt_groups={"200": "sales", "Sales": "sales"}), get_plugin_manager())
    assert settings.connectors["ipo"].hunt_groups == {"200": "sales", "Sales": "sales"}


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8), max_size=4),
       st.dictionaries(st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8), max_size=4))
def test_without_the_context_any_mapping_validates_on_its_own(extensions, hunt_groups):
    model = AvayaConfig.model_validate({"host": "10.0.0.1", "extensions": extensions, "hunt_groups": hunt_groups})
    assert (model.extensions, model.hunt_groups) == (extensions, hunt_groups)


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.sampled_from(["anna", "boris", "x", ""]), max_size=4))
def test_with_the_context_an_extension_passes_exactly_when_its_agent_exists(extensions):
    agents = config()["agents"]
    try:
        load_config_dict(config(extensions=extensions), get_plugin_manager())
    except ConfigError as exc:
        assert any(agent not in agents for agent in extensions.values()), exc
    else:
        assert all(agent in agents for agent in extensions.values())
