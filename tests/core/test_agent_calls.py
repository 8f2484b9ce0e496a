"""An agent's /api/calls lists every call the agent may open: also the ones they answered and then
transferred away (it filtered on the call's final agent only)."""

from __future__ import annotations

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from ctid.store import participants
from ctid.testing.daemon import running_daemon

from .conftest import PASSWORDS, make_config, post_events


async def test_an_agent_lists_calls_they_answered_and_transferred(tmp_path, fake_pbx):
    async with running_daemon(make_config(tmp_path, command_url=fake_pbx.url)) as app:
        await post_events(app, [
            {"event": "ring", "id": "t1", "call_id": "tr-1", "from": "+79161234567", "agent": "101"},
            {"event": "answer", "id": "t2", "call_id": "tr-1", "agent": "101"},
            {"event": "transfer", "id": "t3", "call_id": "tr-1", "agent": "101", "target": "103"},
            {"event": "answer", "id": "t4", "call_id": "tr-1", "agent": "103"},
            {"event": "end", "id": "t5", "call_id": "tr-1", "agent": "103"},
        ])

        async def listed(user: str, query: str = "") -> list[str]:
            headers = await app.headers_for(user, PASSWORDS[user])
            response = await app.client.get(f"/api/calls{query}", headers=headers)
            assert response.status_code == 200, response.text
            return [item["pbx_call_id"] for item in response.json()["items"]]

        assert await listed("alice") == ["tr-1"]  # answered, then transferred to Carol
        assert await listed("carol") == ["tr-1"]
        assert await listed("bob") == []
        assert await listed("super", "?agent=alice") == ["tr-1"]
        [row] = await app.daemon.store.list_calls(participant="alice")
        assert row["agent"] == "carol" and row["agents"] == ["alice", "carol"], row


AGENT_IDS = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(members=st.sets(AGENT_IDS, max_size=4), probe=AGENT_IDS)
def test_the_participants_filter_matches_exactly_the_members(members, probe):
    """Agent ids with |, %, _ or any other character never match another agent's calls."""
    engine = sa.create_engine("sqlite://")
    table = sa.Table("t", sa.MetaData(), sa.Column("p", sa.UnicodeText()))
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(table.insert(), [{"p": participants.key(members)}])
        found = conn.execute(sa.select(sa.func.count()).select_from(table).where(
            table.c.p.like(participants.pattern(probe), escape=participants.ESCAPE))).scalar()
    assert found == (1 if probe in members else 0)
