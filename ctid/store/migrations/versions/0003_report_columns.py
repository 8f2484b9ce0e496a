"""Report columns on ``calls``: local date / hour / minute / weekday, epoch times, who answered,
transfers, campaign and UTM, cost, rating, new contact; and the reports' covering indexes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

Existing rows are backfilled from their stored call JSON with the derivation of this revision,
in UTC and without tariffs or number pools (this revision cannot see the configuration).
``ctid serve`` re-derives every row when ``reports.timezone``, the tariffs or the campaigns'
number pools differ from what the rows were derived with (``ctid.reports.rederive``).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TEXT = [("campaign", 200), ("channel", 100), ("utm_source", 200), ("utm_medium", 200), ("utm_campaign", 200)]


def _columns() -> list[sa.Column]:
    return [
        sa.Column("local_date", sa.Unicode(10), nullable=True),
        sa.Column("local_hour", sa.Integer(), nullable=True),
        sa.Column("local_minute", sa.Integer(), nullable=True),
        sa.Column("local_weekday", sa.Integer(), nullable=True),
        sa.Column("started_epoch", sa.Float(), nullable=True),
        sa.Column("ended_epoch", sa.Float(), nullable=True),
        sa.Column("answered_by", sa.Unicode(100), nullable=True),
        sa.Column("transfers", sa.Integer(), nullable=True),
        *(sa.Column(name, sa.Unicode(size), nullable=True) for name, size in _TEXT),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("cost_currency", sa.Unicode(3), nullable=True),
        sa.Column("cost_source", sa.Unicode(10), nullable=True),
        sa.Column("rating", sa.Float(), nullable=True),
        sa.Column("new_contact", sa.Boolean(create_constraint=False), nullable=True),
    ]


_NAMES = [column.name for column in _columns()]
_INDEXES = {
    "ix_calls_report_day": [
        "local_date",
        "direction",
        "outcome",
        "group_name",
        "wait_seconds",
        "talk_seconds",
    ],
    "ix_calls_followup": ["remote_number", "started_epoch", "outcome", "direction", "answered_by"],
    "ix_calls_agent_day": ["answered_by", "local_date"],
}


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC) if value else None


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def derive(data: dict[str, Any]) -> dict[str, Any]:
    """This revision's report columns of one stored call (UTC buckets)."""
    facts = data.get("facts") or {}
    started = _time(data.get("started_at")) or _time(data.get("answered_at")) or _time(data.get("ended_at"))
    ended = _time(data.get("ended_at"))
    agents = list(data.get("agents") or [])
    answered = data.get("outcome") == "answered" or (
        not data.get("outcome") and bool(data.get("answered_at"))
    )
    cost = _number(facts.get("cost"))
    row = {
        "local_date": started.date().isoformat() if started else None,
        "local_hour": started.hour if started else None,
        "local_minute": started.hour * 60 + started.minute if started else None,
        "local_weekday": started.isoweekday() if started else None,
        "started_epoch": started.timestamp() if started else None,
        "ended_epoch": ended.timestamp() if ended else None,
        "answered_by": (agents[0] if agents else data.get("agent")) if answered else None,
        "transfers": max(len(agents) - 1, 0) if agents else (1 if data.get("transferred_from") else 0),
        "campaign": facts.get("campaign") or facts.get("utm_campaign"),
        "cost": cost,
        "cost_currency": str(facts.get("currency") or "")[:3] or None if cost is not None else None,
        "cost_source": "pbx" if cost is not None else None,
        "rating": _number(facts.get("rating")),
        "new_contact": facts.get("first_call") if isinstance(facts.get("first_call"), bool) else None,
    }
    for name in ("channel", "utm_source", "utm_medium", "utm_campaign"):
        row[name] = facts.get(name)
    for name, size in _TEXT:
        row[name] = str(row[name])[:size] if row[name] is not None else None
    return row


def upgrade() -> None:
    for column in _columns():
        op.add_column("calls", column)
    for name, columns in _INDEXES.items():
        op.create_index(name, "calls", columns)
    if op.get_context().as_sql:  # `ctid db upgrade --sql`: no data to read
        return
    conn = op.get_bind()
    calls = sa.table("calls", sa.column("id"), sa.column("data"), *(sa.column(name) for name in _NAMES))
    update = (
        sa.update(calls)
        .where(calls.c.id == sa.bindparam("b_id"))
        .values({name: sa.bindparam(name) for name in _NAMES})
    )
    last = ""
    while True:  # in chunks by id: memory stays flat on big tables
        rows = conn.execute(
            sa.select(calls.c.id, calls.c.data).where(calls.c.id > last).order_by(calls.c.id).limit(2000)
        ).all()
        if not rows:
            break
        conn.execute(update, [{"b_id": row.id, **derive(json.loads(row.data))} for row in rows])
        last = rows[-1].id


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="calls")
    with op.batch_alter_table("calls") as batch:
        for name in reversed(_NAMES):
            batch.drop_column(name)
