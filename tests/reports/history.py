"""A small fixed call history with hand-computed figures (tests/reports/test_golden.py), including
kpi.md §8's edge cases: a short abandon, a call crossing midnight, a transfer, a missed call called
back by another agent than the one it rang, a caller who called again himself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert

from ctid.crm import CRMFact
from ctid.model import Call, CallState, Direction, Outcome
from ctid.reports.columns import ReportColumns, Tariff
from ctid.store.records import call_row
from ctid.store.schema import presence_history
from ctid.store.writer import upsert_rows

MSK = ZoneInfo("Europe/Moscow")
N = {i: f"+7916111000{i}" if i < 10 else f"+791611100{i}" for i in range(1, 12)}

COLUMNS = ReportColumns(timezone="Europe/Moscow", currency="RUB", region="RU",
                        campaigns={"+74950000001": "Autumn"},
                        tariffs=(Tariff(per_minute=2.0, direction="mobile", increment_s=60),))


def at(day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=MSK).astimezone(UTC)


def call(pbx: str, start: datetime, *, number: str, direction: str = "inbound", wait: float | None = None,
         talk: float | None = None, hold: float = 0.0, agents: tuple[str, ...] = (), agent: str | None = None,
         group: str | None = None, facts: dict | None = None, line: str | None = None) -> Call:
    answered = talk is not None
    answered_at = start + timedelta(seconds=wait or 0) if answered else None
    ended = (answered_at + timedelta(seconds=talk + hold)) if answered else start + timedelta(seconds=wait or 0)
    result = Call(
        id=f"id-{pbx}", connector="office", pbx_call_id=pbx, direction=Direction(direction), state=CallState.ENDED,
        outcome=Outcome.ANSWERED if answered else Outcome.MISSED, remote_number=number, line_number=line,
        agent=agent if agent is not None else (agents[-1] if agents else None), group=group,
        started_at=start, answered_at=answered_at, ended_at=ended, wait_seconds=wait,
        talk_seconds=talk, hold_seconds=hold, agents=list(agents),
        transferred_from=agents[0] if len(agents) > 1 else None, updated_at=ended,
    )
    result.facts = dict(facts or {})
    return result


def history() -> list[Call]:
    return [
        call("c1", at(2, 9, 0), number=N[1], wait=10, talk=120, agents=("alice",), group="sales",
             line="+74950000001"),
        call("c2", at(2, 9, 10), number=N[2], wait=30, talk=5, agents=("bob",), group="sales",
             facts={"rating": 4.0, "campaign": "Spring", "first_call": True}),
        call("c3", at(2, 9, 20), number=N[3], wait=40, agent="alice", group="sales"),  # missed, rang alice
        call("c4", at(2, 10, 0), number=N[4], wait=3, group="sales"),  # a short abandon
        call("c5", at(2, 23, 55), number=N[5], wait=15, talk=600, agents=("alice",), group="support"),  # past midnight
        call("c6", at(2, 10, 30), number=N[6], wait=8, talk=200, hold=20, agents=("bob", "alice"), group="support",
             facts={"rating": 5.0, "cost": 2.5, "currency": "RUB", "campaign": "Spring", "utm_source": "yandex"}),
        call("c7", at(2, 9, 40), number=N[3], direction="outbound", wait=12, talk=60, agents=("bob",), agent="bob"),
        call("c8", at(3, 11, 0), number=N[8], wait=15, group="support"),  # missed, group call
        call("c9", at(3, 14, 0), number=N[8], wait=4, talk=45, agents=("alice",), group="support"),
        call("c10", at(3, 12, 0), number=N[10], wait=25, group="sales"),  # missed, never reached
        call("c11", at(4, 9, 0), number=N[11], wait=5, talk=50, agents=("alice",), group="sales"),  # outside the period
    ]


PRESENCE = [("alice", "available", at(2, 8, 0)), ("alice", "away", at(2, 12, 0)),
            ("alice", "available", at(2, 13, 0)), ("alice", "offline", at(2, 18, 0))]


def load(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execution_options(ctid_write=True)
        upsert_rows(conn, "calls", [call_row(c, COLUMNS) for c in history()])
        conn.execute(insert(presence_history), [{"agent_id": a, "status": s, "at": t} for a, s, t in PRESENCE])


async def sales_facts(phones, since, until):
    """The CRM of the golden history: the caller of c1 became a lead and a won deal of 1000."""
    facts = [CRMFact(kind="lead", record_id="L1", phone=N[1], at=at(2, 10, 0)),
             CRMFact(kind="opportunity", record_id="O1", phone=N[1], at=at(3, 10, 0), amount=1000.0),
             CRMFact(kind="won", record_id="O1", phone=N[1], at=at(5, 10, 0), amount=1000.0),
             CRMFact(kind="lead", record_id="L9", phone="+70000000000", at=at(2, 10, 0))]
    return [f for f in facts if f.phone in phones and since <= f.at < until]
