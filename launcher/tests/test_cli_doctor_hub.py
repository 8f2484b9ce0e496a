"""The ``ctid-launcher`` command's errors (one line, an exit code), autostart from the command line,
``doctor`` against a real in-process ctid, and the launcher's hub client against ctid's hub."""

from __future__ import annotations

import json

import pytest
import trio

from ctid.testing.daemon import running_daemon
from ctid_launcher import cli, config, hub
from ctid_launcher.credentials import TokenStore, token_from_login
from ctid_launcher.doctor import run_checks


def _hash(password: str) -> str:
    from werkzeug.security import generate_password_hash

    return generate_password_hash(password, method="pbkdf2:sha256:1000")


def ctid_config(tmp_path) -> dict:
    return {
        "database": {"url": f"sqlite:///{tmp_path / 'ctid.db'}"},
        "data_dir": str(tmp_path / "var"),
        "auth": {"users": [{"username": "alice", "password_hash": _hash("alice-pw"), "role": "agent",
                            "agent": "alice"}]},
        "agents": {"alice": {"name": "Alice", "extension": "101"}},
    }


def test_version_and_usage_errors(capsys):
    assert cli.main(["version"]) == 0
    assert capsys.readouterr().out.startswith("ctid-launcher ")
    assert cli.main(["login"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ctid-launcher: login needs --server") and err.count("\n") == 1
    assert cli.main(["run", "--no-tray"]) == 2
    assert "Not signed in" in capsys.readouterr().err
    config.settings_path().parent.mkdir(parents=True, exist_ok=True)
    config.settings_path().write_text(json.dumps({"on_login": "sometimes"}))
    assert cli.main(["version"]) == 2
    assert capsys.readouterr().err.startswith("ctid-launcher: settings: on_login: must be one of")


def test_login_to_nowhere_is_one_line(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("pw\n"))
    code = cli.main(["login", "--server", "http://127.0.0.1:9", "--user", "alice", "--password-stdin"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("ctid-launcher: Cannot reach http://127.0.0.1:9") and err.count("\n") == 1


def test_autostart_from_the_command_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert cli.main(["autostart", "status"]) == 0
    assert capsys.readouterr().out.strip() == "Autostart is off."
    assert cli.main(["autostart", "enable"]) == 0
    assert capsys.readouterr().out.startswith("Autostart is on (")
    desktop = (tmp_path / "xdg/autostart/ctid-launcher.desktop").read_text()
    assert "run --autostart" in desktop
    assert cli.main(["autostart", "disable"]) == 0
    assert capsys.readouterr().out.strip() == "Autostart is off."


async def test_doctor_against_ctid(tmp_path, monkeypatch):
    monkeypatch.setenv("CTID_LAUNCHER_KEYRING", "file")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    async with running_daemon(ctid_config(tmp_path)) as app:
        settings = config.Settings(server=app.url, username="alice", agent="alice")
        lines: list[str] = []
        assert await run_checks(settings, lines.append) == 1  # not signed in yet
        assert any(line.startswith("FAIL  token") for line in lines)
        answer = (await app.client.post("/api/auth/token", json={"username": "alice", "password": "alice-pw"})).json()
        TokenStore(app.url, "alice").save(token_from_login(answer["access_token"], answer["expires_in"]))
        lines.clear()
        assert await run_checks(settings, lines.append) == 0, lines
        text = "\n".join(lines)
        for expected in ("ok    reachable        GET /healthz -> HTTP 200", "ok    signed in        as alice (agent)",
                         "ok    hub              ", "ok    session          none", "warn  tray             no DISPLAY",
                         "ok    token            kept in file"):
            assert expected in text, text
    lines.clear()
    assert await run_checks(settings, lines.append) == 1  # ctid is gone
    assert any(line.startswith("FAIL  reachable") for line in lines)


async def test_hub_client_events_and_a_refused_token(tmp_path):
    async with running_daemon(ctid_config(tmp_path)) as app:
        with pytest.raises(hub.HubAuthError):
            async with hub.connect(f"{app.url}/hub", "not-a-token"):
                pass
        token = (await app.client.post("/api/auth/token", json={"username": "alice", "password": "alice-pw"})
                 ).json()["access_token"]
        async with hub.connect(f"{app.url}/hub", token, ping_interval=0.2) as connection:
            await app.client.put("/api/agents/alice/status", json={"status": "dnd"},
                                 headers={"Authorization": f"Bearer {token}"})
            with trio.fail_after(5):
                async for target, arguments in connection.events():
                    if target == "agentUpdated":
                        assert arguments[0]["status"] == "dnd"
                        break
            await trio.sleep(0.5)  # pings keep the connection (ctid times out silent clients)
