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
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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


def _register() -> None:
    from ctid.cli import auth_cmd, check_cmd, config_cmd, db_cmd, plugins_cmd, serve_cmd, sim_cmd, watch_cmd

    for module in (serve_cmd, sim_cmd, check_cmd, plugins_cmd, config_cmd, db_cmd, auth_cmd, watch_cmd):
        module.register(app)


def fail(exc: BaseException) -> typer.Exit:
    """Print a CtidError as one line on stderr and return the Exit to raise."""
    from ctid.errors import CtidError

    if isinstance(exc, CtidError):
        typer.echo(f"ctid: error: {exc}", err=True)
        return typer.Exit(exc.exit_code)
    typer.echo(f"ctid: error: {type(exc).__name__}: {exc}", err=True)
    return typer.Exit(1)


def main() -> None:
    _register()
    from ctid.errors import CtidError

    try:
        app(standalone_mode=True)
    except CtidError as exc:  # commands normally convert these themselves; this is the safety net
        typer.echo(f"ctid: error: {exc}", err=True)
        sys.exit(exc.exit_code)
