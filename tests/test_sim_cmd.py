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


async def test_send_simulation_posts_the_simulated_requests_and_reports_each(nursery) -> None:
    """The default ``Connector.send_simulation`` (what simulate-call calls): HTTP posts in order;
    a 4xx answer is ``simulation_rejected``; an unreachable ctid is ``unreachable``."""
    from ctid.asgi import lifespan
    from ctid.connector import Connector, SimulatedRequest, SimulationContext
    from ctid.errors import PBXError, RequestError
    from ctid.testing.daemon import free_port
    from ctid.testing.fakes import serve

    seen: list[tuple[str, bytes]] = []

    async def asgi(scope, receive, send):
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        body = (await receive()).get("body", b"")
        seen.append((scope["path"], body))
        status = 422 if body == b"bad" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    url = await nursery.start(serve, asgi)

    class Webhooky(Connector):
        bodies: list[bytes] = [b"one", b"two"]

        def simulate(self, scenario, context):
            return [SimulatedRequest("POST", "/hooks/x", {}, body, f"#{i}") for i, body in enumerate(self.bodies)]

    conn = Webhooky("x", None, None)  # type: ignore[arg-type]
    lines: list[str] = []
    ctx = SimulationContext(caller="+79161234567", agent="101")
    await conn.send_simulation("answered", ctx, base_url=f"{url}/", report=lines.append)
    assert seen == [("/hooks/x", b"one"), ("/hooks/x", b"two")]
    assert lines == ["200 POST /hooks/x  #0", "200 POST /hooks/x  #1"]
    conn.bodies = [b"bad", b"never sent"]
    with pytest.raises(RequestError) as rejected:
        await conn.send_simulation("answered", ctx, base_url=url, report=lines.append)
    assert rejected.value.error_id == "simulation_rejected" and seen[-1] == ("/hooks/x", b"bad")
    with pytest.raises(PBXError) as down:
        await conn.send_simulation("answered", ctx, base_url=f"http://127.0.0.1:{free_port()}", report=lines.append)
    assert down.value.error_id == "unreachable"


def _simulate(app: typer.Typer, tmp_path: Path, *args: str):
    path = tmp_path / "ctid.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return CliRunner().invoke(app, ["simulate-call", "--config", str(path), "--connector", "office",
                                    "--from", "+79161234567", "--to", "alice", "--url", "http://127.0.0.1:9", *args])


@pytest.mark.parametrize("where", ["simulate", "send_simulation"])
def test_a_connector_that_raises_is_one_line_naming_the_plugin(app, tmp_path, monkeypatch, where):
    """A bug in a connector's simulate() / send_simulation() printed a whole traceback (README: one line, exit 1)."""
    from ctid.builtins.generic import GenericConnector

    def simulate(self, scenario, context):
        raise KeyError("bomb-simulate")

    async def send_simulation(self, scenario, context, *, base_url, report):
        import trio

        async with trio.open_nursery() as nursery:  # Trio wraps it in an exception group
            nursery.start_soon(trio.sleep, 0)
            raise KeyError("bomb-send")

    if where == "simulate":
        monkeypatch.setattr(GenericConnector, "simulate", simulate)
    monkeypatch.setattr(GenericConnector, "send_simulation", send_simulation)
    result = _simulate(app, tmp_path, *(["--dry-run"] if where == "simulate" else []))
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    expected = "'bomb-simulate'" if where == "simulate" else "'bomb-send'"
    assert lines == [f"ctid: error: plugin 'generic' failed in {where}: KeyError: {expected}"], result.stderr
    assert "Traceback" not in result.output


def test_a_ctid_error_from_send_simulation_keeps_its_exit_code(app, tmp_path, monkeypatch):
    from ctid.builtins.generic import GenericConnector
    from ctid.errors import AuthError

    async def send_simulation(self, scenario, context, *, base_url, report):
        import trio

        async with trio.open_nursery():
            raise AuthError("ctid refused the webhook signature")

    monkeypatch.setattr(GenericConnector, "send_simulation", send_simulation)
    result = _simulate(app, tmp_path)
    assert result.exit_code == 4, result.output
    assert result.stderr.strip() == "ctid: error: ctid refused the webhook signature"
