"""Parsing of MegaFon pushes and history rows into CallEvents (reference §3, fixtures of §3.6)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctid.model import Direction, EventKind, Outcome
from ctid.phone import normalize
from ctid_megafon.events import (
    Fields,
    InvalidParameters,
    classify_user,
    event_from_push,
    parse_body,
    parse_time,
    summaries_from_csv,
    summary_from_push,
    summary_from_row,
)

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def fields(**values) -> Fields:
    return Fields({k: str(v) for k, v in values.items()})


def test_spec_event_example_without_direction_is_an_inbound_ring():
    # 2018 spec example: no `direction`, no time.
    event = event_from_push("mf", fields(cmd="event", type="INCOMING", phone="79101234567", user="andy",
                                         callid="B10D0EB124F4E64AF4EA-1511"), NOW)
    assert event.kind is EventKind.RING
    assert event.direction is Direction.INBOUND
    assert event.at is None and event.received_at == NOW
    assert event.remote_number == "+79101234567"
    assert event.agent_login == "andy"
    assert event.pbx_call_id == "B10D0EB124F4E64AF4EA-1511"


def test_brandup_event_fixture():
    event = event_from_push("mf", fields(
        type="INCOMING", phone="88005553535", diversion="100500", user="user", groupRealName="groupname",
        ext="510", telnum="999999", direction="in", callid="43294397431", status="Success"), NOW)
    assert event.kind is EventKind.RING
    assert event.remote_number == "+78005553535"  # the Russian trunk prefix 8 becomes +7
    assert event.line_number == "100500"  # not a valid number: kept as digits
    assert event.group == "groupname"
    assert event.extra["ext"] == "510"


@pytest.mark.parametrize(
    ("state", "direction", "kind", "outcome", "expected_dir"),
    [
        ("ACCEPTED", "in", EventKind.ANSWER, None, Direction.INBOUND),
        ("completed", "in", EventKind.LEG_END, Outcome.ANSWERED, Direction.INBOUND),
        ("Cancelled", "in", EventKind.LEG_END, Outcome.MISSED, Direction.INBOUND),
        ("CANCELLED", "out", EventKind.LEG_END, Outcome.NO_ANSWER, Direction.OUTBOUND),
        ("OUTGOING", None, EventKind.RING, None, Direction.OUTBOUND),
        ("OUTGOING", "out", EventKind.RING, None, Direction.OUTBOUND),
        # a manager's click-to-call leg: `direction` wins over the state (reference §3.3, §6.8)
        ("INCOMING", "out", EventKind.RING, None, Direction.OUTBOUND),
        ("INCOMING", "internal", EventKind.RING, None, Direction.INTERNAL),
    ],
)
def test_event_type_mapping(state, direction, kind, outcome, expected_dir):
    values = {"type": state, "phone": "79997772211", "user": "admin", "callid": "C1"}
    if direction:
        values["direction"] = direction
    event = event_from_push("mf", fields(**values), NOW)
    assert (event.kind, event.outcome, event.direction) == (kind, outcome, expected_dir)


def test_transferred_needs_second_callid():
    ok = event_from_push("mf", fields(type="TRANSFERRED", callid="call-a", second_callid="call-b",
                                      phone="+79990001122", user="operator-a", direction="in"), NOW)
    assert ok.kind is EventKind.TRANSFER
    assert ok.agent_login == "operator-a" and ok.leg_id == "call-b"
    assert ok.target_login is None  # MegaFon names the target only through its next leg events
    assert ok.remote_number == "+79990001122"
    with pytest.raises(InvalidParameters, match="second_callid"):
        event_from_push("mf", fields(type="TRANSFERRED", callid="a", phone="1", user="u"), NOW)


@pytest.mark.parametrize("missing", ["type", "callid", "phone", "user"])
def test_event_required_fields(missing):
    values = {"type": "INCOMING", "phone": "79101234567", "user": "andy", "callid": "C1"}
    del values[missing]
    with pytest.raises(InvalidParameters, match=missing):
        event_from_push("mf", fields(**values), NOW)


def test_garbage_event_values_are_rejected():
    with pytest.raises(InvalidParameters, match="unknown event type"):
        event_from_push("mf", fields(type="RINGING", phone="1", user="u", callid="c"), NOW)
    with pytest.raises(InvalidParameters, match="direction"):
        event_from_push("mf", fields(type="INCOMING", phone="1", user="u", callid="c", direction="sideways"), NOW)


def test_users_group_logins_tenant_suffix_and_pbx():
    assert classify_user("andy@vats332138").login == "andy"
    group = classify_user("g_4b1c2d3e@vats332138")
    assert group.login is None and group.group == "g_4b1c2d3e"
    assert classify_user("pbx").login is None and classify_user("pbx").raw == "pbx"
    event = event_from_push("mf", fields(type="CANCELLED", phone="79101234567", user="pbx", callid="C"), NOW)
    assert event.agent_login is None and event.extra["pbx_user"] == "pbx"


def test_same_post_same_key_in_any_field_order():
    a = event_from_push("mf", Fields({"type": "INCOMING", "callid": "C", "phone": "7910", "user": "andy"}), NOW)
    b = event_from_push("mf", Fields({"user": "andy", "phone": "7910", "callid": "C", "type": "INCOMING"}),
                        datetime(2026, 11, 25, 11, 0, tzinfo=UTC))
    other_leg = event_from_push("mf", Fields({"type": "INCOMING", "callid": "C", "phone": "7910", "user": "bob"}), NOW)
    assert a.key == b.key
    assert a.key != other_leg.key


def test_spec_history_example():
    s = summary_from_push(fields(cmd="history", type="out", status="Success", phone="79101234567", user="user",
                                 start="20170703T121110Z", duration="124", link="https://link/file.mp3",
                                 callid="B10D0EB124F4E64AF4EA-1511"))
    event = s.to_event("mf", NOW)
    assert event.kind is EventKind.SUMMARY
    assert event.direction is Direction.OUTBOUND and event.outcome is Outcome.ANSWERED
    assert event.at == datetime(2017, 7, 3, 12, 11, 10, tzinfo=UTC)
    assert event.total_seconds == 124 and event.talk_seconds is None  # no `wait`: talk unknown
    assert event.agent_login == "user"
    assert event.recording == "https://link/file.mp3"  # replaced by ctid's URL in the connector
    assert event.extra["ended_at"] == "2017-07-03T12:13:14+00:00"


def test_brandup_history_fixture_and_duration_includes_wait():
    s = summary_from_push(fields(type="in", user="user", ext="510", groupRealName="groupname", telnum="999999",
                                 phone="88005553535", diversion="100500", start="20261125T095000Z", duration="50",
                                 callid="43294397431", link="https://test.ru/test.mp3", rating="4",
                                 status="Success", wait="12"))
    event = s.to_event("mf", NOW)
    assert event.outcome is Outcome.ANSWERED
    assert (event.total_seconds, event.wait_seconds, event.talk_seconds) == (50, 12, 38)
    assert event.group == "groupname" and event.extra["rating"] == "4"


@pytest.mark.parametrize("status", ["missed", "Missed", "MISSED", "Cancel", "NoAnswer"])
def test_inbound_missed_statuses_in_any_case(status):
    s = summary_from_push(fields(type="in", user="pbx", phone="79101234567", duration="25", callid="M1",
                                 status=status, start="20261125T095000Z"))
    event = s.to_event("mf", NOW)
    assert event.outcome is Outcome.MISSED
    assert event.agent_login is None and event.extra["pbx_user"] == "pbx"
    assert (event.wait_seconds, event.talk_seconds) == (25, 0)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [("Busy", Outcome.BUSY), ("NotAvailable", Outcome.NO_ANSWER), ("NotAllowed", Outcome.FAILED),
     ("NotFound", Outcome.FAILED), ("Cancel", Outcome.NO_ANSWER), ("success", Outcome.ANSWERED)],
)
def test_outbound_statuses(status, outcome):
    s = summary_from_push(fields(type="out", user="andy", phone="79101234567", duration="30", callid="O1",
                                 status=status, start="20261125T095000Z"))
    event = s.to_event("mf", NOW)
    assert event.outcome is outcome
    assert event.agent_login == "andy"  # the caller of an outbound call is known even without answer
    assert event.at == datetime(2026, 11, 25, 9, 50, tzinfo=UTC)


def test_unknown_status_keeps_raw_value_without_inventing_an_outcome():
    event = summary_from_push(fields(type="in", user="andy", phone="7", duration="3", callid="X",
                                     status="Voicemail", start="20261125T095000Z")).to_event("mf", NOW)
    assert event.outcome is None and event.extra["status"] == "Voicemail"


@pytest.mark.parametrize(
    ("bad", "match"),
    [({"duration": "abc"}, "duration"), ({"duration": "-5"}, "duration"), ({"start": "yesterday"}, "start"),
     ({"type": "sideways"}, "type"), ({"wait": "x"}, "wait")],
)
def test_garbage_history_fields(bad, match):
    values = {"type": "in", "user": "u", "phone": "79101234567", "duration": "5", "callid": "c",
              "status": "Success", "start": "20261125T095000Z", **bad}
    with pytest.raises(InvalidParameters, match=match):
        summary_from_push(fields(**values))


@pytest.mark.parametrize("missing", ["type", "user", "phone", "start", "duration", "callid", "status"])
def test_history_required_fields(missing):
    values = {"type": "in", "user": "u", "phone": "79101234567", "duration": "5", "callid": "c", "status": "Success",
              "start": "20261125T095000Z"}
    del values[missing]
    with pytest.raises(InvalidParameters, match=missing):
        summary_from_push(fields(**values))


def test_time_formats():
    assert parse_time("20170703T121110Z") == datetime(2017, 7, 3, 12, 11, 10, tzinfo=UTC)
    assert parse_time("2026-04-05T12:00:00Z") == datetime(2026, 4, 5, 12, 0, tzinfo=UTC)
    assert parse_time("2026-10-03 16:00:00") == datetime(2026, 10, 3, 16, 0, tzinfo=UTC)  # Django fixture
    assert parse_time(None) is None


def test_pulled_row_and_push_of_the_same_call_share_the_key():
    row = {"uid": "call-001", "type": "in", "status": "success", "client": "79260001122", "user": "admin",
           "group_name": "Техподдержка", "diversion": "74950000001", "start": "2026-04-05T12:00:00Z",
           "wait": 5, "duration": 23, "record": "https://example.com/record.mp3", "missedStatus": 2}
    pulled = summary_from_row(row)
    pushed = summary_from_push(fields(type="in", status="Success", phone="79260001122", user="admin",
                                      diversion="74950000001", start="20260405T120000Z", duration="23", wait="5",
                                      callid="call-001", link="https://example.com/record.mp3"))
    assert pulled.key() == pushed.key()
    event = pulled.to_event("mf", NOW)
    assert (event.total_seconds, event.wait_seconds, event.talk_seconds) == (23, 5, 18)
    assert event.group == "Техподдержка" and event.line_number == "+74950000001"
    # A corrected replay (duration 91 -> 92) is a new fact: a new key, same call.
    changed = summary_from_push(fields(type="in", status="Success", phone="79260001122", user="admin",
                                       start="20260405T120000Z", duration="24", wait="5", callid="call-001",
                                       link="https://example.com/record.mp3"))
    assert changed.key() != pushed.key() and changed.callid == pushed.callid


def test_legacy_csv_history():
    text = ("UID,type,client,account,via,start,wait,duration,record\n"
            "A1,in,79101234567,andy,74950000001,20260405T120000Z,5,60,https://r/a1.mp3\n"
            "A2,missed,79101234568,ivr,74950000001,20260405T121000Z,30,0,\n"
            "A3,out,79101234569,andy,74950000001,20260405T122000Z,20,0,\n")
    a1, a2, a3 = summaries_from_csv(text)
    e1 = a1.to_event("mf", NOW)
    assert (e1.outcome, e1.talk_seconds, e1.total_seconds, e1.agent_login) == (Outcome.ANSWERED, 60, 65, "andy")
    e2 = a2.to_event("mf", NOW)
    assert (e2.outcome, e2.agent_login, e2.total_seconds) == (Outcome.MISSED, None, 30)
    e3 = a3.to_event("mf", NOW)
    assert (e3.direction, e3.outcome) == (Direction.OUTBOUND, Outcome.NO_ANSWER)


def test_body_parsing_form_json_get_and_fallback():
    form = parse_body("POST", "application/x-www-form-urlencoded", b"cmd=event&type=INCOMING&user=a", {})
    assert form.get("TYPE") == "INCOMING"  # names are case-insensitive
    js = parse_body("POST", "application/json", b'{"cmd":"history","duration":50,"x":null}', {})
    assert js.get("duration") == "50" and js.get("x") is None
    # mislabelled bodies fall back to the other format (as mikopbx does)
    assert parse_body("POST", "application/x-www-form-urlencoded", b'{"cmd":"event"}', {}).get("cmd") == "event"
    assert parse_body("POST", "application/json", b"cmd=event", {}).get("cmd") == "event"
    assert parse_body("GET", "", b"", {"cmd": "history"}).get("cmd") == "history"
    assert parse_body("POST", "", b"cmd=event&&type=INCOMING&", {}).get("type") == "INCOMING"  # stray '&'
    with pytest.raises(InvalidParameters):
        parse_body("POST", "application/x-www-form-urlencoded", b"just some text", {})
    with pytest.raises(InvalidParameters):
        parse_body("POST", "application/json", b'{"cmd": {"nested": 1}}', {})
    with pytest.raises(InvalidParameters):
        parse_body("POST", "application/json", b"\xff\xfe{", {})


def test_phone_normalization():
    """MegaFon's spellings of numbers, through ctid's one normalisation (ctid.phone)."""
    assert normalize("79101234567") == "+79101234567"
    assert normalize("+7 (910) 123-45-67") == "+79101234567"
    assert normalize("89101234567") == "+79101234567"
    assert normalize("701") == "701"
    assert normalize("") is None


PHONES = st.one_of(
    st.text(alphabet="0123456789+ ()-.", min_size=1, max_size=24),
    st.from_regex(r"\+?[78]?9[0-9]{9}", fullmatch=True),
)


@settings(max_examples=200, deadline=None)
@given(phone=PHONES, diversion=PHONES)
def test_pushed_numbers_are_the_cores_normalisation(phone, diversion):
    """One result for the same number in the core and the plugin: events carry ctid.phone.normalize's."""
    try:
        event = event_from_push("mf", fields(type="INCOMING", phone=phone, diversion=diversion, user="u",
                                             callid="C1"), NOW)
    except InvalidParameters:
        return  # a value MegaFon's parser refuses (blank, too long) never becomes a number
    assert event.remote_number == normalize(phone)
    assert event.line_number == normalize(diversion)


