"""Commands against the fake tenant: click-to-call, DND, directory, history pull, PBX errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ctid.errors import CapabilityError, PBXError, RequestError
from ctid.model import Call, Capability, EventKind, Outcome

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def row(uid: str, minute: int, status: str = "success", user: str = "anna", **more):
    return {"uid": uid, "type": "in", "status": status, "client": "79260001122", "user": user,
            "diversion": "74950000001", "start": f"2026-11-25T09:{minute:02d}:00Z", "wait": 5, "duration": 65,
            **more}


# -- click-to-call --------------------------------------------------------------------------------


async def test_dial_reaches_rest_makecall_with_login_and_digits(connector, fake):
    callid = await connector.dial("anna", "+7 (926) 000-11-22")
    assert callid and len(callid) == 16
    (command,) = fake.received("rest", "/crmapi/v1/makecall")
    assert command.method == "POST"
    assert command.json == {"phone": "79260001122", "user": "anna"}
    assert command.headers["x-api-key"] == fake.api_key


async def test_dial_with_trunk_prefix_number_is_normalized(connector, fake):
    await connector.dial("anna", "8 926 000 11 22")
    assert fake.received("rest")[-1].json["phone"] == "79260001122"


async def test_dial_legacy_api_sends_form_with_token(make_connector, fake):
    connector = make_connector(api_generation="legacy")
    callid = await connector.dial("anna", "+79260001122")
    (command,) = fake.received("legacy", "makeCall")
    assert command.form == {"cmd": "makeCall", "token": fake.api_key, "phone": "79260001122", "user": "anna"}
    assert callid and callid.isalnum()  # the bare CallID of the legacy API


async def test_dial_unknown_user_is_a_clear_pbx_error(connector):
    with pytest.raises(PBXError) as info:
        await connector.dial("ghost", "79260001122")
    assert info.value.error_id == "pbx_not_found"
    assert str(info.value) == "MegaFon makecall: HTTP 404: User not found"
    assert info.value.retryable is False


async def test_dial_bad_key_is_unauthorized(make_connector):
    connector = make_connector(api_key="wrong-key")
    with pytest.raises(PBXError, match="HTTP 401: Unauthorized") as info:
        await connector.dial("anna", "79260001122")
    assert info.value.error_id == "pbx_unauthorized"


async def test_legacy_bad_key_gives_the_documented_text(make_connector):
    connector = make_connector(api_generation="legacy", api_key="wrong-key")
    with pytest.raises(PBXError, match="HTTP 401: Invalid token"):
        await connector.dial("anna", "79260001122")


async def test_dial_number_without_digits_is_a_request_error(connector, fake):
    with pytest.raises(RequestError, match="no digits") as info:
        await connector.dial("anna", "call me")
    assert info.value.error_id == "bad_number"
    assert fake.commands == []


async def test_throttling_carries_retry_after(connector, fake):
    fake.throttle(1)
    with pytest.raises(PBXError) as info:
        await connector.dial("anna", "79260001122")
    assert info.value.retry_after == 2 and info.value.retryable and info.value.error_id == "pbx_throttled" and info.value.status == 429
    assert await connector.dial("anna", "79260001122")  # the next request goes through


async def test_html_page_on_a_wrong_url(make_connector, fake):
    connector = make_connector(api_url=fake.base_url + "/wrong")
    with pytest.raises(PBXError, match="HTML page"):
        await connector.dial("anna", "79260001122")


async def test_unreachable_pbx_is_a_pbx_error():
    import httpx

    from ctid_megafon.client import MegafonClient
    from megafon_kit import make_config

    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    client = MegafonClient(make_config(), transport=httpx.MockTransport(refuse))
    try:
        with pytest.raises(PBXError, match="cannot reach vats100.megapbx.ru") as info:
            await client.make_call("anna", "79260001122")
        assert info.value.error_id == "pbx_unreachable" and info.value.retryable
    finally:
        await client.aclose()


async def test_unsupported_commands_are_capability_errors(connector):
    call = Call(id="x", connector="mf", pbx_call_id="C1")
    for command in (connector.hold(call, "anna"), connector.transfer(call, "anna", "boris"),
                    connector.hangup(call, "anna")):
        with pytest.raises(CapabilityError):
            await command
    assert Capability.HOLD not in connector.capabilities


# -- DND ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("generation", ["rest", "legacy"])
async def test_set_dnd_both_generations(make_connector, fake, generation):
    connector = make_connector(api_generation=generation)
    await connector.set_dnd("boris", True)
    assert fake.dnd == {"boris": True} and await connector.client.get_dnd("boris") is True
    await connector.set_dnd("boris", False)
    assert fake.dnd == {"boris": False}
    with pytest.raises(PBXError):
        await connector.set_dnd("ghost", True)


# -- directory import -----------------------------------------------------------------------------


@pytest.mark.parametrize("generation", ["rest", "legacy"])
async def test_import_users_follows_pages(make_connector, fake, generation):
    connector = make_connector(api_generation=generation)
    imported = await connector.import_users()
    assert [u.login for u in imported.users] == ["anna", "boris", "vera", "admin"]
    assert imported.users[0].name == "Anna A" and imported.users[0].ext == "701"
    assert [g.id for g in imported.groups] == ["g1", "g2"]
    if generation == "rest":
        starts = [c.query.get("start") for c in fake.received("rest", "/crmapi/v1/users")]
        assert starts == [None, "3"]  # page size 3: second page from offset 3
        agents = imported.suggested_agents()
        assert agents["anna"] == {"name": "Anna A", "pbx": {"mf": "anna"}, "extension": "701", "groups": ["Sales"]}
    assert imported.to_json()["instance"] == "mf"


# -- history pull ---------------------------------------------------------------------------------


async def test_history_pull_pages_and_deduplicates(make_connector, fake):
    connector = make_connector(history_limit=2)
    fake.history = [row(f"u{i}", i) for i in range(5)] + [row("m1", 30, status="missed", user="pbx", wait=40, duration=40)]
    events = await connector.history(T0)
    assert [e.pbx_call_id for e in events] == ["u0", "u1", "u2", "u3", "u4", "m1"]
    assert all(e.kind is EventKind.SUMMARY for e in events)
    assert events[0].at == datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    assert (events[0].total_seconds, events[0].talk_seconds) == (65, 60)
    assert events[-1].outcome is Outcome.MISSED and events[-1].agent_login is None
    requests = fake.received("rest", "/crmapi/v1/history/json")
    assert len(requests) >= 3 and requests[0].query["start"] == "20261125T090000Z"
    assert requests[1].query["start"] == "20261125T090100Z"  # continued from the newest row seen


@pytest.mark.parametrize("newest_first", [False, True])
async def test_history_pull_gets_every_row_in_either_order(make_connector, fake, newest_first):
    connector = make_connector(history_limit=3)
    fake.history_newest_first = newest_first
    # 10 calls, two of them at the same instant as a neighbour (page boundaries fall inside instants)
    fake.history = [row(f"u{i}", minute) for i, minute in enumerate([0, 1, 2, 2, 3, 4, 5, 5, 6, 7])]
    events = await connector.history(T0)
    assert sorted(e.pbx_call_id for e in events) == [f"u{i}" for i in range(10)]
    assert [e.pbx_call_id for e in events] == [f"u{i}" for i in range(10)]  # oldest first, no duplicates
    assert len(fake.received("rest", "/crmapi/v1/history/json")) <= 12


async def test_history_pull_with_more_rows_at_one_instant_than_a_page_ends(make_connector, fake):
    connector = make_connector(history_limit=2)
    fake.history = [row(f"s{i}", 3) for i in range(5)]
    events = await connector.history(T0)
    assert len(events) >= 2 and len(fake.received("rest", "/crmapi/v1/history/json")) <= 4


async def test_history_pull_falls_back_to_the_extended_date_form(connector, fake):
    fake.date_forms = ("extended",)
    fake.history = [row("u1", 5)]
    events = await connector.history(T0)
    assert [e.pbx_call_id for e in events] == ["u1"]
    first, second = fake.received("rest", "/crmapi/v1/history/json")
    assert first.status == 400 and second.query["start"] == "2026-11-25T09:00:00Z"
    await connector.history(T0)  # remembered: no failed request any more
    assert fake.received("rest", "/crmapi/v1/history/json")[-1].status == 200
    assert len(fake.received("rest", "/crmapi/v1/history/json")) == 3


async def test_history_disabled_is_a_501_pbx_error(connector, fake):
    fake.history_enabled = False
    with pytest.raises(PBXError) as info:
        await connector.history(T0)
    assert info.value.code == "501" and info.value.retryable is False


async def test_legacy_history_csv(make_connector, fake):
    connector = make_connector(api_generation="legacy")
    fake.history = [row("u1", 1, record="https://vats100.megapbx.ru/r1.mp3"),
                    row("m1", 2, status="missed", user="ivr", wait=30, duration=30)]
    events = await connector.history(T0)
    answered, missed = events
    assert answered.outcome is Outcome.ANSWERED and answered.talk_seconds == 60 and answered.total_seconds == 65
    assert answered.recording == connector.services.recording_url(answered.call_id)
    assert missed.outcome is Outcome.MISSED and missed.agent_login is None
    assert fake.received("legacy", "history")[0].form["start"] == "20261125T090000Z"


async def test_lost_webhook_is_recovered_by_reconciliation_without_duplicates(connector, fake, sink):
    from megafon_kit import push

    # The push for call P1 arrived; the push for P2 was lost in transit.
    pushed = await push(connector, {"cmd": "history", "type": "in", "status": "Success", "user": "anna",
                                    "phone": "79260001122", "diversion": "74950000001", "callid": "P1",
                                    "start": "20261125T090100Z", "duration": "65", "wait": "5"})
    await sink.submit(pushed.events)
    fake.history = [row("P1", 1), row("P2", 2)]
    first_pass = await connector.history(T0)
    assert await sink.submit(first_pass) == 1  # only the lost call is new
    assert await sink.submit(await connector.history(T0)) == 0  # the next pass changes nothing
    assert sorted(e.pbx_call_id for e in sink.events) == ["P1", "P2"]
