"""The Dynamics adapter passes ctid's CRM conformance suite (ctid.testing.conformance) against the
fake organization served over https."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ctid.testing.conformance import CRMConformance


class TestDynamicsConformance(CRMConformance):
    plugin_name = "dynamics"
    known_phone = "+74951234567"  # Jane Doe, typed "8 (495) 123-45-67" in the fake
    unknown_phone = "+74959990000"

    @pytest.fixture
    def crm_config(self, crm_config: Any) -> dict[str, Any]:  # conftest's factory of the crm section
        return crm_config()

    @pytest.fixture
    def ctid_config(self, ctid_base_config: dict[str, Any], crm_config: dict[str, Any], world: Any) -> dict[str, Any]:
        config = copy.deepcopy(ctid_base_config)
        config["crm"] = crm_config
        agents = config["agents"]
        agents["alice"]["crm_user"] = world.alice_user
        agents["bob"]["crm_user"] = "bob@contoso.example"
        # callback_task.group_managers names mary for the sales group (conftest.config_dict)
        agents["mary"] = {"name": "Mary Manager", "extension": "100", "groups": ["sales"],
                          "crm_user": world.manager_user}
        return config
