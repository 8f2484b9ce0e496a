"""The daily rollup answers exactly what the live query answers, follows late changes of closed days
and changes of the KPI settings, and its statements compile for MS SQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select, update
from sqlalchemy.dialects import mssql

from ctid.reports import queries as q
from ctid.reports import rollup
from ctid.reports.rollup import kpi_rows
from ctid.store.schema import calls, report_rollup_days

FIRST, LAST = date(2026, 3, 1), date(2026, 3, 5)


def _norm(rows):
    return sorted(((r.get("key"), tuple(sorted((k, round(v, 6) if isinstance(v, float) else v)
                                               for k, v in r.items() if k not in ("key", "new_contacts") and v not in (None, 0))))
                   for r in rows), key=str)


@pytest.mark.parametrize("key,group", [(None, None), ("day", None), ("hour", None), ("weekday", None),
                                       ("group", None), ("agent", None), ("campaign", None), (None, "sales"),
                                       ("hour", "support"), ("group", "sales")])
async def test_rollup_equals_live(golden, key, group):
    scope = q.Scope(FIRST, LAST, group=group)
    golden.rollup = False
    live = await kpi_rows(golden, scope, key)
    golden.rollup = True
    rolled = await kpi_rows(golden, scope, key)
    assert _norm(rolled) == _norm(live)
    with golden.engine.connect() as conn:  # the closed days were built (today is never)
        assert {r[0] for r in conn.execute(select(report_rollup_days.c.local_date))} >= {"2026-03-02", "2026-03-03"}


async def test_a_late_change_rebuilds_its_day(golden):
    scope = q.Scope(FIRST, LAST)
    [before] = await kpi_rows(golden, scope, None)
    with golden.engine.begin() as conn:
        conn.execution_options(ctid_write=True)
        conn.execute(update(calls).where(calls.c.pbx_call_id == "c10").values(
            outcome="answered", talk_seconds=40.0, answered_by="bob", updated_at=datetime.now(UTC)))
    [after] = await kpi_rows(golden, scope, None)
    assert (after.answered, after.abandoned) == (before.answered + 1, before.abandoned - 1)


async def test_other_settings_rebuild_everything(golden):
    scope = q.Scope(FIRST, LAST)
    [sl20] = await kpi_rows(golden, scope, None)
    golden.settings = golden.settings.model_copy(update={"service_level_seconds": 9})
    [sl9] = await kpi_rows(golden, scope, None)
    assert (sl20.answered_in_sl, sl9.answered_in_sl) == (5, 3)  # waits 10 15 8 4 (+ c11: 5): within 9 s 8 4 5


def test_statements_compile_for_mssql():
    for dim in rollup.DIMS:
        str(rollup.build_statement(FIRST, LAST, q.Knobs(), dim).compile(dialect=mssql.dialect()))
    for by in (None, "local_date", "local_hour", "dim_value"):
        str(rollup.read_statement(FIRST, LAST, "group", by, "sales").compile(dialect=mssql.dialect()))
    str(rollup.changed_calls(datetime(2026, 3, 1, tzinfo=UTC)).compile(dialect=mssql.dialect()))
    str(rollup.days_of_numbers(["+7"]).compile(dialect=mssql.dialect()))


async def test_changed_time_zone_rederives_stored_rows(golden):
    """The golden rows were written for Europe/Moscow; a store configured for UTC rewrites them once."""
    from ctid.reports.columns import ReportColumns
    from ctid.reports.rederive import rederive_blocking

    moscow = ReportColumns(timezone="Europe/Moscow")
    assert rederive_blocking(golden.engine, moscow) == 11  # no fingerprint yet: rows are the default's
    assert rederive_blocking(golden.engine, moscow) == 0  # done once
    with golden.engine.connect() as conn:
        assert conn.execute(select(calls.c.local_date, calls.c.local_hour).where(calls.c.pbx_call_id == "c5")).one() \
            == ("2026-03-02", 23)
    assert rederive_blocking(golden.engine, ReportColumns(timezone="UTC")) == 11
    with golden.engine.connect() as conn:  # 23:55 in Moscow is 20:55 UTC
        assert conn.execute(select(calls.c.local_date, calls.c.local_hour).where(calls.c.pbx_call_id == "c5")).one() \
            == ("2026-03-02", 20)


@pytest.mark.parametrize("key,group", [(None, None), ("group", None), ("hour", None), (None, "sales"),
                                       ("group", "support")])
async def test_wait_histograms_equal_live(golden, key, group):
    scope = q.Scope(FIRST, LAST, group=group)
    golden.rollup = False
    live = await rollup.wait_histogram(golden, scope, key)
    golden.rollup = True
    rolled = await rollup.wait_histogram(golden, scope, key)

    def norm(hist):
        merged: dict = {}
        for k, pairs in hist.items():
            for seconds, n in pairs:
                merged[(k, seconds)] = merged.get((k, seconds), 0) + n
        return merged

    assert norm(rolled) == norm(live) and norm(live)
    for dim in rollup.WAIT_DIMS:
        str(rollup.wait_read_statement(FIRST, LAST, dim, "x").compile(dialect=mssql.dialect()))
        str(rollup.wait_build_statement(FIRST, LAST, q.Knobs(), rollup.WAIT_DIMS[dim]).compile(dialect=mssql.dialect()))


async def test_new_contacts_equal_live(golden):
    scope = q.Scope(FIRST, LAST)
    golden.rollup = False
    live = await rollup.new_contacts(golden, scope, "campaign")
    golden.rollup = True
    assert await rollup.new_contacts(golden, scope, "campaign") == live == {"Spring": 2, "Autumn": 1, None: 6}  # c3 c4 c5 c8 c10 c11; c9 is N8 again


async def test_missed_rows_equal_live_and_follow_a_later_callback(golden):
    from ctid.store.records import call_row
    from ctid.store.writer import upsert_rows

    from .history import COLUMNS, N, at, call

    scope = q.Scope(FIRST, LAST)

    def norm(rows):
        return sorted((r.id, r.next_epoch, r.next_direction, r.next_dialer) for r in rows)

    golden.rollup = False
    live = await rollup.missed_rows(golden, scope)
    golden.rollup = True
    assert norm(await rollup.missed_rows(golden, scope)) == norm(live)
    # c10 (03-03, never reached) is called back on 03-05 by alice: its closed day's follow-up changes
    with golden.engine.begin() as conn:
        conn.execution_options(ctid_write=True)
        late = call("c12", at(5, 10, 0), number=N[10], direction="outbound", wait=5, talk=30, agents=("alice",),
                    agent="alice")
        late.updated_at = datetime.now(UTC)
        upsert_rows(conn, "calls", [call_row(late, COLUMNS)])
    [c10] = [r for r in await rollup.missed_rows(golden, scope) if r.id == "id-c10"]
    assert (c10.next_direction, c10.next_dialer) == ("outbound", "alice")


@pytest.mark.parametrize("key", ["direction", "agent", "group", "campaign", "day", "cost_source"])
async def test_cost_rows_equal_live(golden, key):
    scope = q.Scope(FIRST, LAST)

    def norm(rows):
        return sorted((str(r.key), str(r.cost_currency), r.calls, r.priced, round(r.cost or 0, 6), round(r.talk, 6))
                      for r in rows)

    golden.rollup = False
    live = await rollup.cost_rows(golden, scope, key)
    golden.rollup = True
    assert norm(await rollup.cost_rows(golden, scope, key)) == norm(live)


def test_followup_statements_compile_for_mssql(golden):
    from ctid.reports import followup as fu
    from ctid.store.schema import report_missed

    sources = [select(report_missed).subquery("kept"), q.missed_followups(q.Scope(FIRST, LAST), q.Knobs())
               .subquery("live")]
    for source in sources:
        for statement in (fu.aggregate(source, "group_name", golden.settings), fu.aggregate(source, None, golden.settings),
                          fu.delay_histogram(source, "agent", golden.settings),
                          fu.callbacks_by_agent(source, golden.settings), fu.not_reached(source, golden.settings)):
            text = str(statement.compile(dialect=mssql.dialect()))
            assert "LIMIT" not in text


async def test_kept_built_ahead_of_reports(golden):
    """ctid serve builds the closed days of the last max_days in the background (no report asked)."""
    import trio

    golden.settings = golden.settings.model_copy(update={"max_days": 400})
    days: set[str] = set()
    async with trio.open_nursery() as nursery:
        await nursery.start(rollup.keep_built, golden.engine, golden.settings, None)
        with trio.fail_after(20):
            while not {"2026-03-02", "2026-03-03", "2026-03-04"} <= days:
                await trio.sleep(0.05)  # the build runs in a worker thread: poll its result
                with golden.engine.connect() as conn:
                    days = {r[0] for r in conn.execute(select(report_rollup_days.c.local_date))}
        nursery.cancel_scope.cancel()


async def test_presence_seconds_equal_live(golden):
    golden.rollup = False
    live = await rollup.presence_seconds(golden, FIRST, LAST, None)
    golden.rollup = True
    assert await rollup.presence_seconds(golden, FIRST, LAST, None) == live
    assert live == {("2026-03-02", "alice", "available"): 9 * 3600.0, ("2026-03-02", "alice", "away"): 3600.0}
    assert await rollup.presence_seconds(golden, FIRST, LAST, "bob") == {}
