"""Presence lease: who set each agent's status and the desktop launcher's lease.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

``agents_presence.source`` is ``user``, ``launcher`` or ``lease`` (NULL in rows written before
this revision reads as ``user``); ``agents_presence.lease_until`` is when the launcher's lease
lapses (NULL: no launcher holds one); ``presence_history.source`` says who set each status.
See docs/call-model.md, "Presence and the launcher's lease".
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("agents_presence", sa.Column("source", sa.Unicode(20), nullable=True))
    op.add_column("agents_presence", sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("presence_history", sa.Column("source", sa.Unicode(20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("presence_history") as batch:
        batch.drop_column("source")
    with op.batch_alter_table("agents_presence") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("source")
