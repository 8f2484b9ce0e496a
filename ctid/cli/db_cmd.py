"""`ctid db upgrade|current`: migrate the database to this ctid's schema, or show where it stands.

``ctid serve`` migrates on start too; ``ctid db upgrade`` exists for deployments that migrate as a
separate step, and ``--sql`` prints the DDL for DBAs who apply scripts themselves (MS SQL shops).
"""

from __future__ import annotations

from pathlib import Path

import typer

db_app = typer.Typer(
    name="db", help="Database schema: upgrade it, or show its revision.", no_args_is_help=True
)

_CONFIG = typer.Option(
    None,
    "--config",
    "-c",
    envvar="CTID_CONFIG",
    help="Configuration file (database.url is used).",
    show_default=False,
)
_URL = typer.Option(None, "--url", help="Database URL (instead of --config).", show_default=False)


def _database_url(config: Path | None, url: str | None) -> str:
    from ctid.cli import fail
    from ctid.config.loader import load_config
    from ctid.errors import CtidError, RequestError

    try:
        if url:
            return url
        if config is None:
            raise RequestError("give --config FILE (or --url URL)")
        return load_config(config, None).core.database.url
    except CtidError as exc:
        raise fail(exc) from None


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is reported by the store itself
        return "<database>"


@db_app.command("upgrade")
def upgrade(
    config: Path | None = _CONFIG,
    url: str | None = _URL,
    revision: str = typer.Option("head", help="Target revision."),
    sql: bool = typer.Option(
        False, "--sql", help="Print the SQL instead of running it (nothing is changed)."
    ),
) -> None:
    """Upgrade the database schema to the newest revision (safe to run from several hosts at once)."""
    from ctid.cli import fail
    from ctid.errors import CtidError
    from ctid.store import migrate

    database = _database_url(config, url)
    try:
        if sql:
            typer.echo(migrate.upgrade_sql(database, revision), nl=False)
            return
        before, after = migrate.upgrade(database, revision)
    except CtidError as exc:
        raise fail(exc) from None
    if before == after:
        typer.echo(f"ok: {_shown(database)} is up to date (revision {after})")
    else:
        typer.echo(f"ok: upgraded {_shown(database)} from revision {before or 'none'} to {after}")


@db_app.command("current")
def current(config: Path | None = _CONFIG, url: str | None = _URL) -> None:
    """Print the database's schema revision and this ctid's newest; exit 1 when an upgrade is due."""
    from ctid.cli import fail
    from ctid.errors import CtidError
    from ctid.store import engine as engines
    from ctid.store import migrate

    database = _database_url(config, url)
    try:
        engine = engines.create(database, pool_size=1)
        try:
            revision = migrate.current_revision(engine)
        finally:
            engine.dispose()
    except CtidError as exc:
        raise fail(exc) from None
    head = migrate.head_revision()
    typer.echo(f"database: {revision or 'none'}, newest: {head}")
    if revision != head:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app)
