"""The plugin template renders (copier's Python API) into ruff-clean code that declares today's contract.

scripts/template-check goes further: it installs a generated plugin and runs its own tests, ctid's
connector conformance suite among them.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from copier import run_copy

import ctid
from ctid.connector import Connector, contract_problems
from ctid.model import Capability

TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "plugin"
LAYOUT = ["plugin.py", "config.py", "client.py", "events.py", "connector.py", "simulate.py",
          "testing/fake_pbx.py"]


def render(dest: Path, **data: str) -> Path:
    run_copy(str(TEMPLATE), dest, data={"plugin_name": "tplpbx", "pbx_name": "Tpl PBX", **data},
             defaults=True, quiet=True, unsafe=True)
    return dest


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    return render(tmp_path_factory.mktemp("plugin") / "ctid-tplpbx")


def test_layout_and_entry_point(generated: Path) -> None:
    for name in LAYOUT:
        assert (generated / "ctid_tplpbx" / name).is_file(), name
    assert sorted(p.name for p in (generated / "tests").glob("test_*.py")) == [
        "test_client.py", "test_config.py", "test_conformance.py", "test_daemon.py", "test_events.py"]
    project = tomllib.loads((generated / "pyproject.toml").read_text())
    assert project["project"]["name"] == "ctid-tplpbx"
    assert project["project"]["entry-points"]["ctid"] == {"tplpbx": "ctid_tplpbx.plugin"}
    assert "ctid>=0.1" in project["project"]["dependencies"]
    answers = (generated / ".copier-answers.yml").read_text()
    assert "plugin_name: tplpbx" in answers and "_src_path:" in answers
    assert "{{" not in "".join(p.read_text() for p in generated.rglob("*") if p.is_file())


def test_generated_code_is_ruff_clean(generated: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=generated,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_connector_keeps_the_contract(generated: Path, monkeypatch) -> None:
    """Importable as rendered, declares ctid's current contract version, implements what it declares."""
    monkeypatch.syspath_prepend(str(generated))
    try:
        plugin = importlib.import_module("ctid_tplpbx.plugin")
        assert plugin.CTID_CONTRACT == ctid.CONTRACT_VERSION
        [cls] = plugin.ctid_register_connectors()
        assert issubclass(cls, Connector) and cls.plugin_name == "tplpbx"
        config = cls.Config.model_validate({"plugin": "tplpbx", "webhook_token": "t" * 16,
                                            "api_url": "http://pbx.test/api", "api_key": "k" * 16})
        connector = cls("office", config, services=None)
        assert connector.capabilities == {Capability.DIAL, Capability.HANGUP}
        assert contract_problems(connector) == [] and contract_problems(cls) == []
    finally:
        for name in [n for n in sys.modules if n == "ctid_tplpbx" or n.startswith("ctid_tplpbx.")]:
            del sys.modules[name]


@pytest.mark.parametrize("bad", ["Acme", "1pbx", "a", "acme-pbx", "x" * 40])
def test_bad_plugin_names_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="lower-case letters"):
        render(tmp_path / "out", plugin_name=bad)
    assert not (tmp_path / "out" / "pyproject.toml").exists()


@pytest.mark.parametrize("bad", ['Acme "Cloud"', "", "Back\\slash"])
def test_bad_pbx_names_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="Python strings"):
        render(tmp_path / "out", pbx_name=bad)


def test_names_follow_the_plugin_name(tmp_path: Path) -> None:
    out = render(tmp_path / "out", plugin_name="big_pbx", pbx_name="Big PBX (R&D) 2.0",
                 description='A "quoted" \\ description', author_name='O"Brien')
    project = tomllib.loads((out / "pyproject.toml").read_text())
    assert project["project"]["description"] == 'A "quoted" \\ description'
    assert project["project"]["authors"] == [{"name": 'O"Brien'}]
    compile((out / "ctid_big_pbx" / "__init__.py").read_text(), "__init__.py", "exec")
    for module in (out / "ctid_big_pbx").rglob("*.py"):
        compile(module.read_text(), str(module), "exec")
    assert (out / "ctid_big_pbx" / "connector.py").read_text().count("class BigPbxConnector(Connector)") == 1
    assert project["project"]["name"] == "ctid-big-pbx"
