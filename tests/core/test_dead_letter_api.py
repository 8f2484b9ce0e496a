"""The dead-letter API (ctid/web/deadletters_api.py) with input from outside: ids and query numbers are
ASCII digits only (``"³"`` passed ``str.isdigit()`` and ``int()`` raised: a 500), and the caller's
credentials kept for a retry are never shown (ctid/store/deadletters.py ``redacted``)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctid.builtins.generic import sign
from ctid.store.deadletters import REDACTED, is_secret, redacted
from ctid.testing.daemon import running_daemon

from .conftest import SECRET
from .test_supervision import ADMIN, RING, Plugin, _config, _reset

# superscripts (int() raises), Arabic-Indic and fullwidth digits (int() read them as another id)
DIGIT_SIGNS = ["%C2%B3", "%C2%B9%C2%B2", "%D9%A3", "%EF%BC%91", "1%C2%B3", "%E2%91%A0"]


async def test_ids_and_numbers_that_are_not_ascii_digits_are_400(config):
    _reset()
    async with running_daemon(_config(config), plugins=[Plugin()]) as app:
        for sign_ in DIGIT_SIGNS:
            for method in ("GET", "DELETE"):
                answer = await app.client.request(method, f"/api/dead-letters/{sign_}", headers=ADMIN)
                assert answer.status_code == 400 and answer.json()["error"] == "bad_id", (method, sign_, answer.text)
            answer = await app.client.post(f"/api/dead-letters/{sign_}/retry", headers=ADMIN)
            assert answer.status_code == 400 and answer.json()["error"] == "bad_id", (sign_, answer.text)
            for name in ("before", "limit"):
                answer = await app.client.get(f"/api/dead-letters?{name}={sign_}", headers=ADMIN)
                assert answer.status_code == 400 and answer.json()["error"] == "bad_query", (name, sign_, answer.text)
        assert (await app.client.get("/api/dead-letters?limit=99999999999999999999", headers=ADMIN)).status_code == 400
        assert (await app.client.get("/api/dead-letters?before=0", headers=ADMIN)).status_code == 400  # as documented
        assert (await app.client.get("/api/dead-letters?limit=2&before=5", headers=ADMIN)).status_code == 200


async def test_credentials_are_kept_for_the_retry_but_never_shown(config):
    _reset(parse_raises=KeyError("cmd"))
    async with running_daemon(_config(config), plugins=[Plugin()]) as app:
        body = json.dumps([RING]).encode()
        secret_headers = {"X-Ctid-Signature": sign(SECRET, body), "Authorization": "Bearer topsecret",
                          "Cookie": "sid=topsecret", "X-Api-Key": "topsecret", "Proxy-Authorization": "Basic dG9w",
                          "X-Auth-Token": "topsecret", "X-Trace": "kept"}
        posted = await app.client.post("/hooks/flaky?token=topsecret&page=2", content=body, headers=secret_headers)
        assert posted.status_code == 202, posted.text
        letter = posted.json()["dead_letter"]
        shown = await app.client.get(f"/api/dead-letters/{letter}", headers=ADMIN)
        assert "topsecret" not in shown.text and "dG9w" not in shown.text
        assert sign(SECRET, body) not in shown.text
        one = shown.json()
        for name in ("x-ctid-signature", "authorization", "cookie", "x-api-key", "proxy-authorization", "x-auth-token"):
            assert one["headers"][name] == REDACTED, name
        assert one["headers"]["x-trace"] == "kept"
        assert one["query"] == {"token": REDACTED, "page": "2"}
        # the stored request still has the signature: a retry passes the connector's verification
        _reset()
        retried = await app.client.post(f"/api/dead-letters/{letter}/retry", headers=ADMIN)
        assert retried.status_code == 200 and retried.json()["status"] == 200, retried.text
        assert any(c.connector == "flaky" for c in app.daemon.switchboard.calls.values())


@pytest.mark.parametrize("name", ["Authorization", "COOKIE", "x-api-key", "X-Hub-Signature-256", "crm_token",
                                  "X-Secret", "api_key", "sig", "password", "X-Session-Id"])
def test_credential_names(name: str) -> None:
    assert is_secret(name)


@pytest.mark.parametrize("name", ["Content-Type", "X-Assignment", "X-Signalr-User-Agent", "User-Agent", "X-Trace"])
def test_other_names_are_shown(name: str) -> None:
    assert not is_secret(name)


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=8))
def test_redacted_keeps_every_name_and_shows_no_credential(values: dict[str, str]) -> None:
    shown = redacted(values)
    assert shown.keys() == values.keys()
    for name, value in shown.items():
        assert value == (REDACTED if is_secret(name) else values[name])


async def test_a_webhook_query_string_that_is_not_utf8_is_400_on_both_paths(config):
    """The fast path (POST with Content-Length) and Quart's path (GET, chunked POST) decode the query
    string with ctid.limits.query_args: a percent-escape that is not UTF-8 is 400 bad_encoding, not U+FFFD."""
    _reset()
    async with running_daemon(_config(config), plugins=[Plugin()]) as app:
        body = json.dumps([RING]).encode()
        signed = {"X-Ctid-Signature": sign(SECRET, body)}
        for bad in ("%ED%B0%80", "%FF", "a%C0%AF"):
            answer = await app.client.post(f"/hooks/office?x={bad}", content=body, headers=signed)
            assert answer.status_code == 400 and answer.json()["error"] == "bad_encoding", answer.text

            async def chunks():
                yield body

            answer = await app.client.post(f"/hooks/office?x={bad}", content=chunks(), headers=signed)
            assert answer.status_code == 400 and answer.json()["error"] == "bad_encoding", answer.text
            answer = await app.client.get(f"/hooks/office?x={bad}")
            assert answer.status_code == 400 and answer.json()["error"] == "bad_encoding", answer.text
        assert app.daemon.switchboard.calls == {}
        answer = await app.client.post("/hooks/office?x=%D0%90", content=body, headers=signed)
        assert answer.status_code == 200, answer.text
