"""`ctid config check|show|schema` and `ctid auth hash-password` through the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from ctid.auth_hash import hash_password, looks_like_hash, verify_password
from ctid.cli import auth_cmd, config_cmd, plugins_cmd

HASH = hash_password("alice-password")
SECRETS = ("generic-secret-0001", "0123456789abcdef-api-key", "db-password-42", HASH)

CONFIG = f"""
database:
  url: postgresql+psycopg://ctid:${{DB_PASSWORD}}@127.0.0.1:5432/ctid
auth:
  users:
    - username: alice
      password_hash: '{HASH}'
      agent: alice
  api_keys:
    - name: launcher
      key: ${{API_KEY}}
agents:
  alice:
    name: Alice
    extension: "101"
  bob:
    name: Bob
connectors:
  office:
    plugin: generic
    secret: ${{GENERIC_SECRET}}
crm:
  plugin: directory
"""


@pytest.fixture
def app() -> typer.Typer:
    """A ctid app with just the commands under test (the real one registers the others too)."""
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """ctid."""

    for module in (plugins_cmd, config_cmd, auth_cmd):
        module.register(app)
    return app


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTID_LOAD_PLUGINS", "")  # built-ins only, whatever else is installed
    monkeypatch.setenv("GENERIC_SECRET", SECRETS[0])
    monkeypatch.setenv("API_KEY", SECRETS[1])
    monkeypatch.setenv("DB_PASSWORD", SECRETS[2])


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "ctid.yaml"
    path.write_text(CONFIG.lstrip(), encoding="utf-8")
    return path


def test_check_ok(app: typer.Typer, env: None, config: Path) -> None:
    result = CliRunner().invoke(app, ["config", "check", str(config)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"ok: {config} (2 agents, 1 connectors, crm: directory)\n"
    assert result.stderr == ""


def test_check_counts_conf_d_files(app: typer.Typer, env: None, config: Path) -> None:
    (config.parent / "conf.d").mkdir()
    (config.parent / "conf.d" / "local.yaml").write_text("log:\n  level: debug\n")
    result = CliRunner().invoke(app, ["config", "check", str(config)])
    assert result.stdout == (
        f"ok: {config} (2 agents, 1 connectors, crm: directory)\nmerged: {config.parent / 'conf.d' / 'local.yaml'}\n"
    )


def test_check_error_is_one_line_exit_2(app: typer.Typer, env: None, config: Path) -> None:
    config.write_text(config.read_text().replace('extension: "101"', "extension: [101]"))
    result = CliRunner().invoke(app, ["config", "check", str(config)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert (
        result.stderr == f"ctid: error: {config}:14: agents.alice.extension: Input should be a valid string\n"
    )


def test_check_missing_env_and_missing_file(
    app: typer.Typer, env: None, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GENERIC_SECRET")
    result = CliRunner().invoke(app, ["config", "check", str(config)])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"ctid: error: {config}:20: connectors.office.secret: environment variable GENERIC_SECRET is not set"
    )
    result = CliRunner().invoke(app, ["config", "check", str(config.parent / "missing.yaml")])
    assert result.exit_code == 2
    assert result.stderr == f"ctid: error: {config.parent / 'missing.yaml'}: configuration file not found\n"


def test_show_redacts_yaml_and_json(app: typer.Typer, env: None, config: Path) -> None:
    shown = CliRunner().invoke(app, ["config", "show", str(config)])
    assert shown.exit_code == 0, shown.output
    for secret in SECRETS:
        assert secret not in shown.output
    assert shown.stdout.startswith(f"# effective configuration from {config} (defaults included")
    data = yaml.safe_load(shown.stdout)
    assert data["connectors"]["office"]["secret"] == "***"
    assert data["connectors"]["office"]["signature_header"] == "X-Ctid-Signature"  # defaults are shown
    assert data["auth"]["users"][0]["password_hash"] == "***"
    assert data["auth"]["api_keys"][0]["key"] == "***"
    assert data["database"]["url"] == "postgresql+psycopg://ctid:***@127.0.0.1:5432/ctid"
    assert data["crm"]["plugin"] == "directory"

    as_json = CliRunner().invoke(app, ["config", "show", "--json", str(config)])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == data
    for secret in SECRETS:
        assert secret not in as_json.output


def test_schema_is_json_with_plugin_sections(app: typer.Typer, env: None) -> None:
    result = CliRunner().invoke(app, ["config", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "secret" in schema["$defs"]["connector__generic"]["properties"]
    assert schema["$defs"]["crm__directory"]["properties"]["plugin"]["const"] == "directory"


def test_hash_password_from_stdin(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["auth", "hash-password", "--password-stdin"], input="s3cret pass\n")
    assert result.exit_code == 0, result.output
    printed = result.stdout.strip()
    assert looks_like_hash(printed) and printed.startswith("scrypt:")
    assert verify_password("s3cret pass", printed)
    assert not verify_password("s3cret pass\n", printed) and not verify_password("other", printed)


def test_hash_password_prompts_twice(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["auth", "hash-password"], input="one\ntwo\npw-123\npw-123\n")
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    assert "pw-123" not in result.output  # hidden input is not echoed
    assert verify_password("pw-123", result.stdout.strip().splitlines()[-1])


def test_hash_password_refuses_empty(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["auth", "hash-password", "--password-stdin"], input="\n")
    assert result.exit_code == 2
    assert result.stderr == "ctid: error: the password is empty\n"


def test_verify_password_never_raises() -> None:
    assert verify_password("x", "not a hash") is False
    assert verify_password("x", "scrypt:1:1:1$salt$zz") is False
    assert verify_password("", HASH) is False


def test_commands_import_nothing_heavy() -> None:
    """Registering these commands must not import pydantic, yaml or the plugins (``ctid --help`` stays fast)."""
    code = (
        "import sys, typer\n"
        "from ctid.cli import auth_cmd, config_cmd, plugins_cmd\n"
        "app = typer.Typer()\n"
        "[m.register(app) for m in (auth_cmd, config_cmd, plugins_cmd)]\n"
        "heavy = ['pydantic', 'yaml', 'werkzeug', 'ctid.plugins', 'ctid.config.loader']\n"
        "print([name for name in heavy if name in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_show_in_a_real_process_leaks_nothing(config: Path) -> None:
    env = dict(
        os.environ,
        CTID_LOAD_PLUGINS="",
        GENERIC_SECRET=SECRETS[0],
        API_KEY=SECRETS[1],
        DB_PASSWORD=SECRETS[2],
    )
    result = subprocess.run(
        [sys.executable, "-m", "ctid", "config", "show", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "secret: '***'" in result.stdout
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr


def test_help_renders_without_rich() -> None:
    """``ctid --help`` (budget 300 ms) prints click's plain help: typer's rich panels import
    rich.markdown and pygments, ~130 ms of a 2-core machine's startup."""
    code = (
        "import sys\n"
        "from ctid.cli import main\n"
        "sys.argv = ['ctid', '--help']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print([name for name in ('rich.markdown', 'pygments', 'pydantic', 'sqlalchemy', 'trio') if name in sys.modules],"
        " file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "Usage: ctid [OPTIONS] COMMAND" in result.stdout
    assert "serve" in result.stdout and "simulate-call" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "[]"
