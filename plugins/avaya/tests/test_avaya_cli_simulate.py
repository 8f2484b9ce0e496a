"""``ctid simulate-call --connector <avaya instance>`` (the real CLI) drives a ``ctid serve`` process
through every scenario over the connector's simulation sockets."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import yaml

from ctid.testing.daemon import ServeProcess, free_port

ADMIN_KEY = "avaya-cli-admin-key-0123456"


def test_simulate_call_cli_through_every_scenario(tmp_path):
    config = {
        "database": {"url": f"sqlite:///{tmp_path / 'ctid.db'}"},
        "data_dir": str(tmp_path / "var"),
        "auth": {"api_keys": [{"name": "admin", "key": ADMIN_KEY, "role": "admin"}]},
        "agents": {
            "a1": {"name": "Anna", "extension": "201", "groups": ["sales"]},
            "a2": {"name": "Boris", "extension": "202", "groups": ["sales"]},
        },
        "connectors": {"ipo": {
            "plugin": "avaya", "host": "127.0.0.1",
            # no unit to talk to: DevLink3 keeps retrying in the background, the simulation port works
            "devlink3": {"transport": "tcp", "port": free_port(), "username": "ctid", "password": "s3cret-pass"},
            "smdr": {"mode": "listen", "listen": f"127.0.0.1:{free_port()}", "allowed_peers": ["127.0.0.1"]},
            "simulation": {"devlink3_port": free_port(), "smdr_port": free_port()},
        }},
    }
    path = tmp_path / "ctid.yaml"
    path.write_text(yaml.safe_dump(config))
    server = ServeProcess(path).start()
    try:
        for scenario in ("answered", "missed", "group", "transfer", "hold", "outbound_no_answer"):
            result = subprocess.run(
                [sys.executable, "-m", "ctid", "simulate-call", "-c", str(path), "--connector", "ipo",
                 "--scenario", scenario, "--from", "+79161234567", "--to", "a1", "--url", server.url],
                capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, (scenario, result.stdout, result.stderr)
            assert "DEVLINK3 <Detail>" in result.stdout and "SMDR " in result.stdout
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        deadline = time.monotonic() + 20
        while True:  # a real process: no clock to mock
            calls = httpx.get(f"{server.url}/api/calls", headers=headers).json()["items"]
            ended = [c for c in calls if c["state"] == "ended"]
            if len(ended) == 6 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        # missed: simulate-call rings only --to's phone, so the miss (and its callback) is Anna's
        outcomes = sorted((c["direction"], c["outcome"], c["agent"]) for c in ended)
        assert outcomes == sorted([
            ("inbound", "answered", "a1"), ("inbound", "missed", "a1"), ("inbound", "answered", "a1"),
            ("inbound", "answered", "a2"), ("inbound", "answered", "a1"), ("outbound", "no_answer", "a1"),
        ])
        # a wrong instance is one clear line and a non-zero exit
        bad = subprocess.run([sys.executable, "-m", "ctid", "simulate-call", "-c", str(path), "--connector", "nope",
                              "--from", "+79161234567", "--to", "a1"], capture_output=True, text=True, timeout=60)
        assert bad.returncode != 0 and "no connector instance 'nope'" in bad.stderr
    finally:
        server.stop()
