"""Dead letters: webhooks whose connector raised, kept whole for an admin (ctid/store/deadletters.py).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("connector", sa.Unicode(100), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error_id", sa.Unicode(100), nullable=False),
        sa.Column("error", sa.UnicodeText(), nullable=False),
        sa.Column("method", sa.Unicode(10), nullable=False),
        sa.Column("subpath", sa.Unicode(1000), nullable=True),
        sa.Column("remote_addr", sa.Unicode(100), nullable=True),
        sa.Column("headers", sa.UnicodeText(), nullable=False),
        sa.Column("query", sa.UnicodeText(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
    )
    op.create_index("ix_dead_letters_connector", "dead_letters", ["connector"])


def downgrade() -> None:
    op.drop_index("ix_dead_letters_connector", table_name="dead_letters")
    op.drop_table("dead_letters")
