"""The dead-letter table (ctid/store/deadletters.py) on SQLite and PostgreSQL, and its statements and
DDL compiled for MS SQL: a request is kept byte for byte (a body that is not UTF-8, text that is not
Unicode made safe), listed newest first, read, deleted, and bounded in number."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.dialects import mssql
from sqlalchemy.schema import CreateTable

from ctid.connector import WebhookRequest
from ctid.store import Store
from ctid.store import deadletters as dl
from ctid.store.schema import dead_letters

MSSQL = mssql.dialect(deprecate_large_types=True)
T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("name", sorted(dl.BUILDERS))
def test_statements_compile_for_mssql(name: str) -> None:
    sql = str(getattr(dl, name)(*dl.BUILDERS[name]).compile(dialect=MSSQL))
    assert "dead_letters" in sql and "ON CONFLICT" not in sql
    if name == "list_dead_letters":
        assert "TOP" in sql or "FETCH" in sql


def test_table_compiles_for_mssql() -> None:
    ddl = str(CreateTable(dead_letters).compile(dialect=MSSQL))
    assert "VARBINARY(max)" in ddl and "NVARCHAR(max)" in ddl and "DATETIMEOFFSET" in ddl


def _request(body: bytes, **headers: str) -> WebhookRequest:
    return WebhookRequest(method="POST", subpath="", headers={"content-type": "application/json", **headers},
                          query={"q": "1"}, body=body, remote_addr="10.0.0.7", received_at=T0)


async def test_kept_listed_read_and_deleted(db_url: str) -> None:
    async with Store(db_url) as store:
        letters = dl.DeadLetters(store, max_kept=3)
        body = b'\xff\xfe{"not": "utf-8"}'
        first = await letters.add("mf", _request(body, **{"x-odd": "a\udc00b"}), "plugin_failed", "KeyError: 'x'")
        second = await letters.add("office", _request(b"{}"), "plugin_failed", "boom \ud800")
        assert second > first
        assert [(d.id, d.connector) for d in await letters.list()] == [(second, "office"), (first, "mf")]
        assert [d.id for d in await letters.list(connector="mf")] == [first]
        assert [d.id for d in await letters.list(before_id=second)] == [first]
        kept = await letters.get(first)
        assert kept.request.body == body and kept.request.query == {"q": "1"}
        assert kept.request.headers["x-odd"] == "a?b" and kept.received_at == T0
        assert kept.error == "KeyError: 'x'" and kept.to_json()["body_bytes"] == len(body)
        assert await letters.delete(first) is True and await letters.delete(first) is False
        assert await letters.get(first) is None
        for _ in range(4):  # bounded: the oldest go first
            await letters.add("office", _request(b"{}"), "plugin_failed", "again")
        assert len(await letters.list()) == 3
