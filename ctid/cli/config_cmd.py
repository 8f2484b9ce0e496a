"""`ctid config check|show|schema`: validate, display (secrets redacted) and describe the configuration.

These commands work even when a third-party plugin is broken: a failed plugin is reported as a
warning, and is an error only when the configuration needs it (exit 3).
"""

from __future__ import annotations

from pathlib import Path

import typer

config_app = typer.Typer(
    name="config",
    help="Validate, show (secrets redacted) and describe the configuration file.",
    no_args_is_help=True,
)

_FILE = typer.Argument(
    ..., help="The configuration file (conf.d/ next to it is merged in).", show_default=False
)


def _load(path: Path):
    from ctid.cli import fail
    from ctid.config.loader import load_config
    from ctid.errors import CtidError
    from ctid.plugins import get_plugin_manager

    pm = get_plugin_manager()
    try:
        settings = load_config(path, pm)
    except CtidError as exc:
        raise fail(exc) from None
    for failure in pm.failures:
        typer.echo(f"ctid: warning: plugin {failure.name!r} failed to load: {failure.error}", err=True)
    for warning in settings.warnings:
        typer.echo(f"ctid: warning: {warning}", err=True)
    return settings, pm


@config_app.command("check")
def check(path: Path = _FILE) -> None:
    """Validate the configuration file; print a summary, or one error line with its YAML path (exit 2)."""
    settings, _ = _load(path)
    core = settings.core
    crm = core.crm["plugin"] if core.crm else "none"
    typer.echo(f"ok: {path} ({len(core.agents)} agents, {len(settings.connectors)} connectors, crm: {crm})")
    if len(settings.sources) > 1:
        typer.echo("merged: " + ", ".join(str(source) for source in settings.sources[1:]))


@config_app.command("show")
def show(
    path: Path = _FILE,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of YAML."),
) -> None:
    """Print the effective configuration (defaults and conf.d merged, ${...} substituted), secrets as ***."""
    import json

    import yaml

    from ctid.config.loader import redacted

    settings, _ = _load(path)
    data = redacted(settings)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        files = ", ".join(str(source) for source in settings.sources)
        typer.echo(f"# effective configuration from {files} (defaults included, secrets shown as ***)")
        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip("\n"))


@config_app.command("schema")
def schema() -> None:
    """Print the JSON Schema (draft 2020-12) of the configuration file, installed plugins included."""
    import json

    from ctid.config.loader import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(config_app)
