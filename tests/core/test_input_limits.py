"""Input limits at the boundary (ctid/limits.py, docs/input-limits.md), through a running daemon:
lone surrogates, deep nesting, huge numbers, UTF-16 bodies are each a 400 with a stable error id on
webhooks and REST (also /api/auth/token without a login), never a 500, and the daemon goes on."""

from __future__ import annotations

import json

import pytest

from ctid.builtins.generic import sign
from ctid.testing.daemon import running_daemon

from .conftest import API_KEY, SECRET, make_config, post_events

RING = {"event": "ring", "call_id": "l-1", "from": "+79161234567", "to": "+74951234567", "agent": "101",
        "timestamp": "2026-11-25T10:00:00Z"}
ADMIN = {"Authorization": f"Bearer {API_KEY}"}

BAD_BODIES = [
    (b'{"event": "ring", "call_id": "l-\\udc00", "agent": "101", "timestamp": "2026-11-25T10:00:00Z"}',
     "bad_encoding"),
    (b"[" * 5000 + b"]" * 5000, "too_deep"),
    (b"[" * 40 + b"]" * 40, "too_deep"),
    (b'{"event": "ring", "call_id": "l-1", "timestamp": 1' + b"0" * 5000 + b"}", "number_too_long"),
    (b'{"event": "ring", "call_id": "l-1", "timestamp": 1e999}', "number_too_long"),
    (json.dumps(RING).encode("utf-16"), "bad_encoding"),
    (json.dumps(RING).encode("utf-8-sig"), "bad_encoding"),
    (json.dumps({**RING, "group": "x" * 70_000}).encode(), "string_too_long"),
    # NUL: SQLite stores it, PostgreSQL refused the write (a 503 the PBX retried for ever; found by the sweep)
    (json.dumps({**RING, "call_id": "l-1\x000"}).encode(), "bad_encoding"),
]


@pytest.mark.parametrize(("body", "error"), BAD_BODIES, ids=[e for _, e in BAD_BODIES])
async def test_bad_webhook_bodies_are_400_with_a_stable_id(config, body, error):
    async with running_daemon(config) as app:
        response = await app.client.post("/hooks/office", content=body,
                                          headers={"X-Ctid-Signature": sign(SECRET, body),
                                                   "Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert response.json()["error"] == error
        assert app.daemon.switchboard.calls == {}
        await post_events(app, [RING])  # still taking webhooks
        assert len(app.daemon.switchboard.calls) == 1


@pytest.mark.parametrize(("body", "error"), BAD_BODIES[:6], ids=[e for _, e in BAD_BODIES[:6]])
async def test_bad_rest_bodies_are_400_even_before_a_login(config, body, error):
    async with running_daemon(config) as app:
        response = await app.client.post("/api/auth/token", content=body,
                                          headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert response.json()["error"] == error
        response = await app.client.put("/api/agents/alice/status", content=body, headers=ADMIN)
        assert response.status_code == 400 and response.json()["error"] == error


async def test_a_password_with_a_lone_surrogate_is_400_not_500(config):
    async with running_daemon(config) as app:
        body = b'{"username": "alice", "password": "\\ud800"}'
        response = await app.client.post("/api/auth/token", content=body)
        assert response.status_code == 400 and response.json()["error"] == "bad_encoding"


async def test_a_valid_surrogate_pair_is_text(config):
    async with running_daemon(config) as app:
        await post_events(app, [{**RING, "group": "\ud83d\ude00 sales"}])
        stored = await app.daemon.store.list_calls(limit=1)
        assert stored[0]["group"] == "\U0001f600 sales"


BAD_TARGETS = [
    "/api/calls?agent=%FF",  # not UTF-8: taken as "%FF" or U+FFFD before
    "/api/calls?agent=%ED%A0%80",  # a lone surrogate, UTF-8-encoded
    "/api/calls?agent=a%00b",  # PostgreSQL: a 503 store_unavailable before
    "/api/calls?a%00=1",
    "/api/calls/c%00-1",
    "/api/calls/c-%FF",
    "/api/dead-letters?connector=%00",
    "/api/agents/%FF",
    "/panel/%00",
]


@pytest.mark.parametrize("target", BAD_TARGETS)
async def test_bad_paths_and_query_strings_are_400_on_every_database(tmp_path, fake_pbx, db_url, target):
    async with running_daemon(make_config(tmp_path, db_url=db_url, command_url=fake_pbx.url)) as app:
        for headers in (ADMIN, {}):  # before routing and before authentication
            response = await app.client.get(target, headers=headers)
            assert response.status_code == 400, response.text
            assert response.json()["error"] == "bad_encoding"
        await post_events(app, [RING])  # still taking webhooks
        response = await app.client.get("/api/calls?agent=alice", headers=ADMIN)
        assert [call["agent"] for call in response.json()["items"]] == ["alice"]


async def test_text_in_paths_and_query_strings_is_taken_as_sent(config):
    async with running_daemon(config) as app:
        response = await app.client.get("/api/calls/%D0%B7%D0%B2%D0%BE%D0%BD%D0%BE%D0%BA", headers=ADMIN)
        assert response.status_code == 404 and response.json()["message"] == "no call 'звонок'"
        response = await app.client.get("/api/calls?agent=%D0%90%D0%BD%D0%BD%D0%B0+%F0%9F%98%80", headers=ADMIN)
        assert response.status_code == 200 and response.json() == {"items": []}
