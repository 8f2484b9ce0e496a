"""``ctid comagic templates`` and ``ctid comagic import-users``: what the account admin pastes."""

from __future__ import annotations

import json
from pathlib import Path

import typer

PROG = "ctid-comagic"  # the prefix of its one-line errors

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Tools for ctid's CoMagic / UIS connector.")


@app.callback()
def _root() -> None:
    """Tools for ctid's CoMagic / UIS connector."""


@app.command("templates")
def templates(
    config: Path | None = typer.Option(None, "--config", "-c", envvar="CTID_CONFIG",
                                       help="ctid configuration: fills in the URL and the body secret."),
    connector: str | None = typer.Option(None, "--connector", help="CoMagic instance (default: the only one)."),
    as_json: bool = typer.Option(False, "--json", help="Print {kind: {url, body, query}} as JSON."),
) -> None:
    """Print the notification templates to paste into the cabinet (Уведомления), one per event."""
    from ctid.plugin_cli import connector_instance, exit_on_error
    from ctid_comagic import templates as shipped

    url, secret = "https://<ctid public URL>/hooks/<instance>/<webhook_secret>", shipped.SECRET_PLACEHOLDER
    if config is not None:
        with exit_on_error(PROG):
            name, cfg, settings = connector_instance(config, "comagic", connector)
        url = f"{settings.core.server.url().rstrip('/')}/hooks/{name}/{cfg.webhook_secret.get_secret_value()}"
        secret = cfg.body_secret.get_secret_value()
    if as_json:
        data = {kind: {"event": shipped.EVENT_NAMES[kind], "method": "POST", "url": url,
                       "body": shipped.template(kind, secret), "query": shipped.query_template(kind, secret)}
                for kind in shipped.KINDS}
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        typer.echo(shipped.guide(url, secret))


@app.command("import-users")
def import_users(
    config: Path = typer.Option(..., "--config", "-c", envvar="CTID_CONFIG", help="ctid configuration file."),
    connector: str | None = typer.Option(None, "--connector", help="CoMagic instance (default: the only one)."),
    as_json: bool = typer.Option(False, "--json", help="Print employees and agents as JSON."),
) -> None:
    """Read the account's employees (get.employees) and print an ``agents:`` block for the config."""
    import trio

    from ctid.plugin_cli import echo_import, exit_on_error

    with exit_on_error(PROG):
        data = trio.run(_import, config, connector)
    echo_import(data, f"{len(data['employees'])} employees on {data['instance']}", as_json=as_json)


async def _import(path: Path, instance: str | None) -> dict:
    from ctid.plugin_cli import command_connector

    async with command_connector(path, "comagic", instance) as connector:
        return await connector.import_users()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
