"""The conformance suite can fail: a deliberately broken connector run through it in a pytest
subprocess fails exactly the checks it breaks (a suite that always passes would prove nothing)."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

BROKEN = '''
import types
import pytest
import ctid
from ctid.connector import Connector, ConnectorConfig, Health, WebhookResult
from ctid.model import Capability
from ctid.testing.conformance import ConnectorConformance


class BrokenPBX(Connector):
    plugin_name = "broken-pbx"
    Config = ConnectorConfig
    accepts_webhooks = True
    capabilities = frozenset({Capability.DIAL})

    async def handle_webhook(self, request):
        return WebhookResult(status=200, body={"ok": True})  # takes anything, even garbage

    async def dial(self, agent_login, number):
        return 42  # not a PBX call id

    async def health(self):
        return Health(ok=False, detail="never configured")


class TestBroken(ConnectorConformance):
    plugin_name = "broken-pbx"

    @pytest.fixture
    def ctid_plugins(self):
        return [types.SimpleNamespace(ctid_register_connectors=ctid.hookimpl(lambda: [BrokenPBX]))]

    @pytest.fixture
    def connector_config(self):
        return {"plugin": "broken-pbx"}

    def with_wrong_secret(self, request):
        return request
'''


def test_a_broken_connector_fails_the_checks_it_breaks(tmp_path):
    (tmp_path / "test_broken.py").write_text(BROKEN)
    report = tmp_path / "report.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "trio_mode=true",
         "--rootdir", str(tmp_path), f"--junitxml={report}", str(tmp_path / "test_broken.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    outcome = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        outcome[case.get("name")] = "failed" if failed else "passed"
    assert outcome == {
        "test_plugin_is_installed_and_keeps_the_contract": "failed",  # not an installed entry point
        "test_declared_capabilities_work_and_undeclared_ones_fail": "failed",  # dial returned 42
        "test_simulate_drives_every_scenario_to_ended_calls": "passed",  # claims none, simulate refuses
        "test_health_answers": "failed",
        "test_bad_webhooks_get_4xx_and_store_nothing": "failed",  # garbage answered 200
    }
