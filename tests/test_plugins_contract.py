"""The versioned plugin contract: a plugin declares CTID_CONTRACT, ctid checks it at load and
`ctid plugins` shows a mismatch as a failure naming the plugin and both versions; base-class
defaults fail loudly (capability_missing) instead of silently succeeding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ctid
from ctid.connector import Connector, ConnectorConfig, contract_problems
from ctid.crm import CRMAdapter, CRMConfig, CRMFact
from ctid.errors import CapabilityError, PluginError, PluginLoadError
from ctid.model import Capability
from ctid.plugins import CtidPluginManager, check_contract
from ctid.services import Services


def declaring(version: object) -> type:
    return type("Module", (), {} if version is None else {"CTID_CONTRACT": version})


@given(major=st.integers(0, 5), minor=st.integers(0, 12))
def test_a_version_loads_when_the_major_is_ctids_and_the_minor_not_newer(major, minor):
    core_major, core_minor = (int(part) for part in ctid.CONTRACT_VERSION.split("."))
    version = f"{major}.{minor}"
    if major == core_major and minor <= core_minor:
        assert check_contract(declaring(version), "p") == version
    else:
        with pytest.raises(PluginLoadError) as info:
            check_contract(declaring(version), "p")
        message = str(info.value)
        assert "'p'" in message and version in message and ctid.CONTRACT_VERSION in message


@pytest.mark.parametrize("declared", [None, "2", "two", 2.0, "2.0.1", ""])
def test_a_missing_or_malformed_version_is_refused(declared):
    with pytest.raises(PluginLoadError, match=f"plugin 'p'.*{ctid.CONTRACT_VERSION}"):
        check_contract(declaring(declared), "p")


def _distribution(root, name: str, body: str) -> None:
    package = root / f"ctid_{name}"
    package.mkdir()
    (package / "__init__.py").write_text(body)
    info = root / f"ctid_{name}-0.2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: ctid-{name}\nVersion: 0.2.0\n")
    (info / "entry_points.txt").write_text(f"[ctid]\n{name} = ctid_{name}\n")


def test_ctid_plugins_shows_a_contract_mismatch_as_a_failure(tmp_path):
    _distribution(tmp_path, "oldie", 'CTID_CONTRACT = "1.4"\n')
    _distribution(tmp_path, "future", 'CTID_CONTRACT = "2.99"\n')
    _distribution(tmp_path, "silent", "")
    _distribution(tmp_path, "current", f'CTID_CONTRACT = "{ctid.CONTRACT_VERSION}"\n')
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "CTID_LOAD_PLUGINS": "oldie,future,silent,current"}
    done = subprocess.run([sys.executable, "-m", "ctid", "plugins", "--json"], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows["oldie"]["error"] == (
        f"plugin 'oldie' needs plugin contract 1.4, but this ctid provides {ctid.CONTRACT_VERSION} (upgrade the plugin)")
    assert rows["future"]["error"] == (
        f"plugin 'future' needs plugin contract 2.99, but this ctid provides {ctid.CONTRACT_VERSION} (upgrade ctid)")
    assert "declares no contract version" in rows["silent"]["error"]
    assert "error" not in rows["current"] and rows["current"]["contract"] == ctid.CONTRACT_VERSION
    table = subprocess.run([sys.executable, "-m", "ctid", "plugins"], env=env, capture_output=True, text=True,
                           timeout=60, check=True).stdout
    assert "FAILED: plugin 'oldie' needs plugin contract 1.4, but this ctid provides" in table


def test_every_bundled_plugin_declares_the_current_contract():
    from ctid.plugins import get_plugin_manager

    rows = get_plugin_manager().describe()
    assert all("error" not in row for row in rows), [row for row in rows if "error" in row]
    assert {row["name"]: row["contract"] for row in rows if not row["builtin"]} and all(
        row["contract"] == ctid.CONTRACT_VERSION for row in rows)


# -- loud defaults ----------------------------------------------------------------------------------


class Lazy(Connector):
    plugin_name = "lazy"
    Config = ConnectorConfig
    capabilities = frozenset({Capability.DIAL, Capability.HOLD})

    async def hold(self, call, agent_login):
        return None  # unhold left to the base class


def test_a_declared_capability_without_its_method_is_refused_at_registration_and_instantiation():
    assert contract_problems(Lazy) == [
        "declares capability 'dial' but does not override dial()",
        "declares capability 'hold' but does not override unhold()",
    ]
    pm = CtidPluginManager()
    pm.register(type("P", (), {"ctid_register_connectors": ctid.hookimpl(lambda: [Lazy])}), name="lazy-plugin")
    assert "lazy" not in pm.connector_classes()
    [failure] = pm.failures
    assert failure.name == "lazy-plugin" and "does not override dial()" in failure.error
    with pytest.raises(PluginError, match=r"connector plugin 'lazy': declares capability 'dial'"):
        Lazy("pbx", ConnectorConfig(plugin="lazy"), Services(directory=None))


class Quiet(Connector):
    plugin_name = "quiet"
    Config = ConnectorConfig


@pytest.mark.parametrize(("method", "args", "capability"), [
    ("dial", ("101", "+74951234567"), "dial"), ("hold", (None, "101"), "hold"), ("unhold", (None, "101"), "hold"),
    ("transfer", (None, "101", "102"), "transfer"), ("hangup", (None, "101"), "hangup"),
    ("set_dnd", ("101", True), "dnd"), ("recording", (None,), "recordings"), ("history", (None,), "history"),
])
async def test_an_undeclared_connector_method_fails_loudly(method, args, capability):
    connector = Quiet("pbx", ConnectorConfig(plugin="quiet"), Services(directory=None))
    with pytest.raises(CapabilityError) as info:
        await getattr(connector, method)(*args)
    assert info.value.error_id == f"capability_missing:{capability}" and info.value.status == 409


class SilentCRM(CRMAdapter):
    plugin_name = "silent"


@pytest.mark.parametrize(("method", "args", "capability"), [
    ("lookup", ("+74951234567",), "lookup"), ("log_call", (None, None), "log_call"),
    ("create_callback_task", (None, None), "tasks"), ("close_callback_task", (None,), "tasks"),
    ("attach_recording", (None, "http://x"), "recordings"),
    ("sales_facts", (["+74951234567"], datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)),
     "sales_facts"),
])
async def test_an_undeclared_crm_method_fails_loudly(method, args, capability):
    crm = SilentCRM(CRMConfig(plugin="silent"), Services(directory=None))
    with pytest.raises(CapabilityError) as info:
        await getattr(crm, method)(*args)
    assert info.value.error_id == f"capability_missing:{capability}"


def test_a_crm_declaring_what_it_does_not_implement_or_unknown_names_is_refused():
    bad = type("Bad", (CRMAdapter,), {"plugin_name": "bad", "capabilities": frozenset({"sales_facts", "magic"})})
    assert contract_problems(bad) == [
        "unknown capability 'magic' (known: log_call, lookup, recordings, sales_facts, tasks)",
        "declares capability 'sales_facts' but does not override sales_facts()",
    ]
    with pytest.raises(PluginError, match="CRM plugin 'bad'"):
        bad(CRMConfig(plugin="bad"), Services(directory=None))


def test_crm_facts_serialise():
    fact = CRMFact("won", "opp-1", "+74951234567", datetime(2026, 3, 1, 12, tzinfo=UTC), 1500.0, "RUB", "Won")
    assert fact.to_json() == {"kind": "won", "record_id": "opp-1", "phone": "+74951234567",
                              "at": "2026-03-01T12:00:00+00:00", "amount": 1500.0, "currency": "RUB",
                              "stage": "Won", "owner": None}
