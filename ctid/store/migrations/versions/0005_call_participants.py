"""Every agent entitled to see a call, searchable: ``calls.participants`` (ctid.store.participants).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

An agent's ``GET /api/calls`` left out calls the agent answered and then transferred (it filtered
on the final ``agent`` only). Existing rows are backfilled from their stored call JSON with the
rule of :meth:`ctid.model.Call.participants`: ringing agents, agents who talked, the final agent,
the agent who transferred the call away.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def participants(data: dict[str, Any]) -> str | None:
    """This revision's column value of one stored call (the encoding of ctid.store.participants.key)."""
    people = {*(data.get("ringing_agents") or []), *(data.get("agents") or [])}
    people |= {name for name in (data.get("agent"), data.get("transferred_from")) if name}
    names = sorted({quote(str(name), safe="", errors="surrogatepass") for name in people})
    return f"|{'|'.join(names)}|" if names else None


def upgrade() -> None:
    op.add_column("calls", sa.Column("participants", sa.UnicodeText(), nullable=True))
    if op.get_context().as_sql:  # `ctid db upgrade --sql`: no data to read
        return
    conn = op.get_bind()
    calls = sa.table("calls", sa.column("id"), sa.column("data"), sa.column("participants"))
    update = sa.update(calls).where(calls.c.id == sa.bindparam("b_id")).values(participants=sa.bindparam("p"))
    last = ""
    while True:  # in chunks by id: memory stays flat on big tables
        rows = conn.execute(
            sa.select(calls.c.id, calls.c.data).where(calls.c.id > last).order_by(calls.c.id).limit(2000)
        ).all()
        if not rows:
            break
        conn.execute(update, [{"b_id": row.id, "p": participants(json.loads(row.data))} for row in rows])
        last = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("participants")
