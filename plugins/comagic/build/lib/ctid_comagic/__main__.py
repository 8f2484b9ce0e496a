"""``ctid comagic templates`` and ``ctid comagic import-users``: what the account admin pastes."""

from __future__ import annotations

import json
from pathlib import Path

import typer

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
    from ctid.errors import CtidError
    from ctid_comagic import templates as shipped

    url, secret = "https://<ctid public URL>/hooks/<instance>/<webhook_secret>", shipped.SECRET_PLACEHOLDER
    if config is not None:
        try:
            name, cfg, public = _instance(config, connector)
        except CtidError as exc:
            typer.echo(f"ctid-comagic: error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        url = f"{public.rstrip('/')}/hooks/{name}/{cfg.webhook_secret.get_secret_value()}"
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
    import yaml

    from ctid.errors import CtidError

    try:
        data = trio.run(_import, config, connector)
    except CtidError as exc:
        typer.echo(f"ctid-comagic: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        typer.echo(f"# {len(data['employees'])} employees on {data['instance']}")
        typer.echo(yaml.safe_dump({"agents": data["agents"]}, allow_unicode=True, sort_keys=False), nl=False)


def _instance(path: Path, instance: str | None):
    from ctid.config.loader import load_config
    from ctid.errors import RequestError
    from ctid.plugins import get_plugin_manager

    settings = load_config(path, get_plugin_manager())
    mine = sorted(name for name, cfg in settings.connectors.items() if cfg.plugin == "comagic")
    if instance is None:
        if len(mine) != 1:
            raise RequestError(f"name the instance with --connector (comagic instances: {', '.join(mine) or 'none'})",
                               error_id="bad_connector")
        instance = mine[0]
    if instance not in mine:
        raise RequestError(f"{instance!r} is not a comagic connector instance (have: {', '.join(mine) or 'none'})",
                           error_id="bad_connector")
    return instance, settings.connectors[instance], settings.core.server.url()


async def _import(path: Path, instance: str | None) -> dict:
    from ctid.config.loader import load_config
    from ctid.directory import StaticDirectory
    from ctid.plugins import get_plugin_manager
    from ctid.services import Services
    from ctid_comagic.connector import ComagicConnector

    name, cfg, _ = _instance(path, instance)
    settings = load_config(path, get_plugin_manager())
    services = Services(directory=StaticDirectory(settings.core.agents), data_dir=settings.core.data_dir)
    connector = ComagicConnector(name, cfg, services)
    try:
        return await connector.import_users()
    finally:
        await connector.aclose()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
