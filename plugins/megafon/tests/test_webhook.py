"""``handle_webhook``: verification, documented answers, contact lookup and realistic call sequences."""

from __future__ import annotations

from datetime import timedelta

import pytest
import trio

from ctid.connector import WebhookRequest
from ctid.crm import ContactMatch
from ctid.model import Direction, EventKind, Outcome
from megafon_kit import PBX_IP, TOKEN, push, request

CALLER = "79101234567"


def ev(state: str, user: str, callid: str = "C1", direction: str = "in", **more):
    return {"cmd": "event", "type": state, "user": user, "phone": CALLER, "callid": callid,
            "direction": direction, "diversion": "74950000001", **more}


def hist(status: str, user: str, callid: str = "C1", direction: str = "in", duration=60, wait=10, **more):
    return {"cmd": "history", "type": direction, "status": status, "user": user, "phone": CALLER,
            "callid": callid, "start": "20261125T100000Z", "duration": str(duration), "wait": str(wait),
            "diversion": "74950000001", **more}


# -- verification and documented answers ---------------------------------------------------------


async def test_wrong_or_missing_token_is_401_without_events(connector):
    for token in ("wrong-token-xxxxxxxxxxxx", None, TOKEN[:-1], TOKEN + "x"):
        result = await push(connector, ev("INCOMING", "anna"), token=token)
        assert result.status == 401
        assert result.body["error"] == "Invalid token"
        assert result.events == []


async def test_token_in_json_body_and_get_query_is_accepted(connector):
    as_json = await push(connector, ev("INCOMING", "anna"), as_json=True)
    as_get = await push(connector, hist("Success", "anna"), method="GET")
    assert (as_json.status, as_get.status) == (200, 200)
    assert as_json.body == {} and as_get.body == {}
    assert as_json.events[0].kind is EventKind.RING and as_get.events[0].kind is EventKind.SUMMARY


async def test_unknown_cmd_and_garbage_fields_are_400(connector):
    unknown = await push(connector, {"cmd": "reboot", "callid": "x"})
    assert unknown.status == 400 and unknown.body["error"] == "Invalid parameters"
    no_cmd = await push(connector, {"callid": "x"})
    assert no_cmd.status == 400
    garbage = await push(connector, hist("Success", "anna", duration="lots"))
    assert garbage.status == 400 and "duration" in garbage.body["message"] and garbage.events == []
    missing = await push(connector, {"cmd": "event", "type": "INCOMING", "callid": "x"})
    assert missing.status == 400 and "phone" in missing.body["message"]
    bad_json = await connector.handle_webhook(
        WebhookRequest("POST", "", {"content-type": "application/json"}, {}, b'{"cmd": [', PBX_IP))
    assert bad_json.status == 400 and bad_json.events == []


@pytest.mark.parametrize(
    ("post", "field"),
    [
        (ev("INCOMING", "anna", phone="abc"), "phone"),
        (ev("INCOMING", "anna", phone="7910+1234567"), "phone"),
        (ev("INCOMING", "anna", phone="1" * 25), "phone"),
        (ev("INCOMING", "anna", callid="x" * 3000), "callid"),
        (ev("INCOMING", "anna", callid="C 1"), "callid"),
        (ev("INCOMING", "u" * 200), "user"),
        (ev("INCOMING", "anna", ext="7" * 40), "ext"),
        (ev("INCOMING", "anna", diversion="our line"), "diversion"),
        (ev("TRANSFERRED", "anna", second_callid="y" * 101), "second_callid"),
        (hist("Success", "anna", phone="n/a"), "phone"),
        (hist("Success", "anna", callid="z" * 101), "callid"),
        ({"cmd": "contact", "phone": "abc", "callid": "c"}, "phone"),
        ({"cmd": "contact", "phone": CALLER, "callid": "c" * 500}, "callid"),
        ({"cmd": "rating", "phone": "abc", "callid": "c", "rating": "4"}, "phone"),
    ],
)
async def test_garbage_in_identifying_fields_is_400(connector, post, field):
    result = await push(connector, post)
    assert result.status == 400, result.body
    assert result.body["error"] == "Invalid parameters" and result.body["message"].split(": ", 2)[1] == field
    assert result.events == []


@pytest.mark.parametrize("phone", ["79101234567", "+79990001122", "8 (800) 555-35-35", "701", "+7 910 123-45-67"])
async def test_phone_formats_the_reference_shows_are_accepted(connector, phone):
    result = await push(connector, ev("INCOMING", "anna", phone=phone))
    assert result.status == 200, result.body


async def test_history_without_start_is_400(connector):
    post = hist("Success", "anna")
    del post["start"]
    result = await push(connector, post)
    assert result.status == 400 and "start" in result.body["message"]


async def test_bad_token_wins_over_bad_fields(connector):
    result = await push(connector, {"cmd": "history", "duration": "junk"}, token="nope-nope-nope")
    assert result.status == 401


async def test_other_methods_are_405(connector):
    result = await connector.handle_webhook(WebhookRequest("PUT", "", {}, {}, b"", PBX_IP))
    assert result.status == 405 and result.headers["allow"] == "POST, GET"


async def test_source_network_allow_list(make_connector):
    connector = make_connector(allowed_networks=["193.201.230.0/24", "2001:db8::/32"])
    assert (await push(connector, ev("INCOMING", "anna"), remote="193.201.230.155")).status == 200
    assert (await push(connector, ev("INCOMING", "anna"), remote="2001:db8::1")).status == 200
    for remote in ("10.0.0.1", None, "not-an-ip"):
        denied = await push(connector, ev("INCOMING", "anna"), remote=remote)
        assert denied.status == 403 and denied.events == []


# -- contact --------------------------------------------------------------------------------------


async def test_contact_answers_crm_name_and_owner_login(connector, contacts):
    contacts.matches["+78005553535"] = [
        ContactMatch(id="1", entity="contact", name="Менеджер ЗАО Рога и копыта", owner="crm-anna")
    ]
    result = await push(connector, {"cmd": "contact", "phone": "88005553535", "callid": "43294397431"})
    assert result.status == 200
    assert result.body == {"contact_name": "Менеджер ЗАО Рога и копыта", "responsible": "anna"}
    assert contacts.calls == [("+78005553535", 1.0)]
    ring = result.events[0]
    assert ring.kind is EventKind.RING and ring.agent_login is None and ring.direction is Direction.INBOUND
    assert ring.pbx_call_id == "43294397431" and ring.key == "contact:43294397431"


async def test_contact_owner_given_as_agent_id(connector, contacts):
    contacts.matches["+79101234567"] = [ContactMatch(id="1", entity="account", name="Acme", owner="a2")]
    result = await push(connector, {"cmd": "contact", "phone": CALLER, "callid": "c"})
    assert result.body == {"contact_name": "Acme", "responsible": "boris"}


async def test_contact_without_owner_or_with_unknown_owner_omits_responsible(connector, contacts):
    contacts.matches["+79101234567"] = [ContactMatch(id="1", entity="lead", name="Lead", owner="nobody")]
    result = await push(connector, {"cmd": "contact", "phone": CALLER, "callid": "c"})
    assert result.body == {"contact_name": "Lead"}


async def test_contact_with_several_matches_names_nobody(connector, contacts):
    contacts.matches["+79101234567"] = [
        ContactMatch(id="1", entity="contact", name="Ivan Petrov", owner="a2"),
        ContactMatch(id="2", entity="contact", name="Olga Petrova", owner="a3"),
    ]
    result = await push(connector, {"cmd": "contact", "phone": CALLER, "callid": "c"})
    assert result.status == 200 and result.body == {}  # the PBX shows the number


async def test_contact_with_several_matches_of_one_owner_routes_to_that_owner(connector, contacts):
    contacts.matches["+79101234567"] = [
        ContactMatch(id="1", entity="contact", name="Ivan Petrov", owner="a2"),
        ContactMatch(id="2", entity="account", name="Petrov LLC", owner="a2"),
    ]
    result = await push(connector, {"cmd": "contact", "phone": CALLER, "callid": "c"})
    assert result.body == {"responsible": "boris"}
    contacts.matches["+79101234567"].append(ContactMatch(id="3", entity="lead", name="Unowned lead"))
    result = await push(connector, {"cmd": "contact", "phone": CALLER, "callid": "c2"})
    assert result.body == {}  # one record has no owner: the owner is not known to be a2


async def test_contact_unknown_is_empty_object(connector):
    result = await push(connector, {"cmd": "contact", "phone": "79990000000", "callid": "c"})
    assert result.status == 200 and result.body == {}


async def test_contact_times_out_within_budget(make_connector, contacts, autojump_clock):
    connector = make_connector(contact_budget=0.8)
    contacts.matches["+79101234567"] = [ContactMatch(id="1", entity="contact", name="Slow")]
    contacts.delay = 5
    start = trio.current_time()
    result = await push(connector, {"cmd": "contact", "phone": CALLER, "callid": "c"})
    assert result.body == {}
    assert trio.current_time() - start == pytest.approx(0.8)


async def test_contact_requires_phone_and_callid(connector):
    result = await push(connector, {"cmd": "contact", "callid": "c"})
    assert result.status == 400 and "phone" in result.body["message"]


# -- rating ---------------------------------------------------------------------------------------


async def test_rating_is_kept_in_plugin_storage(connector, storage):
    result = await push(connector, {"cmd": "rating", "callid": "43294397431", "rating": "4", "phone": "88005553535",
                                    "user": "user", "ext": "510"})
    assert result.status == 200 and result.body == {} and result.events == []
    saved = storage.data[("rating", "mf:43294397431")]
    assert saved["rating"] == 4 and saved["user"] == "user"
    for rating in ("five", "nan", "-1", "inf"):
        bad = await push(connector, {"cmd": "rating", "callid": "x", "rating": rating})
        assert bad.status == 400, rating


# -- sequences ------------------------------------------------------------------------------------


async def test_group_call_answered_by_one_of_three(connector):
    posts = [ev("INCOMING", u, groupRealName="Sales") for u in ("anna", "boris", "vera")]
    posts += [ev("ACCEPTED", "boris"), ev("CANCELLED", "anna"), ev("CANCELLED", "vera"), ev("COMPLETED", "boris"),
              hist("Success", "boris", duration=95, wait=5, groupRealName="Sales", link="https://vats100.megapbx.ru/r.mp3")]
    events = []
    for post in posts:
        result = await push(connector, post)
        assert result.status == 200
        events += result.events
    kinds = [(e.kind, e.agent_login, e.outcome) for e in events]
    assert kinds[:3] == [(EventKind.RING, u, None) for u in ("anna", "boris", "vera")]
    assert (EventKind.ANSWER, "boris", None) in kinds
    assert kinds.count((EventKind.LEG_END, "anna", Outcome.MISSED)) == 1  # a per-leg cancel, not the call
    summary = events[-1]
    assert summary.kind is EventKind.SUMMARY and summary.outcome is Outcome.ANSWERED
    assert summary.agent_login == "boris" and summary.group == "Sales"
    assert (summary.total_seconds, summary.wait_seconds, summary.talk_seconds) == (95, 5, 90)
    assert {e.pbx_call_id for e in events} == {"C1"}
    assert len({e.key for e in events}) == len(events)


async def test_missed_call_to_a_group(connector):
    events = []
    for post in [ev("INCOMING", "anna"), ev("INCOMING", "boris"), ev("CANCELLED", "anna"), ev("CANCELLED", "boris"),
                 hist("missed", "pbx", duration=25, wait=25)]:
        events += (await push(connector, post)).events
    summary = events[-1]
    assert summary.outcome is Outcome.MISSED and summary.agent_login is None
    assert summary.extra["pbx_user"] == "pbx"
    assert (summary.wait_seconds, summary.talk_seconds) == (25, 0)
    assert summary.remote_number == "+79101234567"


async def test_transfer_and_the_transferred_legs_own_history(connector):
    events = []
    for post in [ev("INCOMING", "anna", "call-a"), ev("ACCEPTED", "anna", "call-a"),
                 ev("TRANSFERRED", "anna", "call-a", second_callid="call-b"), ev("COMPLETED", "anna", "call-a"),
                 ev("INCOMING", "boris", "call-b"), ev("ACCEPTED", "boris", "call-b"),
                 ev("COMPLETED", "boris", "call-b"),
                 hist("Success", "boris", "call-b", duration=40, wait=3, link="https://vats100.megapbx.ru/b.mp3"),
                 hist("Success", "anna", "call-a", duration=100, wait=4, link="https://vats100.megapbx.ru/a.mp3")]:
        events += (await push(connector, post)).events
    assert {e.pbx_call_id for e in events} == {"call-a"}  # the second leg folds into the primary call
    transfer = next(e for e in events if e.kind is EventKind.TRANSFER)
    # TRANSFERRED names no target: it is emitted with the next agent who rings on the call
    assert transfer.agent_login == "anna" and transfer.target_login == "boris" and transfer.leg_id == "call-b"
    kinds = [(e.kind, e.agent_login) for e in events]
    assert kinds.index((EventKind.TRANSFER, "anna")) == kinds.index((EventKind.RING, "boris")) - 1
    answers = [e.agent_login for e in events if e.kind is EventKind.ANSWER]
    assert answers == ["anna", "boris"]
    leg_history = events[-2]
    assert leg_history.kind is EventKind.LEG_END and leg_history.leg_id == "call-b"
    assert leg_history.recording is None  # only the primary call's recording is served
    summary = events[-1]
    assert summary.kind is EventKind.SUMMARY and summary.pbx_call_id == "call-a"


async def test_outbound_no_answer(connector):
    events = []
    for post in [ev("OUTGOING", "anna", "O1", direction="out"), ev("CANCELLED", "anna", "O1", direction="out"),
                 hist("NotAvailable", "anna", "O1", direction="out", duration=30, wait=30)]:
        events += (await push(connector, post)).events
    assert [e.direction for e in events] == [Direction.OUTBOUND] * 3
    assert events[1].outcome is Outcome.NO_ANSWER
    assert events[2].outcome is Outcome.NO_ANSWER and events[2].agent_login == "anna"


async def test_duplicate_posts_keep_their_key(connector, sink):
    first = await push(connector, ev("INCOMING", "anna"))
    again = await push(connector, ev("INCOMING", "anna"))
    reordered = await connector.handle_webhook(request(dict(reversed(list(ev("INCOMING", "anna").items())))))
    assert first.events[0].key == again.events[0].key == reordered.events[0].key
    assert await sink.submit(first.events + again.events + reordered.events) == 1
    h1 = await push(connector, hist("Success", "anna"))
    h2 = await push(connector, hist("Success", "anna"), as_json=True)
    assert h1.events[0].key == h2.events[0].key


async def test_reordered_leg_events_keep_leg_order(connector):
    cancelled = (await push(connector, ev("CANCELLED", "vera"))).events[0]
    incoming = (await push(connector, ev("INCOMING", "vera"))).events[0]
    assert incoming.received_at < cancelled.received_at  # moved before the event that overtook it
    assert incoming.received_at == cancelled.received_at - timedelta(milliseconds=1)
    completed = (await push(connector, ev("COMPLETED", "anna"))).events[0]
    accepted = (await push(connector, ev("ACCEPTED", "anna"))).events[0]
    assert accepted.received_at < completed.received_at
    ordered = sorted([cancelled, incoming, completed, accepted], key=lambda e: e.sort_key())
    per_leg = {leg: [e.kind for e in ordered if e.agent_login == leg] for leg in ("vera", "anna")}
    assert per_leg == {"vera": [EventKind.RING, EventKind.LEG_END], "anna": [EventKind.ANSWER, EventKind.LEG_END]}


async def test_history_recording_url_points_to_ctid(connector, storage, services):
    link = "https://vats100.megapbx.ru/api/v2/call-records/record/2026-11-25/x/file.mp3"
    result = await push(connector, hist("Success", "anna", link=link))
    summary = result.events[0]
    assert summary.recording == services.recording_url(summary.call_id)
    assert summary.recording.startswith("https://ctid.example.com/api/calls/")
    assert link not in repr(summary.to_json())  # the PBX's capability URL never leaves the plugin
    assert storage.data[("recording", "mf:C1")]["link"] == link


async def test_transfer_alias_survives_a_restart(make_connector, storage):
    first = make_connector()
    await push(first, ev("TRANSFERRED", "anna", "call-a", second_callid="call-b"))
    assert storage.data[("alias", "mf:call-b")] == {"primary": "call-a"}
    second = make_connector()  # a new process: the leg's late history still joins call-a
    result = await push(second, hist("Success", "boris", "call-b", link="https://vats100.megapbx.ru/b.mp3"))
    (event,) = result.events
    assert event.pbx_call_id == "call-a" and event.kind is EventKind.LEG_END and event.leg_id == "call-b"
    assert event.at is None


async def test_known_recording_link_is_not_fetched_again(connector, storage):
    link = "https://vats100.megapbx.ru/api/v2/call-records/record/x.mp3"
    await push(connector, hist("Success", "anna", link=link))
    await push(connector, hist("Success", "anna", link=link, duration=61))  # a corrected replay
    assert connector._jobs_out.statistics().current_buffer_used == 1
    assert [key for kind, key in storage.data if kind == "download"] == ["mf:C1"]
