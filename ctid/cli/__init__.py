"""The ``ctid`` command line. Each sub-module registers its commands and imports heavy code lazily,
so ``ctid --help`` stays fast.

Exit codes: 0 success; 1 a check failed (``ctid check``) or an unexpected error; 2 bad input
(configuration, arguments, request); 3 a plugin failed to load; 4 authentication refused.
"""

from __future__ import annotations

import sys

import typer

from ctid import __version__

app = typer.Typer(
    name="ctid",
    help="ctid: computer-telephony integration daemon (PBX events -> CRM screen pops, logging, callbacks).",
    epilog="Plugins may add commands of their own (ctid <plugin> --help); `ctid plugins` lists them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: typer's rich panels import rich.markdown and friends (~130 ms of the
    # ~300 ms budget of `ctid --help` on a 2-core machine)
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ctid {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """ctid command line."""


_CORE_COMMANDS = frozenset({"serve", "simulate-call", "check", "plugins", "config", "db", "auth", "watch", "report"})


def _register() -> None:
    from ctid.cli import (
        auth_cmd,
        check_cmd,
        config_cmd,
        db_cmd,
        plugins_cmd,
        report_cmd,
        serve_cmd,
        sim_cmd,
        watch_cmd,
    )

    for module in (serve_cmd, sim_cmd, check_cmd, plugins_cmd, config_cmd, db_cmd, auth_cmd, watch_cmd, report_cmd):
        module.register(app)


def fail(exc: BaseException) -> typer.Exit:
    """Print a CtidError as one line on stderr and return the Exit to raise."""
    from ctid.errors import CtidError

    if isinstance(exc, CtidError):
        typer.echo(f"ctid: error: {exc}", err=True)
        return typer.Exit(exc.exit_code)
    typer.echo(f"ctid: error: {type(exc).__name__}: {exc}", err=True)
    return typer.Exit(1)


#: Entry-point group of plugin sub-commands: ``name = "module:typer_app"`` makes ``ctid name ...``.
COMMANDS_GROUP = "ctid.commands"


def _plugin_command(name: str):
    """The Typer app a plugin registered for ``ctid <name>`` (looked up only for a name the core
    does not know, so ``ctid --help`` and core commands never import plugins)."""
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=COMMANDS_GROUP):
        if entry_point.name == name:
            return entry_point.load()
    return None


def main() -> None:
    argv = sys.argv[1:]
    if argv and not argv[0].startswith("-") and argv[0] not in _CORE_COMMANDS:
        try:
            plugin_app = _plugin_command(argv[0])
        except Exception as exc:  # a broken plugin command: one line, like any plugin failure
            typer.echo(f"ctid: error: the {argv[0]!r} command of a plugin failed to load: {exc}", err=True)
            sys.exit(3)
        if plugin_app is not None:
            plugin_app(args=argv[1:], prog_name=f"ctid {argv[0]}")
            return
    _register()
    from ctid.errors import CtidError

    try:
        app(standalone_mode=True)
    except CtidError as exc:  # commands normally convert these themselves; this is the safety net
        typer.echo(f"ctid: error: {exc}", err=True)
        sys.exit(exc.exit_code)
