"""Schema migrations with Alembic, configured in code (no ``alembic.ini`` needed in the working directory).

``upgrade(url)`` brings a database to the newest schema; :class:`~ctid.store.store.Store` calls
:func:`upgrade_engine` on open. Concurrent upgrades are serialized with a database lock
(PostgreSQL advisory lock, MS SQL application lock, SQLite ``BEGIN IMMEDIATE``; see ``migrations/env.py``).
``upgrade_sql(url)`` renders the SQL instead of running it (offline mode), for DBAs who apply
scripts themselves.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ctid.errors import StoreError
from ctid.store import engine as engines
from ctid.store.engine import WRITE

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

#: Key of the PostgreSQL advisory lock / MS SQL application lock held while migrating.
LOCK_KEY = 0x63746964  # "ctid"
LOCK_NAME = "ctid-migrate"

#: Alembic's ``context`` is process-global, so migrations in one process run one at a time
#: (the database locks in env.py serialize separate processes).
_PROCESS_LOCK = threading.Lock()


def alembic_config(url: str | None = None, *, output: io.StringIO | None = None) -> Config:
    """An Alembic ``Config`` pointing at ctid's packaged migrations."""
    config = Config(output_buffer=output) if output is not None else Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` when it has never been migrated)."""
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the schema revision: {engines.describe_error(exc)}") from exc


def upgrade_engine(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the database behind ``engine`` to ``revision`` (blocking).

    Returns the revisions (before, after), as seen while holding the migration lock.
    """
    try:
        with _PROCESS_LOCK, engine.connect() as conn:
            conn.execution_options(**{WRITE: True})
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            conn.commit()
            return config.attributes.get("revision_before"), config.attributes.get("revision_after")
    except CommandError as exc:
        raise StoreError(
            f"cannot migrate the database: {exc} (is this ctid older than the database?)"
        ) from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate the database: {engines.describe_error(exc)}") from exc


def upgrade(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the database at ``url`` to ``revision``; returns (revision before, revision after)."""
    engine = engines.create(url, pool_size=1)
    try:
        return upgrade_engine(engine, revision)
    finally:
        engine.dispose()


def upgrade_sql(url: str, revision: str = "head") -> str:
    """The SQL that upgrades an empty database at ``url`` to ``revision`` (nothing is executed)."""
    output = io.StringIO()
    config = alembic_config(engines.normalize_url(url).render_as_string(hide_password=False), output=output)
    try:
        with _PROCESS_LOCK:
            command.upgrade(config, revision, sql=True)
    except CommandError as exc:
        raise StoreError(f"cannot render the migration SQL: {exc}") from exc
    return output.getvalue()
