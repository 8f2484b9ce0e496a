"""Shared fixtures for ctid's own tests: real databases and Redis (see ``ctid.testing.services``).

- ``postgres_url`` (session): a fresh PostgreSQL database for this test session, dropped at the end.
- ``postgres_schema_url``: a clean schema in that database for one test (cheap isolation).
- ``db_url``: parametrized ``sqlite`` (a temporary file) and ``postgresql`` (a clean schema);
  a test using it runs on both.
- ``store``: an open :class:`~ctid.store.Store` on ``db_url`` with its writer running.
- ``redis_url`` (session) and ``redis_prefix``: a Redis server (shared: keep your keys and channels
  under ``redis_prefix``; its keys are deleted after the test).

When a server cannot be had the fixtures skip, or fail when the ``CI`` environment variable is set.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from ctid.testing import services


def _unavailable(reason: str) -> None:
    services.fail_or_skip(f"test service unavailable: {reason}")


@contextlib.contextmanager
def _service(cm: contextlib.AbstractContextManager[str]) -> Iterator[str]:
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(cm)
        except services.ServiceUnavailable as exc:
            _unavailable(str(exc))
        yield url


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    with _service(services.postgres_server()) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    with services.postgres_database(postgres_server_url) as url:
        yield url


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    with services.postgres_schema(postgres_url) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # noqa: ANN001
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ctid.db'}"
    return request.getfixturevalue("postgres_schema_url")


@pytest.fixture
async def store(db_url: str, nursery):  # noqa: ANN001 - pytest-trio's nursery
    from ctid.store import Store

    store = Store(db_url, threads=4)
    await store.open()
    await nursery.start(store.run_writer)
    yield store
    await store.aclose()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with _service(services.redis_server()) as url:
        yield url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"ctid-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    services.delete_redis_prefix(redis_url, prefix)
