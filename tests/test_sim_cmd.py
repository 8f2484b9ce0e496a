"""`ctid simulate-call --dry-run`: the transfer target defaults to a colleague; traffic ends now."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from ctid.cli import sim_cmd

CONFIG = {
    "agents": {
        "alice": {"name": "Alice", "extension": "101", "groups": ["sales"]},
        "bob": {"name": "Bob", "extension": "102", "groups": ["support"]},
        "carol": {"name": "Carol", "extension": "103", "groups": ["sales"]},
        "dave": {"name": "Dave", "extension": "104"},
        "erin": {"name": "Erin", "groups": ["sales"]},  # no login on any connector
    },
    "connectors": {"office": {"plugin": "generic", "secret": "generic-secret-0001"}},
}


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("CTID_LOAD_PLUGINS", "")
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """ctid."""

    sim_cmd.register(app)
    return app


def dry_run(app: typer.Typer, config: dict, tmp_path: Path, *args: str):
    path = tmp_path / "ctid.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["simulate-call", "--config", str(path), "--connector", "office",
                                      "--from", "+79161234567", "--dry-run", *args])
    bodies = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result, bodies


@pytest.mark.parametrize(
    ("agent", "target"),
    [("alice", "103"), ("carol", "101"), ("bob", "101"), ("dave", "101")],  # same group first, else anyone
)
def test_transfer_target_defaults_to_a_colleague(app, tmp_path, agent, target) -> None:
    result, bodies = dry_run(app, CONFIG, tmp_path, "--scenario", "transfer", "--to", agent)
    assert result.exit_code == 0, result.output
    [transfer] = [body for body in bodies if body["event"] == "transfer"]
    assert transfer["target"] == target and bodies[-1]["agent"] == target


def test_transfer_to_is_still_honoured_and_a_lone_agent_is_a_clear_error(app, tmp_path) -> None:
    result, bodies = dry_run(app, CONFIG, tmp_path, "--scenario", "transfer", "--to", "alice",
                             "--transfer-to", "dave")
    assert result.exit_code == 0, result.output
    assert [body["target"] for body in bodies if body["event"] == "transfer"] == ["104"]

    alone = {**CONFIG, "agents": {"alice": CONFIG["agents"]["alice"], "erin": CONFIG["agents"]["erin"]}}
    result, _ = dry_run(app, alone, tmp_path, "--scenario", "transfer", "--to", "alice")
    assert result.exit_code == 2
    assert "no other agent with a login on 'office'" in result.output and "--transfer-to" in result.output


@pytest.mark.parametrize(("scenario", "length"), [("transfer", 94), ("group", 95), ("missed", 25)])
def test_simulated_traffic_ends_now(app, tmp_path, scenario, length) -> None:
    before = datetime.now(UTC)
    result, bodies = dry_run(app, CONFIG, tmp_path, "--scenario", scenario, "--to", "alice")
    after = datetime.now(UTC)
    assert result.exit_code == 0, result.output
    times = [datetime.fromisoformat(body["timestamp"]) for body in bodies]
    assert times == sorted(times)
    assert before - timedelta(seconds=1) <= times[-1] <= after  # not up to 95 s in the future
    assert times[-1] - times[0] == timedelta(seconds=length)  # durations unchanged
