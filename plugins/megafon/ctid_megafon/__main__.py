"""``python -m ctid_megafon import-users``: print the PBX's users and groups as ctid ``agents:`` entries."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Tools for ctid's MegaFon connector.")


@app.callback()
def _root() -> None:
    """Tools for ctid's MegaFon connector."""


@app.command("import-users")
def import_users(
    config: Path = typer.Option(..., "--config", "-c", envvar="CTID_CONFIG", help="ctid configuration file."),
    connector: str | None = typer.Option(None, "--connector", help="MegaFon instance (default: the only one)."),
    as_json: bool = typer.Option(False, "--json", help="Print users, groups and agents as JSON."),
) -> None:
    """Read the tenant's users and groups and print an ``agents:`` block to paste into the config."""
    import trio
    import yaml

    from ctid.errors import CtidError

    try:
        data = trio.run(_import, config, connector)
    except CtidError as exc:
        typer.echo(f"ctid-megafon: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        typer.echo(f"# {len(data['users'])} users and {len(data['groups'])} groups on {data['instance']}")
        typer.echo(yaml.safe_dump({"agents": data["agents"]}, allow_unicode=True, sort_keys=False), nl=False)


async def _import(path: Path, instance: str | None) -> dict:
    from ctid.config.loader import load_config
    from ctid.directory import StaticDirectory
    from ctid.errors import RequestError
    from ctid.plugins import get_plugin_manager
    from ctid.services import Services
    from ctid_megafon.connector import MegafonConnector

    pm = get_plugin_manager()
    settings = load_config(path, pm)
    mine = sorted(name for name, cfg in settings.connectors.items() if cfg.plugin == "megafon")
    if instance is None:
        if len(mine) != 1:
            raise RequestError(f"name the instance with --connector (megafon instances: {', '.join(mine) or 'none'})",
                               error_id="bad_connector")
        instance = mine[0]
    if instance not in mine:
        raise RequestError(f"{instance!r} is not a megafon connector instance (have: {', '.join(mine) or 'none'})",
                           error_id="bad_connector")
    services = Services(directory=StaticDirectory(settings.core.agents), data_dir=settings.core.data_dir)
    connector = MegafonConnector(instance, settings.connectors[instance], services)
    try:
        return (await connector.import_users()).to_json()
    finally:
        await connector.aclose()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
