"""`ctid comagic ...` reaches the plugin's commands through the `ctid.commands` entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from comagic_kit import BODY_SECRET, PATH_SECRET
from ctid_comagic.templates import KINDS, VARIABLES, template


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ctid", "comagic", *args], capture_output=True, text=True,
                          timeout=60)


def test_templates_are_printed_with_the_instance_url_and_secret(tmp_path):
    path = tmp_path / "ctid.yaml"
    path.write_text(yaml.safe_dump({
        "server": {"public_url": "https://ctid.example.com"},
        "connectors": {"cm": {"plugin": "comagic", "api_key": "k" * 20, "webhook_secret": PATH_SECRET,
                              "body_secret": BODY_SECRET}},
    }))
    result = run("templates", "-c", str(path), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert list(data) == list(KINDS)
    assert {d["url"] for d in data.values()} == {f"https://ctid.example.com/hooks/cm/{PATH_SECRET}"}
    assert data["waiting"]["body"] == template("waiting", BODY_SECRET)
    assert data["waiting"]["event"] == ["Ожидание ответа", "Waiting for the answer"]
    assert all("{{" + name + "}}" in data[kind]["body"] for kind in KINDS for name in VARIABLES[kind])
    plain = run("templates")
    assert plain.returncode == 0 and "## talk_started: Начало разговора / Talk started" in plain.stdout


def test_help_lists_the_commands_and_errors_are_one_line():
    result = run("--help")
    assert result.returncode == 0, result.stderr
    assert "import-users" in result.stdout and "templates" in result.stdout
    missing = run("import-users", "-c", "/nonexistent.yaml")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


def test_the_readme_ships_every_template_as_the_command_prints_it():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for kind in KINDS:
        assert f"```json\n{template(kind)}\n```" in readme, kind
