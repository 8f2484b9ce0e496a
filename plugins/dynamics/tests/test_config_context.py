"""`ctid config check` catches a group manager who is not a configured Dynamics user: the core
passes its agents to plugin config validators (ValidationInfo.context)."""

from __future__ import annotations

import pytest

from ctid.config.loader import load_config_dict
from ctid.errors import ConfigError
from ctid.plugins import get_plugin_manager


def config(managers, crm_user=None):
    agent = {"name": "Alice"} | ({"crm_user": crm_user} if crm_user else {})
    return {"agents": {"alice": agent},
            "crm": {"plugin": "dynamics", "url": "https://org.crm4.dynamics.com",
                    "auth": {"type": "client_credentials", "tenant": "t", "client_id": "c", "client_secret": "s"},
                    "callback_task": {"group_managers": managers}}}


@pytest.mark.parametrize(("managers", "crm_user", "message"), [
    ({"sales": "mary"}, None, "unknown agent 'mary'; the agents are alice"),
    ({"sales": "alice"}, None, "agent 'alice' has no crm_user"),
])
def test_bad_group_managers_are_config_errors(managers, crm_user, message):
    with pytest.raises(ConfigError) as info:
        load_config_dict(config(managers, crm_user), get_plugin_manager())
    assert info.value.path == "crm.callback_task.group_managers.sales"
    assert message in str(info.value)


def test_a_manager_with_a_crm_user_is_accepted():
    settings = load_config_dict(config({"sales": "alice"}, "alice@contoso.com"), get_plugin_manager())
    assert settings.crm.callback_task.group_managers == {"sales": "alice"}
