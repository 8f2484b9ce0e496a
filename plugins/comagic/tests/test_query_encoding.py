"""A GET notification (the query-string variant of the templates) whose percent-escapes are not UTF-8 is
a 400 ``bad_encoding`` before CoMagic's parser sees it, like a JSON body with a lone surrogate: the core
read them as U+FFFD and the notification was taken with altered text (ctid.limits.query_args)."""

from __future__ import annotations

from urllib.parse import quote

from test_daemon_e2e import HOOK, account, config  # noqa: F401  (the fake account fixture)

from comagic_kit import BODY_SECRET
from ctid.testing.daemon import running_daemon

QUERY = {"ctid_event": "waiting", "ctid_secret": BODY_SECRET, "call_session_id": "555",
         "notification_time": "2026-12-01 12:00:00.250", "employee_id": "101",
         "contact_phone_number": "79101234567", "virtual_phone_number": "74950000001", "leg_id": "9",
         "direction": "in"}


def _query(**raw: str) -> str:
    return "&".join(f"{k}={raw.get(k, quote(v))}" for k, v in QUERY.items())


async def test_query_strings_that_are_not_utf8_are_400(tmp_path, account):  # noqa: F811
    _, url = account
    async with running_daemon(config(tmp_path, url)) as app:
        taken = await app.client.get(f"{HOOK}?{_query()}")
        assert taken.status_code < 300, taken.text
        for bad in ("%ED%B0%80", "%FF", "7910%ED%B0%801234567", "%C0%AF"):
            refused = await app.client.get(f"{HOOK}?{_query(contact_phone_number=bad)}")
            assert refused.status_code == 400 and refused.json()["error"] == "bad_encoding", (bad, refused.text)
        assert (await app.client.get(f"{HOOK}?{_query(ctid_secret='%FF')}")).json()["error"] == "bad_encoding"
