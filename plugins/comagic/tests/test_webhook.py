"""``handle_webhook``: secrets, documented answers, template layouts, GET and POST, the account's time zone."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from comagic_kit import BODY_SECRET, PATH_SECRET, request
from ctid.model import Direction, EventKind
from ctid_comagic.templates import KINDS, render, template

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def body(kind: str = "waiting", secret: str = BODY_SECRET, **values) -> bytes:
    base = {"call_session_id": 555, "notification_time": "2026-12-01 12:00:00.250", "employee_id": 101,
            "contact_phone_number": "79101234567", "virtual_phone_number": "74950000001", "leg_id": 9,
            "direction": "in", "file_link": "http://127.0.0.1/system/media/talk/555/" + "a" * 32 + "/"}
    return render(template(kind, secret), {**base, **values}).encode()


async def test_wrong_path_or_body_secret_is_401_and_nothing_is_accepted(connector):
    for subpath in ("", "wrong-secret-0123456789", PATH_SECRET + "x", PATH_SECRET[:-1]):
        result = await connector.handle_webhook(request(body=body(), subpath=subpath))
        assert (result.status, result.body["error"], result.events) == (401, "unauthorized", [])
    for secret in ("wrong-secret-0123456789", "", BODY_SECRET.upper()):
        result = await connector.handle_webhook(request(body=body(secret=secret)))
        assert (result.status, result.events) == (401, [])
        assert "ctid_secret" in result.body["message"]


async def test_garbage_is_400_and_nothing_is_accepted(connector):
    for raw in (b"{", b"[]", b"\xff\xfe", b"null", b'{"ctid_event": "reboot"}', b"<html>"):
        result = await connector.handle_webhook(request(body=raw))
        assert (result.status, result.body["error"], result.events) == (400, "invalid_notification", [])


@pytest.mark.parametrize(("raw", "field"), [
    (body().replace(b'"leg_id": 9', b'"my_own_var": 9'), "my_own_var"),  # a variable no template has
    (body().replace(b'"leg_id": 9', b'"leg_id": {{leg_idd}}'), "leg_idd"),  # left unrendered by the platform
    (body(employee_id="Анна"), "employee_id"),
    (body(notification_time="yesterday"), "notification_time"),
    (body(contact_phone_number="not a phone"), "contact_phone_number"),
    (body(direction="sideways"), "direction"),
    (body(employee_id=None), "employee_id"),  # required for this event
    (body("talk_started", leg_ids="1,2"), "leg_ids"),
    (body("recording_ready", file_link="ftp://x/y"), "file_link"),
])
async def test_an_unknown_template_layout_is_400_naming_the_field(connector, raw, field):
    result = await connector.handle_webhook(request(body=raw))
    assert result.status == 400 and result.events == []
    assert result.body["message"].startswith(field), result.body


async def test_local_times_are_read_in_the_account_time_zone(connector, fake):
    result = await connector.handle_webhook(request(body=body()))
    (event,) = result.events
    assert (event.kind, event.agent_login, event.leg_id) == (EventKind.RING, "101", "9")
    assert event.at == datetime(2026, 12, 1, 9, 0, 0, 250_000, tzinfo=UTC)  # Moscow is UTC+3
    fake.timezone = "America/New_York"
    await connector.read_account()
    (event,) = (await connector.handle_webhook(request(body=body()))).events
    assert event.at == datetime(2026, 12, 1, 17, 0, 0, 250_000, tzinfo=UTC)  # UTC-5 in winter


async def test_without_a_known_time_zone_events_are_ordered_by_receipt(make_connector):
    connector = make_connector()  # get.account not read yet: the zone is never assumed
    (event,) = (await connector.handle_webhook(request(body=body()))).events
    assert event.at is None and event.extra["local_time"] == "2026-12-01 12:00:00.250"


async def test_get_and_post_notifications_give_the_same_events(connector, fake):
    fake.clock.freeze(T0)
    fake.incoming("79101234567", [101])
    posts = fake.take()
    fake.notify_method = "GET"
    fake.incoming("79101234567", [101])
    gets = fake.take()
    for post, get in zip(posts, gets, strict=True):
        assert get.method == "GET" and get.body == b""
        a = (await connector.handle_webhook(request(post))).events[0]
        b = (await connector.handle_webhook(request(get))).events[0]
        assert (a.kind, a.at, a.agent_login, a.remote_number, a.direction) == (
            b.kind, b.at, b.agent_login, b.remote_number, b.direction)
    assert a.direction is Direction.INBOUND


async def test_every_shipped_template_parses_as_its_event(connector):
    kinds = {}
    for kind in KINDS:
        result = await connector.handle_webhook(request(body=body(kind, leg_ids=[1, 2], employee_ids=[101],
                                                                  tag_names=["VIP"])))
        assert result.status == 200, (kind, result.body)
        kinds[kind] = result.events[0].kind.value
    assert kinds == {"inbound_call": "ring", "waiting": "ring", "talk_started": "answer", "talk_ended": "leg_end",
                     "call_finished": "end", "lost_call": "end", "recording_ready": "facts", "outbound": "ring"}


async def test_recording_links_never_reach_the_event_and_foreign_hosts_are_ignored(connector, storage):
    result = await connector.handle_webhook(request(body=body("recording_ready")))
    (event,) = result.events
    assert event.recording.startswith("https://ctid.example.com/api/calls/")
    assert "system/media" not in json.dumps(event.to_json())
    assert storage.data[("recording", "cm:555")]["link"].endswith("a" * 32 + "/")
    foreign = await connector.handle_webhook(request(body=body("recording_ready", call_session_id=556,
                                                               file_link="https://evil.example/x.mp3")))
    assert foreign.status == 200 and foreign.events[0].recording is None


async def test_source_network_allow_list_and_methods(make_connector):
    connector = make_connector(allowed_networks=["37.139.38.0/24"])
    assert (await connector.handle_webhook(request(body=body()))).status == 200
    outside = await connector.handle_webhook(request(body=body(), remote="10.0.0.1"))
    assert (outside.status, outside.events) == (403, [])
    put = await connector.handle_webhook(request(body=body(), method="PUT"))
    assert put.status == 405 and put.headers["allow"] == "POST, GET"


@pytest.mark.parametrize("when", ["9999-12-31 23:59:59.000", "0001-01-01 00:00:00.000", "2200-01-01 00:00:00.000"])
async def test_a_notification_time_no_call_has_is_400_naming_it(connector, when):
    """Year 9999 overflowed when moved to UTC from a zone west of UTC (a dead letter, not a 400);
    year 1 was stored as a call in year 1."""
    result = await connector.handle_webhook(request(body=body(notification_time=when)))
    assert (result.status, result.events) == (400, []), result.body
    assert result.body["message"].startswith("notification_time"), result.body
