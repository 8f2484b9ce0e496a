"""Alembic environment for ctid: runs on a connection the Store hands over, or on a URL (CLI, offline).

Holds a database-wide lock while migrating so that several ctid instances starting together do not
race: ``pg_advisory_xact_lock`` on PostgreSQL, ``sp_getapplock`` on MS SQL, ``BEGIN IMMEDIATE`` on SQLite.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from ctid.store import engine as engines
from ctid.store.engine import WRITE
from ctid.store.migrate import LOCK_KEY, LOCK_NAME
from ctid.store.schema import metadata

config = context.config


def _lock(connection) -> None:  # noqa: ANN001
    name = connection.dialect.name
    if name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    elif name == "mssql":
        connection.execute(
            text("EXEC sp_getapplock @Resource = :name, @LockMode = 'Exclusive', @LockOwner = 'Transaction'"),
            {"name": LOCK_NAME},
        )


def _run(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=metadata,
        transactional_ddl=True,  # also on SQLite: ctid's engine emits real BEGIN / COMMIT there
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        _lock(connection)
        migration = context.get_context()
        config.attributes["revision_before"] = migration.get_current_revision()
        context.run_migrations()
        config.attributes["revision_after"] = migration.get_current_revision()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engines.create(config.get_main_option("sqlalchemy.url"), pool_size=1)
    try:
        with engine.connect() as connection:
            connection.execution_options(**{WRITE: True})
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


def run_offline() -> None:
    url = engines.normalize_url(config.get_main_option("sqlalchemy.url"))
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        transactional_ddl=True,
        # NVARCHAR(max) instead of the deprecated NTEXT (online, the server version decides this).
        dialect_opts={"deprecate_large_types": True} if url.get_backend_name() == "mssql" else {},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
