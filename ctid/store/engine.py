"""Builds the SQLAlchemy engine for a database URL: SQLite (WAL), PostgreSQL (psycopg 3) or MS SQL (pyodbc).

URL handling: ``postgresql://`` and ``postgres://`` are rewritten to ``postgresql+psycopg://``;
``sqlite:///relative/or/absolute.db`` gets its parent directory created; ``sqlite://`` (memory) uses
one shared connection (``StaticPool``), so every thread sees the same database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from ctid.errors import StoreError

#: Execution option marking a connection whose transaction will write (SQLite: ``BEGIN IMMEDIATE``,
#: which takes the write lock up front and waits for it instead of failing on lock upgrade).
WRITE = "ctid_write"

SQLITE_BUSY_TIMEOUT_MS = 10_000


def describe_error(exc: BaseException) -> str:
    """One line about a database error: the driver's exception type and first message line
    (never the SQL statement or its parameters, which may hold personal data)."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def normalize_url(url: str | URL) -> URL:
    """Parse ``url`` and pick ctid's driver for each backend; raises :class:`StoreError` if unusable."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError as exc:
        raise StoreError(f"invalid database URL: {exc}") from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise StoreError(f"unsupported PostgreSQL driver {driver!r}: use postgresql+psycopg://")
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise StoreError(f"unsupported SQLite driver {driver!r}: use sqlite:///path/to/file.db")
        return parsed.set(drivername="sqlite")
    if backend == "mssql":
        if driver not in ("", "pyodbc"):
            raise StoreError(f"unsupported MS SQL driver {driver!r}: use mssql+pyodbc://")
        return parsed.set(drivername="mssql+pyodbc")
    raise StoreError(
        f"unsupported database {backend!r}: use sqlite:///file.db, postgresql+psycopg://... or mssql+pyodbc://..."
    )


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def create(url: str | URL, *, pool_size: int = 5) -> Engine:
    """Create the engine for ``url`` (see module docstring); raises :class:`StoreError` on a bad URL."""
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        if is_memory_sqlite(parsed):
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            try:
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the directory of {parsed.database}: {exc}") from exc
            kwargs.update(pool_size=pool_size, connect_args={"check_same_thread": False})
    elif backend == "postgresql":
        kwargs.update(pool_size=pool_size, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    elif backend == "mssql":
        kwargs.update(
            pool_size=pool_size, pool_pre_ping=True, fast_executemany=True, deprecate_large_types=True
        )
    try:
        engine = create_engine(parsed, **kwargs)
    except (ImportError, NoSuchModuleError) as exc:
        hint = " (install it with: pip install 'ctid[mssql]')" if backend == "mssql" else ""
        raise StoreError(f"the database driver for {backend} is not installed: {exc}{hint}") from exc
    except ArgumentError as exc:
        raise StoreError(f"invalid database URL: {exc}") from exc
    if backend == "sqlite":
        _sqlite_setup(engine, wal=not is_memory_sqlite(parsed))
    return engine


def _sqlite_setup(engine: Engine, *, wal: bool) -> None:
    """Real transactions on SQLite: the driver's own transaction handling is switched off and ctid
    emits ``BEGIN`` itself (the SQLAlchemy-documented recipe), ``BEGIN IMMEDIATE`` for writers."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if wal:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
