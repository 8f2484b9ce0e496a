"""Time every report of `ctid report` over a realistic 1M-call history on SQLite and PostgreSQL.

The history: 180 days, 8 groups, 60 agents, 40 campaigns (facts from the PBX on 70 % of calls, the
rest by number pool), inbound with a daily and weekly rhythm, 12 % missed (a fifth of them short
abandons), callbacks after most misses (by another agent than the one rung, half the time), customers
calling again, transfers, holds, ratings, PBX costs and tariff-priced outbound calls, and the presence
history of every agent. Rows are written as ctid writes them (``call_row`` with the report columns).

    python bench/reports.py --calls 1000000 --days 180 --db sqlite,postgresql [--repeat 3] [--keep DIR]

Prints the machine, the load times and a table of the best of ``--repeat`` runs per report (the
whole period, default grouping); targets: 1 s on SQLite, 0.5 s on PostgreSQL.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trio  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from bench._common import PG_ADMIN_URL, machine  # noqa: E402
from ctid.config.models import ReportsConfig  # noqa: E402
from ctid.model import Call, CallState, Direction, Outcome  # noqa: E402
from ctid.reports.catalogue import CATALOGUE  # noqa: E402
from ctid.reports.columns import ReportColumns  # noqa: E402
from ctid.reports.engine import ReportContext, run_report  # noqa: E402
from ctid.reports.params import parse  # noqa: E402
from ctid.store import engine as engines  # noqa: E402
from ctid.store import migrate  # noqa: E402
from ctid.store.records import call_row  # noqa: E402
from ctid.store.schema import calls as calls_table  # noqa: E402
from ctid.store.schema import presence_history  # noqa: E402

TZ = "Europe/Moscow"
GROUPS = [f"group-{i}" for i in range(8)]
AGENTS = [f"agent-{i:02d}" for i in range(60)]
CAMPAIGNS = [f"campaign-{i:02d}" for i in range(40)]
POOL = {f"+7495000{i:04d}": CAMPAIGNS[i] for i in range(40)}
SETTINGS = ReportsConfig(timezone=TZ, campaigns=[{"name": c, "numbers": [n], "spend": 10000.0}
                                                 for n, c in POOL.items()],
                         tariffs=[{"direction": "mobile", "per_minute": 1.9}, {"direction": "any", "per_minute": 0.9}])
COLUMNS = ReportColumns.from_config(SETTINGS)


def history(n: int, days: int, seed: int = 7):
    """Yield ``n`` calls over ``days`` days ending yesterday, in time order."""
    rng = random.Random(seed)
    start_day = date.today() - timedelta(days=days)
    per_day = n / days
    callers = [f"+7916{rng.randrange(10**7):07d}" for _ in range(max(n // 4, 1000))]
    made = 0
    pending: list[tuple[float, str, str]] = []  # (when, number, rung agent) of missed calls to call back
    for d in range(days):
        day = start_day + timedelta(days=d)
        weekend = day.isoweekday() >= 6
        count = int(per_day * (d + 1)) - int(per_day * d)
        base = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=3)
        seconds = sorted(int(rng.triangular(7 * 3600, 21 * 3600, 12 * 3600 if not weekend else 14 * 3600))
                         for _ in range(count))
        for sec in seconds:
            if made >= n:
                return
            made += 1
            at = base + timedelta(seconds=sec, milliseconds=rng.randrange(1000))
            pbx = uuid.UUID(int=rng.getrandbits(128)).hex
            if pending and rng.random() < 0.1 and pending[0][0] < at.timestamp():
                _, number, rung = pending.pop(0)
                agent = rng.choice(AGENTS) if rng.random() < 0.5 else rung
                talk = rng.uniform(20, 300) if rng.random() < 0.8 else None
                yield _call(pbx, at, number, "outbound", agent, None, wait=rng.uniform(5, 25), talk=talk)
                continue
            number = rng.choice(callers)
            group = rng.choice(GROUPS)
            agent = rng.choice(AGENTS)
            line = rng.choice(list(POOL))
            facts = {}
            if rng.random() < 0.7:
                facts = {"campaign": rng.choice(CAMPAIGNS), "utm_source": rng.choice(["yandex", "google", "vk"]),
                         "first_call": rng.random() < 0.3}
            if rng.random() < 0.2:
                facts["rating"] = float(rng.randint(1, 5))
            if rng.random() < 0.3:
                facts["cost"] = round(rng.uniform(0.5, 5), 2)
            r = rng.random()
            if r < 0.12:  # missed; a fifth of them short abandons
                wait = rng.uniform(0, 5) if rng.random() < 0.2 else rng.uniform(5, 120)
                yield _call(pbx, at, number, "inbound", agent if rng.random() < 0.5 else None, group, wait=wait,
                            facts=facts, line=line)
                pending.append((at.timestamp() + rng.uniform(60, 7200), number, agent))
                continue
            agents = [agent] + ([rng.choice(AGENTS)] if rng.random() < 0.05 else [])
            yield _call(pbx, at, number, "inbound", agents, group, wait=rng.expovariate(1 / 15),
                        talk=rng.expovariate(1 / 150), hold=rng.uniform(5, 60) if rng.random() < 0.1 else 0.0,
                        facts=facts, line=line)


def _call(pbx, at, number, direction, agents, group, *, wait, talk=None, hold=0.0, facts=None, line=None) -> Call:
    if isinstance(agents, str) or agents is None:
        agents = [agents] if agents and talk is not None else ([] if agents is None else [])
        single = None if not agents else agents[0]
    else:
        single = agents[-1]
    answered = talk is not None
    answered_at = at + timedelta(seconds=wait) if answered else None
    ended = answered_at + timedelta(seconds=talk + hold) if answered else at + timedelta(seconds=wait)
    call = Call(id=str(uuid.uuid5(uuid.NAMESPACE_URL, pbx)), connector="bench", pbx_call_id=pbx,
                direction=Direction(direction), state=CallState.ENDED,
                outcome=Outcome.ANSWERED if answered else Outcome.MISSED, remote_number=number, line_number=line,
                agent=single, group=group, started_at=at, answered_at=answered_at, ended_at=ended,
                wait_seconds=round(wait, 3), talk_seconds=round(talk, 3) if answered else None, hold_seconds=hold,
                agents=list(agents) if answered else [], transferred_from=agents[0] if len(agents) > 1 else None,
                updated_at=ended)
    call.facts = dict(facts or {})
    return call


def presence(days: int, seed: int = 11) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    start_day = date.today() - timedelta(days=days)
    for d in range(days):
        day = start_day + timedelta(days=d)
        base = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=3)
        for agent in AGENTS:
            t = base + timedelta(hours=8, minutes=rng.randrange(60))
            for status in ("available", "away", "available", "dnd", "available", "offline"):
                rows.append({"agent_id": agent, "status": status, "at": t})
                t += timedelta(minutes=rng.randrange(30, 180))
    return rows


def load(url: str, n: int, days: int) -> float:
    started = time.perf_counter()
    migrate.upgrade(url)
    engine = engines.create(url)
    batch: list[dict] = []
    with engine.begin() as conn:
        conn.execution_options(ctid_write=True)
        for call in history(n, days):
            batch.append(call_row(call, COLUMNS))
            if len(batch) == 20_000:
                conn.execute(insert(calls_table), batch)
                batch.clear()
        if batch:
            conn.execute(insert(calls_table), batch)
        conn.execute(insert(presence_history), presence(days))
    with engine.connect() as conn:
        conn.execution_options(ctid_write=True, isolation_level="AUTOCOMMIT")
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


async def time_reports(url: str, days: int, repeat: int) -> dict[str, float]:
    """Best of ``repeat`` runs of every report over the whole history. The first report over days
    not in the rollup yet builds it (once; timed apart as ``(rollup build)``)."""
    from ctid.reports import rollup

    engine = engines.create(url)
    ctx = ReportContext(engine, SETTINGS, {a: a for a in AGENTS}, None)
    last = date.today() - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    best: dict[str, float] = {}
    t0 = time.perf_counter()
    await trio.to_thread.run_sync(rollup.built_days, engine, first, last, ctx.knobs, SETTINGS.timezone,
                                  date.today())
    best["(rollup build)"] = time.perf_counter() - t0
    for name in CATALOGUE:
        params = parse(name, date_from=first.isoformat(), date_to=last.isoformat(), max_days=days + 1)
        for _ in range(repeat):
            t0 = time.perf_counter()
            await run_report(ctx, params)
            best[name] = min(best.get(name, 1e9), time.perf_counter() - t0)
    engine.dispose()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="Keep the SQLite file in this directory.")
    parser.add_argument("--reuse", action="store_true", help="Reuse the SQLite file of --keep (no reload).")
    args = parser.parse_args()
    print(machine())
    work = args.keep or Path(tempfile.mkdtemp(prefix="ctid-reports-"))
    results: dict[str, dict[str, float]] = {}
    for db in args.db.split(","):
        if db == "sqlite":
            url = f"sqlite:///{work / 'reports.db'}"
            if not (args.reuse and (work / "reports.db").exists()):
                Path(work / "reports.db").unlink(missing_ok=True)
        else:
            name = f"bench_reports_{uuid.uuid4().hex[:8]}"
            admin = engines.create(PG_ADMIN_URL)
            with admin.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT", ctid_write=True)
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        try:
            if db == "sqlite" and args.reuse and (work / "reports.db").exists():
                migrate.upgrade(url)
                print(f"{db}: reusing {work / 'reports.db'}")
            else:
                seconds = load(url, args.calls, args.days)
                print(f"{db}: loaded {args.calls:,} calls in {seconds:.0f} s")
            results[db] = trio.run(time_reports, url, args.days, args.repeat)
        finally:
            if db != "sqlite":
                with admin.connect() as conn:
                    conn.execution_options(isolation_level="AUTOCOMMIT", ctid_write=True)
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    targets = {"sqlite": 1.0, "postgresql": 0.5}
    dbs = list(results)
    print(f"\n{'report':<15}" + "".join(f"{db + ' (s)':>18}" for db in dbs))
    for name in ["(rollup build)", *CATALOGUE]:
        cells = []
        for db in dbs:
            value = results[db][name]
            mark = "" if name.startswith("(") else (" ok" if value <= targets.get(db, 1) else " !!")
            cells.append(f"{value:>14.3f}{mark:>4}")
        print(f"{name:<15}" + "".join(cells))


if __name__ == "__main__":
    main()
