"""Report rollup: per-day sums of the KPI aggregates (``report_rollup``, ``report_wait_rollup``,
``report_missed``, ``report_cost_rollup``,
``report_presence``, ``report_rollup_days``), and
``ix_calls_report_day`` widened to cover every column those aggregates read.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

The rollup starts empty: the first report over a day builds it (ctid.reports.rollup).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_INTS = ("offered_all", "answered", "short_abandons", "abandoned", "answered_in_sl", "abandoned_in_sl",
         "short_calls", "target", "transfers", "outbound", "outbound_connected", "rating_n", "new_contacts")
_FLOATS = ("abandon_wait_sum", "wait_sum", "wait_max", "talk_sum", "hold_sum", "outbound_talk", "rating_sum",
           "cost_sum")
_OLD_INDEX = ["local_date", "direction", "outcome", "group_name", "wait_seconds", "talk_seconds"]
_NEW_INDEX = ["local_date", "state", "direction", "outcome", "group_name", "answered_by", "agent", "wait_seconds",
              "talk_seconds", "hold_seconds", "transfers", "rating", "cost", "local_hour", "local_weekday",
              "campaign"]


def upgrade() -> None:
    op.create_table(
        "report_rollup",
        sa.Column("local_date", sa.Unicode(10), nullable=False),
        sa.Column("dim", sa.Unicode(10), nullable=False),
        sa.Column("dim_value", sa.Unicode(200), nullable=False),
        sa.Column("local_hour", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _INTS),
        *(sa.Column(name, sa.Float(), nullable=True) for name in _FLOATS),
        sa.PrimaryKeyConstraint("local_date", "dim", "dim_value", "local_hour", name="pk_report_rollup"),
    )
    op.create_table(
        "report_wait_rollup",
        sa.Column("local_date", sa.Unicode(10), nullable=False),
        sa.Column("dim", sa.Unicode(10), nullable=False),
        sa.Column("dim_value", sa.Unicode(200), nullable=False),
        sa.Column("wait_s", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("local_date", "dim", "dim_value", "wait_s", name="pk_report_wait_rollup"),
    )
    op.create_table(
        "report_missed",
        sa.Column("local_date", sa.Unicode(10), nullable=False),
        sa.Column("id", sa.Unicode(36), nullable=False),
        sa.Column("group_name", sa.Unicode(100), nullable=True),
        sa.Column("agent", sa.Unicode(100), nullable=True),
        sa.Column("wait_seconds", sa.Float(), nullable=True),
        sa.Column("started_epoch", sa.Float(), nullable=True),
        sa.Column("ended_epoch", sa.Float(), nullable=True),
        sa.Column("local_minute", sa.Integer(), nullable=True),
        sa.Column("local_weekday", sa.Integer(), nullable=True),
        sa.Column("remote_number", sa.Unicode(64), nullable=True),
        sa.Column("next_epoch", sa.Float(), nullable=True),
        sa.Column("next_direction", sa.Unicode(20), nullable=True),
        sa.Column("next_agent", sa.Unicode(100), nullable=True),
        sa.Column("next_dialer", sa.Unicode(100), nullable=True),
        sa.PrimaryKeyConstraint("local_date", "id", name="pk_report_missed"),
    )
    op.create_table(
        "report_cost_rollup",
        sa.Column("local_date", sa.Unicode(10), nullable=False),
        sa.Column("dim", sa.Unicode(12), nullable=False),
        sa.Column("dim_value", sa.Unicode(200), nullable=False),
        sa.Column("currency", sa.Unicode(3), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("priced", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("talk", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("local_date", "dim", "dim_value", "currency", name="pk_report_cost_rollup"),
    )
    op.create_table(
        "report_presence",
        sa.Column("local_date", sa.Unicode(10), nullable=False),
        sa.Column("agent_id", sa.Unicode(100), nullable=False),
        sa.Column("status", sa.Unicode(20), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("local_date", "agent_id", "status", name="pk_report_presence"),
    )
    op.create_table(
        "report_rollup_days",
        sa.Column("local_date", sa.Unicode(10), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("local_date", name="pk_report_rollup_days"),
    )
    op.drop_index("ix_calls_report_day", table_name="calls")
    op.create_index("ix_calls_report_day", "calls", _NEW_INDEX)


def downgrade() -> None:
    op.drop_index("ix_calls_report_day", table_name="calls")
    op.create_index("ix_calls_report_day", "calls", _OLD_INDEX)
    op.drop_table("report_rollup_days")
    op.drop_table("report_presence")
    op.drop_table("report_cost_rollup")
    op.drop_table("report_missed")
    op.drop_table("report_wait_rollup")
    op.drop_table("report_rollup")
