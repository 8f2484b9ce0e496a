"""The plumbing of a plugin's own sub-commands (``ctid <plugin> ...``, registered through the
``ctid.commands`` entry point): pick the plugin's connector instance from a configuration file,
build that connector for a one-shot command, and print a :class:`~ctid.errors.CtidError` as one
line with its exit code; print what an ``import-users`` command found::

    from ctid.plugin_cli import command_connector, exit_on_error

    @app.command("import-users")
    def import_users(config: Path = typer.Option(..., "--config", "-c", envvar="CTID_CONFIG"),
                     connector: str | None = typer.Option(None, "--connector")) -> None:
        with exit_on_error("ctid-mypbx"):
            data = trio.run(_import, config, connector)
        echo_import(data, f"{len(data['users'])} users on {data['instance']}", as_json=as_json)

    async def _import(config: Path, instance: str | None) -> dict:
        async with command_connector(config, "mypbx", instance) as connector:
            return await connector.import_users()
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ctid.config.loader import Settings


def connector_instance(path: str | Path, plugin: str, instance: str | None = None) -> tuple[str, Any, Settings]:
    """``(name, config, settings)`` of the ``plugin`` connector instance ``instance`` in the configuration
    file at ``path``; with ``instance`` None, the only one. Raises :class:`~ctid.errors.ConfigError` for
    a bad file and ``RequestError`` ``bad_connector`` when the instance is not one of ``plugin``'s or
    there is not exactly one to choose."""
    from ctid.config.loader import load_config
    from ctid.errors import RequestError
    from ctid.plugins import get_plugin_manager

    settings = load_config(path, get_plugin_manager())
    mine = sorted(name for name, cfg in settings.connectors.items() if cfg.plugin == plugin)
    if instance is None:
        if len(mine) != 1:
            raise RequestError(f"name the instance with --connector ({plugin} instances: {', '.join(mine) or 'none'})",
                               error_id="bad_connector")
        instance = mine[0]
    if instance not in mine:
        raise RequestError(f"{instance!r} is not a {plugin} connector instance (have: {', '.join(mine) or 'none'})",
                           error_id="bad_connector")
    return instance, settings.connectors[instance], settings


@asynccontextmanager
async def command_connector(path: str | Path, plugin: str, instance: str | None = None) -> AsyncIterator[Any]:
    """The connector of :func:`connector_instance`, built with the configured agents as its directory
    and the configured ``data_dir`` (no daemon, no database), closed after the block."""
    from ctid.directory import StaticDirectory
    from ctid.services import Services

    name, config, settings = connector_instance(path, plugin, instance)
    services = Services(directory=StaticDirectory(settings.core.agents), data_dir=settings.core.data_dir)
    connector = settings.connector_types[name](name, config, services)
    try:
        yield connector
    finally:
        await connector.aclose()


@contextmanager
def exit_on_error(prog: str) -> Iterator[None]:
    """Turn a :class:`~ctid.errors.CtidError` raised in the block into ``<prog>: error: <message>`` on
    stderr and ``typer.Exit`` with the error's exit code."""
    import typer

    from ctid.errors import CtidError

    try:
        yield
    except CtidError as exc:
        typer.echo(f"{prog}: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


def echo_import(data: dict[str, Any], summary: str, *, as_json: bool) -> None:
    """Print an ``import-users`` result: all of ``data`` as JSON, or ``# <summary>`` and the
    ``agents:`` block (YAML, ``data["agents"]``) to paste into the configuration."""
    import json

    import typer
    import yaml

    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        typer.echo(f"# {summary}")
        typer.echo(yaml.safe_dump({"agents": data["agents"]}, allow_unicode=True, sort_keys=False), nl=False)
