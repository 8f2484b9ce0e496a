"""Plugins add `ctid <name> ...` commands through the `ctid.commands` entry-point group, without
slowing the core's commands (plugins are looked up only for a name the core does not know)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ctid.cli import _CORE_COMMANDS, _register, app

FIXTURE_PLUGINS = Path(__file__).parent / "fixtures" / "plugins"


def run_ctid(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FIXTURE_PLUGINS), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "ctid", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_a_plugin_command_runs_with_its_arguments():
    result = run_ctid("fixture-cmd", "hello", "--name", "operator")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello operator from a plugin command"
    usage = run_ctid("fixture-cmd", "--help")
    assert usage.returncode == 0 and "ctid fixture-cmd" in usage.stdout and "hello" in usage.stdout


def test_a_broken_plugin_command_is_one_line_and_exit_3():
    result = run_ctid("broken-cmd", "anything")
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1 and "'broken-cmd' command of a plugin failed to load" in result.stderr


def test_unknown_commands_are_still_usage_errors():
    result = run_ctid("no-such-command")
    assert result.returncode == 2 and "No such command" in result.stderr


def test_the_core_command_list_matches_the_app():
    import typer.main

    _register()
    assert set(typer.main.get_command(app).commands) == set(_CORE_COMMANDS)
