"""``python -m ctid_megafon import-users``: print the PBX's users and groups as ctid ``agents:`` entries."""

from __future__ import annotations

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

    from ctid.plugin_cli import echo_import, exit_on_error

    with exit_on_error("ctid-megafon"):
        data = trio.run(_import, config, connector)
    echo_import(data, f"{len(data['users'])} users and {len(data['groups'])} groups on {data['instance']}",
                as_json=as_json)


async def _import(path: Path, instance: str | None) -> dict:
    from ctid.plugin_cli import command_connector

    async with command_connector(path, "megafon", instance) as connector:
        return (await connector.import_users()).to_json()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
