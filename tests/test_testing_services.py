"""The test-service fixtures themselves: shared servers, private fallbacks, isolation and cleanup."""

from __future__ import annotations

import os

import psycopg
import pytest
import redis
from sqlalchemy.engine import make_url

from ctid.testing import services


def test_postgres_url_is_a_fresh_database(postgres_url: str) -> None:
    url = make_url(postgres_url)
    assert url.drivername == "postgresql+psycopg" and url.database.startswith(f"ctid_test_{os.getpid()}_")
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(False)) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert tables == (0,)


def test_postgres_schema_url_isolates_a_test(postgres_url: str) -> None:
    with services.postgres_schema(postgres_url) as url:
        libpq = make_url(url).set(drivername="postgresql").render_as_string(False)
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute("CREATE TABLE probe (x int)")
            schema = conn.execute("SELECT current_schema()").fetchone()[0]
        assert schema.startswith("t_")
    with psycopg.connect(make_url(postgres_url).set(drivername="postgresql").render_as_string(False)) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() == (
            0,
        )


def test_redis_prefix_keys_are_deleted_after_the_test(redis_url: str) -> None:
    prefix = "ctid-test:probe:"
    client = redis.Redis.from_url(redis_url)
    try:
        client.set(f"{prefix}a", 1)
        client.set("ctid-test:other:b", 1)
        services.delete_redis_prefix(redis_url, prefix)
        assert client.exists(f"{prefix}a") == 0 and client.exists("ctid-test:other:b") == 1
    finally:
        client.delete("ctid-test:other:b")
        client.close()


def test_private_servers_start_and_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback used when nothing listens on the default ports (e.g. a bare CI runner)."""
    monkeypatch.setenv("CTID_TEST_START_SERVERS", "1")
    with services.redis_server() as url:
        assert not url.startswith("redis://127.0.0.1:6379")
        client = redis.Redis.from_url(url)
        assert client.ping()
        client.close()
    gone = redis.Redis.from_url(url, socket_connect_timeout=1)
    with pytest.raises(redis.ConnectionError):
        gone.ping()
    gone.close()

    with services.postgres_server() as server, services.postgres_database(server) as database:
        assert make_url(server).port != 5432
        with psycopg.connect(make_url(database).set(drivername="postgresql").render_as_string(False)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server, connect_timeout=2)
