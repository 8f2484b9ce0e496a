"""MegaFon pushes that once crashed or 500ed a running ctid (issue W2-1): a lone surrogate in a text
field with a valid token ended the process from the store writer after a 200; one in ``crm_token``
gave 500. Both are 400 with a stable error id now, nothing is stored, and ctid takes the next push."""

from __future__ import annotations

import json
from urllib.parse import quote

from test_daemon_e2e import config, tenant  # noqa: F401  (the fake tenant fixture)

from ctid.testing.daemon import running_daemon
from megafon_kit import TOKEN

GOOD = {"cmd": "event", "type": "INCOMING", "user": "anna", "direction": "in", "callid": "L1",
        "phone": "79161234567", "crm_token": TOKEN}


def _json(fields: dict[str, str], **raw: str) -> bytes:
    """A JSON push; ``raw`` values are put in as written (escapes included)."""
    body = json.dumps(fields)[:-1]
    for key, value in raw.items():
        body += f', "{key}": "{value}"'
    return (body + "}").encode()


async def _post(app, body: bytes, content_type: str = "application/json"):
    return await app.client.post("/hooks/mf", content=body, headers={"Content-Type": content_type})


async def test_a_lone_surrogate_in_a_text_field_is_400_and_nothing_is_lost(tmp_path, tenant):  # noqa: F811
    _, url = tenant
    async with running_daemon(config(tmp_path, url)) as app:
        fields = {k: v for k, v in GOOD.items() if k != "user"}
        response = await _post(app, _json(fields, user="anna\\udc00"))
        assert response.status_code == 400 and response.json()["error"] == "bad_encoding"
        assert await app.daemon.store.list_calls(limit=10) == []
        response = await _post(app, json.dumps(GOOD).encode())  # the writer and the daemon live on
        assert response.status_code == 200, response.text
        assert [c["pbx_call_id"] for c in await app.daemon.store.list_calls(limit=10)] == ["L1"]


async def test_a_lone_surrogate_in_crm_token_is_400(tmp_path, tenant):  # noqa: F811
    _, url = tenant
    async with running_daemon(config(tmp_path, url)) as app:
        fields = {k: v for k, v in GOOD.items() if k != "crm_token"}
        response = await _post(app, _json(fields, crm_token="\\udc00"))
        assert response.status_code == 400 and response.json()["error"] == "bad_encoding"


async def test_form_and_query_pushes_that_are_not_utf8_are_400_like_json(tmp_path, tenant):  # noqa: F811
    """A percent-escape that is not UTF-8 (a lone surrogate's %ED%B0%80, a stray %FF) was read as U+FFFD
    and the push taken with altered text (200); JSON with the same gets 400 bad_encoding, so must a form
    body and a GET push's query string."""
    _, url = tenant
    async with running_daemon(config(tmp_path, url)) as app:
        for bad in ("%ED%B0%80", "%FF", "10%ED%B0%801", "%C0%AF"):
            fields = {**GOOD, "user": "__BAD__"}
            form = "&".join(f"{k}={quote(v)}" for k, v in fields.items()).replace("__BAD__", bad)
            response = await _post(app, form.encode(), "application/x-www-form-urlencoded")
            assert response.status_code == 400 and response.json()["error"] == "bad_encoding", (bad, response.text)
            response = await app.client.get(f"/hooks/mf?{form}")
            assert response.status_code == 400 and response.json()["error"] == "bad_encoding", (bad, response.text)
        assert await app.daemon.store.list_calls(limit=10) == []
        form = "&".join(f"{k}={quote(v)}" for k, v in {**GOOD, "user": "Анна"}.items())  # UTF-8 escapes are fine
        response = await _post(app, form.encode(), "application/x-www-form-urlencoded")
        assert response.status_code == 200, response.text
        deep = b'{"cmd": "event", "x": ' + b"[" * 3000 + b"]" * 3000 + b"}"
        response = await _post(app, deep)
        assert response.status_code == 400 and response.json()["error"] == "too_deep"
        huge = b'{"cmd": "event", "duration": 1' + b"0" * 5000 + b"}"
        response = await _post(app, huge)
        assert response.status_code == 400 and response.json()["error"] == "number_too_long"
