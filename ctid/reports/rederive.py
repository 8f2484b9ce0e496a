"""Re-derive the report columns of every stored call when what they depend on changed
(``reports.timezone``, tariffs, number pools, currency, phone region): rows written before keep
buckets of the old settings otherwise. Run by ``ctid serve`` when it opens the store."""

from __future__ import annotations

import logging
from typing import Any

import trio
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from ctid.errors import StoreError
from ctid.model import call_from_json
from ctid.reports.columns import DEFAULT, REPORT_COLUMNS, ReportColumns
from ctid.store.schema import calls, settings

log = logging.getLogger(__name__)

KEY = "reports.columns.fingerprint"
CHUNK = 2000


def rederive_blocking(engine: Any, columns: ReportColumns) -> int:
    """Rewrite the report columns of every call if the stored fingerprint differs; returns rows rewritten.
    Rows the 0003 migration backfilled carry the default derivation (UTC, no tariffs)."""
    from ctid.store.engine import WRITE

    statement = (update(calls).where(calls.c.id == bindparam("b_id"))
                 .values({name: bindparam(name) for name in REPORT_COLUMNS}))
    try:
        with engine.connect() as conn:
            conn.execution_options(**{WRITE: True})
            with conn.begin():
                stored = conn.execute(select(settings.c.value).where(settings.c.key == KEY)).scalar()
            if (stored or DEFAULT.fingerprint) == columns.fingerprint:
                if stored is None:
                    with conn.begin():
                        conn.execute(insert(settings).values(key=KEY, value=columns.fingerprint))
                return 0
            done, last = 0, ""
            while True:
                with conn.begin():
                    rows = conn.execute(select(calls.c.id, calls.c.data).where(calls.c.id > last)
                                        .order_by(calls.c.id).limit(CHUNK)).all()
                    if not rows:
                        break
                    conn.execute(statement, [{"b_id": row.id, **columns.values(call_from_json(row.data))}
                                             for row in rows])
                done += len(rows)
                last = rows[-1].id
            with conn.begin():
                if conn.execute(update(settings).where(settings.c.key == KEY)
                                .values(value=columns.fingerprint)).rowcount == 0:
                    conn.execute(insert(settings).values(key=KEY, value=columns.fingerprint))
            return done
    except SQLAlchemyError as exc:
        raise StoreError(f"re-deriving the report columns failed: {type(exc).__name__}: {exc}") from exc


async def rederive(store: Any) -> int:
    """:func:`rederive_blocking` for the store's engine and column settings, in a worker thread."""
    count = await trio.to_thread.run_sync(rederive_blocking, store.engine, store.columns, limiter=store.limiter)
    if count:
        log.info("re-derived the report columns of %d stored calls (reports settings changed)", count)
    return count
