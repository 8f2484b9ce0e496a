"""Initial schema: events, calls, presence, tasks, outbox, plugin records, settings.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Types are spelled out here (not imported from ``ctid.store.schema``) so this revision keeps meaning
the same thing when the schema module moves on. ``UTCDateTime`` is ``DateTime(timezone=True)`` and
``JSONText`` is ``UnicodeText`` in the database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("connector", sa.Unicode(100), nullable=False),
        sa.Column("key", sa.Unicode(200), nullable=False),
        sa.Column("call_id", sa.Unicode(36), nullable=False),
        sa.Column("kind", sa.Unicode(20), nullable=False),
        _ts("at"),
        _ts("received_at", nullable=False),
        sa.Column("payload", sa.UnicodeText(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("connector", "key", name="uq_events_connector_key"),
    )
    op.create_index("ix_events_call_id", "events", ["call_id"])

    op.create_table(
        "calls",
        sa.Column("id", sa.Unicode(36), nullable=False),
        sa.Column("connector", sa.Unicode(100), nullable=False),
        sa.Column("pbx_call_id", sa.Unicode(200), nullable=False),
        sa.Column("direction", sa.Unicode(20), nullable=False),
        sa.Column("state", sa.Unicode(20), nullable=False),
        sa.Column("outcome", sa.Unicode(20), nullable=True),
        sa.Column("remote_number", sa.Unicode(64), nullable=True),
        sa.Column("line_number", sa.Unicode(64), nullable=True),
        sa.Column("agent", sa.Unicode(100), nullable=True),
        sa.Column("group_name", sa.Unicode(100), nullable=True),
        _ts("started_at"),
        _ts("answered_at"),
        _ts("ended_at"),
        sa.Column("wait_seconds", sa.Float(), nullable=True),
        sa.Column("talk_seconds", sa.Float(), nullable=True),
        sa.Column("hold_seconds", sa.Float(), nullable=True),
        _ts("updated_at", nullable=False),
        sa.Column("data", sa.UnicodeText(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_calls"),
        sa.UniqueConstraint("connector", "pbx_call_id", name="uq_calls_connector_pbx_call_id"),
    )
    for column in ("agent", "remote_number", "started_at", "updated_at"):
        op.create_index(f"ix_calls_{column}", "calls", [column])

    op.create_table(
        "agents_presence",
        sa.Column("agent_id", sa.Unicode(100), nullable=False),
        sa.Column("status", sa.Unicode(20), nullable=False),
        _ts("since", nullable=False),
        sa.PrimaryKeyConstraint("agent_id", name="pk_agents_presence"),
    )

    op.create_table(
        "presence_history",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("agent_id", sa.Unicode(100), nullable=False),
        sa.Column("status", sa.Unicode(20), nullable=False),
        _ts("at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_presence_history"),
    )
    op.create_index("ix_presence_history_agent_id_at", "presence_history", ["agent_id", "at"])

    op.create_table(
        "tasks",
        sa.Column("id", sa.Unicode(36), nullable=False),
        sa.Column("number", sa.Unicode(64), nullable=False),
        sa.Column("status", sa.Unicode(20), nullable=False),
        sa.Column("owner", sa.Unicode(100), nullable=True),
        sa.Column("data", sa.UnicodeText(), nullable=False),
        _ts("updated_at", nullable=False),
        sa.Column("crm_ref", sa.Unicode(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
    )
    for column in ("number", "owner", "status", "updated_at"):
        op.create_index(f"ix_tasks_{column}", "tasks", [column])

    op.create_table(
        "outbox",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("kind", sa.Unicode(40), nullable=False),
        sa.Column("ref", sa.Unicode(100), nullable=False),
        sa.Column("payload", sa.UnicodeText(), nullable=False),
        _ts("created_at", nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at"),
        _ts("done_at"),
        sa.Column("last_error", sa.UnicodeText(), nullable=True),
        sa.Column("dedupe_key", sa.Unicode(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("dedupe_key", name="uq_outbox_dedupe_key"),
    )
    op.create_index("ix_outbox_next_attempt_at", "outbox", ["next_attempt_at"])
    op.create_index("ix_outbox_ref", "outbox", ["ref"])

    op.create_table(
        "plugin_records",
        sa.Column("plugin", sa.Unicode(64), nullable=False),
        sa.Column("kind", sa.Unicode(64), nullable=False),
        sa.Column("key", sa.Unicode(200), nullable=False),
        sa.Column("data", sa.UnicodeText(), nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("plugin", "kind", "key", name="pk_plugin_records"),
    )

    op.create_table(
        "settings",
        sa.Column("key", sa.Unicode(100), nullable=False),
        sa.Column("value", sa.UnicodeText(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_settings"),
    )


def downgrade() -> None:
    for table in ("settings", "plugin_records", "outbox", "tasks", "presence_history", "agents_presence"):
        op.drop_table(table)
    op.drop_table("calls")
    op.drop_table("events")
