"""End to end through the real CLI: `ctid serve` in a subprocess, driven by `ctid simulate-call`,
checked through the REST API, then stopped with SIGTERM. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
import yaml

from ctid.testing.daemon import ServeProcess, free_port

from .conftest import API_KEY, make_config

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def ctid(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ctid", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def served(tmp_path, db_url):
    path = tmp_path / "ctid.yaml"
    port = free_port()  # in the configuration too: `ctid check` asks the ctid serving there
    path.write_text(yaml.safe_dump({**make_config(tmp_path, db_url=db_url), "server": {"listen": f"127.0.0.1:{port}"}}))
    server = ServeProcess(path, port=port)
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield path, server.url, server
    finally:
        server.kill()


def test_simulate_every_scenario_against_ctid_serve(served, tmp_path):
    path, url, server = served
    runs = [
        ("answered", "+79161234567", "alice", []),
        ("missed", "+79990001122", "alice", []),
        ("group", "+79161234567", "bob", []),
        ("transfer", "+79035550101", "alice", ["--transfer-to", "carol"]),
        ("hold", "+79161234567", "carol", []),
        ("outbound_no_answer", "+79035550102", "bob", []),
    ]
    for scenario, number, agent, extra in runs:
        done = ctid("simulate-call", "--config", str(path), "--connector", "office", "--scenario", scenario,
                    "--from", number, "--to", agent, "--url", url, *extra)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("200 POST /hooks/office") >= 2

    calls = httpx.get(f"{url}/api/calls", headers=HEADERS).json()["items"]
    by_scenario = {c["pbx_call_id"].split("-", 2)[-1]: c for c in calls}
    assert len(calls) == 6
    summary = {
        name: (c["state"], c["outcome"], c["agent"], c["wait_seconds"], c["talk_seconds"], c["hold_seconds"])
        for name, c in by_scenario.items()
    }
    assert summary == {
        "answered": ("ended", "answered", "alice", 7.0, 60.0, 0.0),
        "missed": ("ended", "missed", "alice", 25.0, None, 0.0),
        "group": ("ended", "answered", "bob", 5.0, 90.0, 0.0),
        "transfer": ("ended", "answered", "carol", 4.0, 90.0, 0.0),
        "hold": ("ended", "answered", "carol", 3.0, 45.0, 15.0),
        "outbound_no_answer": ("ended", "no_answer", "bob", 30.0, None, 0.0),
    }
    assert by_scenario["transfer"]["transferred_from"] == "alice"
    assert by_scenario["outbound_no_answer"]["direction"] == "outbound"
    tasks = httpx.get(f"{url}/api/tasks", params={"status": "open"}, headers=HEADERS).json()["items"]
    assert [(t["number"], t["missed_count"]) for t in tasks] == [("+79990001122", 1)]

    dry = ctid("simulate-call", "--config", str(path), "--connector", "office", "--scenario", "missed",
               "--from", "+79990001122", "--to", "alice", "--dry-run")
    assert dry.returncode == 0 and "X-Ctid-Signature: sha256=" in dry.stdout

    check = ctid("check", "--config", str(path), "--json")
    assert check.returncode == 0, check.stdout + check.stderr
    report = json.loads(check.stdout)
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == ["database", "crm (directory)", "connector office (generic)",
                                                    f"running ctid ({url})"]
    assert report["checks"][-1]["detail"] == "every plugin healthy"

    assert server.stop(grace=20) == 0  # SIGTERM: a graceful stop


def test_cli_errors_are_one_line(served, tmp_path):
    path, url, server = served
    bad = ctid("simulate-call", "--config", str(path), "--connector", "nowhere", "--scenario", "missed",
               "--from", "+79990001122", "--to", "alice", "--url", url)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "no connector instance 'nowhere'" in bad.stderr
    bad = ctid("simulate-call", "--config", str(path), "--connector", "office", "--scenario", "party",
               "--from", "+79990001122", "--to", "alice", "--url", url)
    assert bad.returncode == 2 and "unknown scenario" in bad.stderr
    bad = ctid("simulate-call", "--config", str(path), "--connector", "office", "--scenario", "missed",
               "--from", "+79990001122", "--to", "zed", "--url", url)
    assert bad.returncode == 2 and "no agent 'zed'" in bad.stderr
    busy = ctid("serve", "--config", str(path), "--listen", f"127.0.0.1:{server.port}")  # port taken
    assert busy.returncode == 1
    assert busy.stderr.strip().splitlines()[-1].startswith("ctid: error: cannot listen on 127.0.0.1:")
    assert "Traceback" not in busy.stderr
    down = ctid("simulate-call", "--config", str(path), "--connector", "office", "--scenario", "missed",
                "--from", "+79990001122", "--to", "alice", "--url", f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 1 and "cannot reach ctid" in down.stderr
