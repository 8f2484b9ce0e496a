"""`ctid check --json`: JSON even when the configuration is bad; a readable outbox detail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
import typer
import yaml
from typer.testing import CliRunner

from ctid.cli import check_cmd
from ctid.store import Store
from ctid.testing.daemon import free_port


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("CTID_LOAD_PLUGINS", "")
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """ctid."""

    check_cmd.register(app)
    return app


def test_bad_config_is_json_with_the_exit_code(app: typer.Typer, tmp_path: Path) -> None:
    path = tmp_path / "ctid.yaml"
    path.write_text("server:\n  listen: nowhere\n")
    result = CliRunner().invoke(app, ["check", "--config", str(path), "--json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report == {
        "ok": False,
        "error": {
            "id": "config_invalid",
            "message": f"{path}:2: server.listen: must be host:port, for example 127.0.0.1:8080",
        },
    }
    missing = CliRunner().invoke(app, ["check", "--config", str(tmp_path / "nope.yaml"), "--json"])
    assert missing.exit_code == 2
    assert json.loads(missing.stdout)["error"]["id"] == "config_invalid"

    plain = CliRunner().invoke(app, ["check", "--config", str(path)])
    assert plain.exit_code == 2 and plain.stdout == ""  # without --json: one line on stderr


def test_outbox_detail_is_readable(app: typer.Typer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ctid.db'}"

    async def migrate() -> None:
        store = Store(url)
        await store.open()
        await store.aclose()

    trio.run(migrate)
    path = tmp_path / "ctid.yaml"
    # a port nothing listens on: a ctid serving at the default address would add its own check
    server = {"listen": f"127.0.0.1:{free_port()}"}
    path.write_text(yaml.safe_dump({"database": {"url": url}, "server": server}))
    result = CliRunner().invoke(app, ["check", "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    [database] = json.loads(result.stdout)["checks"]
    assert database["name"] == "database" and database["ok"] is True
    assert database["checks"]["outbox"] == "pending=0 due=0 dead=0"
