"""``ctid simulate-call``: a connector's native wire traffic for a scenario, sent to a running ctid."""

from __future__ import annotations

import functools
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("simulate-call")
    def simulate_call(
        config: Path = typer.Option(..., "--config", "-c", envvar="CTID_CONFIG", help="Configuration file."),
        connector: str = typer.Option(..., help="Connector instance name (connectors.<instance>)."),
        scenario: str = typer.Option("answered", help="answered, missed, group, transfer, hold, outbound_no_answer"),
        from_number: str = typer.Option(..., "--from", help="The customer's number."),
        to: str = typer.Option(..., "--to", help="Agent id who takes (or makes) the call."),
        transfer_to: str | None = typer.Option(
            None, help="Agent id the transfer scenario transfers to (default: another agent of the same group, "
            "else any other agent with a login on the connector)."
        ),
        line: str | None = typer.Option(None, help="Our number that was called (the line)."),
        url: str | None = typer.Option(None, help="Base URL of the running ctid (default: server.public_url)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the requests instead of sending them."),
    ) -> None:
        """Drive a running ctid through a call scenario with the connector's native traffic (webhooks, or its own sockets)."""
        from ctid.cli import fail
        from ctid.errors import CtidError

        try:
            _simulate(config, connector, scenario, from_number, to, transfer_to, line, url, dry_run)
        except CtidError as exc:
            raise fail(exc) from None


def _simulate(config, instance, scenario, caller, agent_id, transfer_to, line, url, dry_run) -> None:
    from ctid.config.loader import load_config
    from ctid.connector import SimulationContext
    from ctid.directory import StaticDirectory
    from ctid.errors import RequestError
    from ctid.plugins import get_plugin_manager
    from ctid.services import Services

    pm = get_plugin_manager()
    settings = load_config(config, pm)
    pm.ensure_enabled_ok(settings)
    core = settings.core
    cfg = settings.connectors.get(instance)
    if cfg is None:
        known = ", ".join(sorted(settings.connectors)) or "none"
        raise RequestError(f"no connector instance {instance!r} (configured: {known})", error_id="bad_connector")
    directory = StaticDirectory(core.agents)
    services = Services(directory=directory, public_url=core.server.url(), default_region=core.phone.default_region)
    conn = _plugin_call(cfg.plugin, "__init__", pm.connector_classes()[cfg.plugin], instance, cfg, services)

    def login(agent: str) -> str:
        if directory.get(agent) is None:
            raise RequestError(f"no agent {agent!r} in the configuration", error_id="bad_agent")
        value = directory.login_for_agent(instance, agent)
        if value is None:
            raise RequestError(f"agent {agent!r} has no login on {instance!r}", error_id="bad_agent")
        return value

    group = None
    others: list[str] = []
    if transfer_to:
        others = [login(transfer_to)]
    elif scenario == "transfer":
        target = _colleague(directory, instance, agent_id)
        typer.echo(f"transfer to {target} (choose with --transfer-to)", err=True)
        others = [login(target)]
    elif scenario == "group":
        me = directory.get(agent_id)
        if me is None:
            raise RequestError(f"no agent {agent_id!r} in the configuration", error_id="bad_agent")
        group = me.groups[0] if me.groups else None
        others = [login(a.id) for a in directory.agents()
                  if a.id != agent_id and group in a.groups and directory.login_for_agent(instance, a.id)]
    context = SimulationContext(caller=caller, agent=login(agent_id), others=others, line=line, group=group)
    requests = _plugin_call(cfg.plugin, "simulate", conn.simulate, scenario, context)
    base = (url or core.server.url()).rstrip("/")
    if dry_run:
        for req in requests:
            typer.echo(f"{req.method} {base}{req.path}   # {req.description}")
            for name, value in req.headers.items():
                typer.echo(f"{name}: {value}")
            typer.echo(req.body.decode(errors="replace"))
            typer.echo("")
        return
    import trio

    _plugin_call(cfg.plugin, "send_simulation", trio.run,
                 functools.partial(conn.send_simulation, scenario, context, base_url=base, report=typer.echo))


def _plugin_call(plugin: str, where: str, function, *args):
    """``function(*args)``, a connector's code: an exception that is not a ctid error (a bug in the
    plugin) becomes a PluginError naming the plugin, so the command prints one line and exits 1
    instead of a traceback (README, "Exit codes"). A ctid error from inside a Trio nursery (an
    exception group of one) is raised as itself."""
    from ctid.errors import CtidError, PluginError

    try:
        return function(*args)
    except (CtidError, KeyboardInterrupt):
        raise
    except Exception as exc:
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        if isinstance(exc, CtidError):
            raise exc from None
        raise PluginError(f"plugin {plugin!r} failed in {where}: {type(exc).__name__}: {exc}") from exc


def _colleague(directory, instance: str, agent_id: str) -> str:
    """Another agent with a login on ``instance``: one sharing a group with ``agent_id`` if any."""
    from ctid.errors import RequestError

    me = directory.get(agent_id)
    if me is None:
        raise RequestError(f"no agent {agent_id!r} in the configuration", error_id="bad_agent")
    others = [a for a in directory.agents() if a.id != agent_id and directory.login_for_agent(instance, a.id)]
    if not others:
        raise RequestError(
            f"no other agent with a login on {instance!r} to transfer to; add one or give --transfer-to AGENT",
            error_id="bad_scenario",
        )
    same_group = [a for a in others if set(a.groups) & set(me.groups)]
    return (same_group or others)[0].id
