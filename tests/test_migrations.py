"""Alembic migrations: they build exactly ``schema.metadata``, run concurrently, and `ctid db` drives them."""

from __future__ import annotations

import ast
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import typer
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from typer.testing import CliRunner

from ctid.cli import db_cmd
from ctid.errors import StoreError
from ctid.store import Store, migrate
from ctid.store import engine as engines
from ctid.store.schema import metadata

HEAD = migrate.head_revision()  # the newest revision, whichever migration added it


def _cli() -> typer.Typer:
    app = typer.Typer()
    db_cmd.register(app)

    @app.callback()
    def _root() -> None:
        """Test root (keeps `db` a sub-command)."""

    return app


def _diff(url: str) -> list:
    engine = engines.create(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_schema(db_url: str) -> None:
    assert migrate.upgrade(db_url) == (None, migrate.head_revision())
    assert _diff(db_url) == []
    assert migrate.upgrade(db_url) == (migrate.head_revision(), migrate.head_revision())  # idempotent


def test_downgrade_to_base_and_back(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = engines.create(db_url)
    try:
        with engine.connect() as conn:
            conn.execution_options(ctid_write=True)
            config = migrate.alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
            conn.commit()
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    migrate.upgrade(db_url)
    assert _diff(db_url) == []


def test_concurrent_upgrades_do_not_collide(db_url: str) -> None:
    """Three processes (database lock) and two threads of this one (process lock) upgrade at once."""
    script = "import sys; from ctid.store import migrate; print(migrate.upgrade(sys.argv[1]))"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, db_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    results: list[tuple] = []
    threads = [threading.Thread(target=lambda: results.append(migrate.upgrade(db_url))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], [err.decode()[-2000:] for _, err in outputs]
    results += [ast.literal_eval(out.decode().strip()) for out, _ in outputs]
    head = migrate.head_revision()
    assert sorted(results, key=str) == sorted([(None, head)] + [(head, head)] * 4, key=str)
    assert _diff(db_url) == []


async def test_store_open_migrates(db_url: str) -> None:
    async with Store(db_url) as store:
        assert migrate.current_revision(store.engine) == migrate.head_revision()
    async with Store(db_url) as store:  # and opening again is harmless
        await store.ping()


def test_database_newer_than_ctid_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ctid.db'}"
    migrate.upgrade(url)
    engine = engines.create(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        with pytest.raises(StoreError, match="older than the database"):
            migrate.upgrade_engine(engine)
    finally:
        engine.dispose()


# --- ctid db --------------------------------------------------------------------------------------


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "ctid.yaml"
    path.write_text(f"database:\n  url: '{url}'\n")
    return path


def test_cli_upgrade_and_current(db_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, db_url)
    runner = CliRunner()

    before = runner.invoke(_cli(), ["db", "current", "--config", str(config)])
    assert before.exit_code == 1 and f"database: none, newest: {HEAD}" in before.output

    first = runner.invoke(_cli(), ["db", "upgrade", "--config", str(config)])
    assert first.exit_code == 0, first.output
    assert f"from revision none to {HEAD}" in first.output

    again = runner.invoke(_cli(), ["db", "upgrade", "-c", str(config)])
    assert again.exit_code == 0 and f"is up to date (revision {HEAD})" in again.output

    after = runner.invoke(_cli(), ["db", "current", "--url", db_url])
    assert after.exit_code == 0 and f"database: {HEAD}, newest: {HEAD}" in after.output
    assert _diff(db_url) == []


def test_cli_hides_the_password() -> None:
    result = CliRunner().invoke(
        _cli(), ["db", "upgrade", "--url", "postgresql://ctid:s3cret-pw@127.0.0.1:1/x"]
    )
    assert result.exit_code == 1
    assert "s3cret-pw" not in result.output
    assert result.output.startswith("ctid: error: cannot migrate the database")
    assert len(result.output.strip().splitlines()) == 1


def test_cli_sql_prints_ddl_without_touching_anything(tmp_path: Path) -> None:
    target = tmp_path / "untouched.db"
    result = CliRunner().invoke(_cli(), ["db", "upgrade", "--sql", "--url", f"sqlite:///{target}"])
    assert result.exit_code == 0, result.output
    assert "CREATE TABLE events" in result.output and "CREATE TABLE outbox" in result.output
    assert not target.exists()
    mssql = CliRunner().invoke(_cli(), ["db", "upgrade", "--sql", "--url", "mssql+pyodbc://u:p@dsn"])
    assert mssql.exit_code == 0 and "DATETIMEOFFSET" in mssql.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["db", "upgrade"], 2, "give --config FILE"),
        (["db", "upgrade", "--config", "/nonexistent/ctid.yaml"], 2, "configuration file not found"),
        (["db", "upgrade", "--url", "mysql://u@h/db"], 1, "unsupported database 'mysql'"),
    ],
)
def test_cli_errors_are_one_line(args: list[str], code: int, message: str) -> None:
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == code
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_cli_reports_config_errors_with_their_path(tmp_path: Path) -> None:
    config = tmp_path / "ctid.yaml"
    config.write_text("database:\n  pool_size: 0\n")
    result = CliRunner().invoke(_cli(), ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 2
    assert "database.pool_size" in result.output


def test_ctid_command_has_db_upgrade(tmp_path: Path) -> None:
    """Through the installed entry point: ``ctid db upgrade --config FILE``."""
    url = f"sqlite:///{tmp_path / 'var' / 'ctid.db'}"
    config = _config(tmp_path, url)
    done = subprocess.run(
        [sys.executable, "-m", "ctid", "db", "upgrade", "--config", str(config)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert f"from revision none to {HEAD}" in done.stdout
    assert _diff(url) == []
