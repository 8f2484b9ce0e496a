"""``ctid avaya ...``: tools of the Avaya connector (the TAPI bridge for a Windows host)."""

from __future__ import annotations

import typer

from ctid.limits import ascii_digits

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Tools for ctid's Avaya IP Office connector.")


@app.callback()
def _root() -> None:
    """Tools for ctid's Avaya IP Office connector."""


@app.command("tapi-bridge")
def tapi_bridge(
    listen: str = typer.Option("0.0.0.0:8765", help="HOST:PORT to serve ctid on."),
    token: str = typer.Option(..., envvar="CTID_TAPI_BRIDGE_TOKEN", help="Bearer token ctid sends (bridge_token)."),
) -> None:
    """Run IP Office TAPI (third-party mode) on this Windows host and serve it to ctid over HTTP."""
    import trio

    from ctid_avaya.control.tapi import TapiEngine
    from ctid_avaya.control.tapi_bridge import serve

    if len(token) < 16:
        typer.echo("ctid-avaya: error: the token must be at least 16 characters", err=True)
        raise typer.Exit(2)
    host, _, port = listen.rpartition(":")
    if not ascii_digits(port):
        typer.echo(f"ctid-avaya: error: --listen {listen!r} is not HOST:PORT", err=True)
        raise typer.Exit(2)
    try:
        from ctid_avaya.control.tapi32 import Tapi32

        boundary = Tapi32()
    except OSError as exc:
        typer.echo(f"ctid-avaya: error: {exc}", err=True)
        raise typer.Exit(3) from None
    trio.run(serve, TapiEngine(boundary), host or "0.0.0.0", int(port), token)


if __name__ == "__main__":
    app()
