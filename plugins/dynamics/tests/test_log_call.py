"""Call logging: one phonecall per call, correctly bound and closed, whatever retries and outages happen."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ctid.errors import CRMError
from ctid.model import Direction, Outcome
from ctid_dynamics.payloads import phonecall_id
from ctid_dynamics.testing.factories import T0, make_call


async def drive(operation, *args, attempts: int = 10):
    """Call ``operation`` the way ctid's outbox worker does: again after each retryable CRMError."""
    errors: list[CRMError] = []
    for _ in range(attempts):
        try:
            return await operation(*args), errors
        except CRMError as exc:
            assert exc.retryable, exc
            errors.append(exc)
    raise AssertionError(f"still failing after {attempts} attempts: {errors[-1]}")


def phonecalls(fake):
    return list(fake.records["phonecalls"].values())


async def test_answered_inbound_call_is_one_received_phonecall(adapter, world, fake):
    call = make_call("c1", "+74951234567")
    activity_id = await adapter.log_call(call, None)
    [record] = phonecalls(fake)
    assert activity_id == record["activityid"] == phonecall_id(call.id)
    assert (record["statecode"], record["statuscode"]) == (1, 4)  # completed / received
    assert record["directioncode"] is False
    assert record["phonenumber"] == "+74951234567"
    assert record["subject"] == "Incoming call from +74951234567 Jane Doe"
    assert record["actualstart"] == "2026-03-02T09:30:00.000Z"
    assert record["actualend"] == "2026-03-02T09:32:13.000Z"
    assert record["actualdurationminutes"] == 3  # 125 s rounded up
    assert record["_regardingobjectid_value"] == world.jane
    assert record["_ownerid_value"] == world.alice_user
    assert sorted((p["entity"], p["partyid"], p["participationtypemask"]) for p in record["parties"]) == [
        ("contact", world.jane, 1), ("systemuser", world.alice_user, 2),
    ]
    [create] = [s for s in fake.api("PATCH", "phonecalls") if s.headers.get("if-none-match") == "*"]
    assert "regardingobjectid_contact_phonecall@odata.bind" in create.body
    assert "statecode" not in create.body  # state is set by a second PATCH, never on create


async def test_outbound_call_is_made_with_swapped_parties(adapter, world, fake):
    call = make_call("c2", "+79161112233", direction=Direction.OUTBOUND, agent="bob")
    await adapter.log_call(call, None)
    [record] = phonecalls(fake)
    assert (record["statecode"], record["statuscode"]) == (1, 2)  # made
    assert record["directioncode"] is True
    assert record["_regardingobjectid_value"] == world.lead
    assert sorted((p["entity"], p["participationtypemask"]) for p in record["parties"]) == [
        ("lead", 2), ("systemuser", 1),
    ]
    assert record["_ownerid_value"] == world.bob_user  # bob@contoso.example resolved to his systemuserid


async def test_transferred_call_is_owned_by_the_last_agent_with_every_agent_a_party(adapter, world, fake):
    call = make_call("c17", "+74951234567", agent="bob")
    call.agents = ["alice", "bob"]
    call.transferred_from = "alice"
    await adapter.log_call(call, None)
    [record] = phonecalls(fake)
    assert record["_ownerid_value"] == world.bob_user
    assert sorted((p["partyid"], p["participationtypemask"]) for p in record["parties"]) == sorted([
        (world.jane, 1), (world.bob_user, 2), (world.alice_user, 2)])
    assert "Agent: Bob Agent (also: Alice Agent)" in record["description"]


async def test_missed_call_is_cancelled_or_as_configured(make_adapter, fake):
    adapter = make_adapter()
    await adapter.log_call(make_call("c3", "+74951234567", outcome=Outcome.MISSED), None)
    [record] = phonecalls(fake)
    assert (record["statecode"], record["statuscode"]) == (2, 3)
    assert record["subject"].startswith("Missed call from")
    assert record["actualdurationminutes"] == 0
    assert [p["entity"] for p in record["parties"]] == ["contact"]  # nobody answered: no agent party

    received = make_adapter(phonecall={"missed_status": "completed"})
    await received.log_call(make_call("c4", "+74951234567", outcome=Outcome.NO_ANSWER), None)
    assert (fake.records["phonecalls"][phonecall_id(make_call("c4", "x").id)]["statecode"]) == 1
    assert fake.records["phonecalls"][phonecall_id(make_call("c4", "x").id)]["statuscode"] == 4


async def test_shared_number_logs_against_no_contact(adapter, world, fake):
    call = make_call("c5", "+74957770000")
    await adapter.log_call(call, None)
    [record] = phonecalls(fake)
    assert record.get("_regardingobjectid_value") is None
    assert [p["entity"] for p in record["parties"]] == ["systemuser"]
    assert record["phonenumber"] == "+74957770000"
    assert "3 CRM records share this number" in record["description"]
    create = next(s for s in fake.api("PATCH", "phonecalls") if s.headers.get("if-none-match") == "*")
    assert not any(key.startswith("regardingobjectid") for key in create.body)


async def test_unknown_caller_and_agent_without_crm_user(adapter, fake):
    await adapter.log_call(make_call("c6", "+74990000000", agent="nocrm"), None)
    [record] = phonecalls(fake)
    assert "parties" not in record and record.get("_regardingobjectid_value") is None
    assert record["_ownerid_value"] == fake.app_user
    assert (record["statecode"], record["statuscode"]) == (1, 4)


async def test_logged_twice_and_through_429_and_503_gives_one_closed_phonecall(adapter, world, fake):
    call = make_call("c7", "+74951234567")
    await adapter.lookup("+74951234567")  # warm-up: token and the agents' CRM users are known
    fake.throttle(times=1, retry_after=3, after=1)  # the lookup passes, the create is throttled
    fake.fail(times=1, status=503, retry_after=2)  # then a lookup of the retry fails
    result, errors = await drive(adapter.log_call, call, None)
    assert result == phonecall_id(call.id)
    assert [e.retry_after for e in errors] == [3, 2]
    assert [e.error_id for e in errors] == ["crm_throttled", "crm_unavailable"]
    # The close fails after the create went through; the retry must still end closed, not duplicate.
    second = make_call("c8", "+74951234567", start=T0 + timedelta(minutes=5))
    fake.fail(times=1, status=503, after=2)  # lookup, create; then the close fails
    await drive(adapter.log_call, second, None)
    # And the outbox may deliver the first one again.
    await drive(adapter.log_call, call, None)
    records = phonecalls(fake)
    assert len(records) == 2
    assert all((r["statecode"], r["statuscode"]) == (1, 4) for r in records)
    creates = [s for s in fake.api("PATCH", "phonecalls") if s.headers.get("if-none-match") == "*"]
    assert [s.status for s in creates].count(412) == 2  # the retry of c8 and the repeat of c7


async def test_close_whose_answer_was_lost_is_not_repeated(adapter, fake):
    await adapter.lookup("+74951234567")
    call = make_call("c13", "+74951234567")
    fake.lose_answers(times=1, after=2)  # lookup, create; the close happens but its answer is lost
    _, errors = await drive(adapter.log_call, call, None)
    assert [e.error_id for e in errors] == ["crm_unavailable"]
    assert fake.lost and fake.lost[0][0] == 204
    [record] = phonecalls(fake)
    assert (record["statecode"], record["statuscode"]) == (1, 4)
    closes = [s for s in fake.api("PATCH", "phonecalls") if "statecode" in (s.body or {})]
    assert len(closes) == 1  # the retry saw 412, read the state, and stopped


async def test_closed_phonecall_is_read_only_and_repeat_is_a_no_op(adapter, fake):
    call = make_call("c9", "+74951234567")
    await adapter.log_call(call, None)
    before = len(fake.seen)
    await adapter.log_call(call, None)
    after = fake.seen[before:]
    assert [s.status for s in after if s.method == "PATCH"] == [412]  # nothing else written
    assert len(phonecalls(fake)) == 1


async def test_a_later_authoritative_outcome_corrects_the_closed_phonecall(adapter, fake):
    missed = make_call("c10", "+74951234567", outcome=Outcome.MISSED)
    await adapter.log_call(missed, None)
    answered = make_call("c10", "+74951234567")  # the PBX history says it was answered after all
    await adapter.log_call(answered, None)
    [record] = phonecalls(fake)
    assert (record["statecode"], record["statuscode"]) == (1, 4)
    assert record["subject"].startswith("Incoming call from")


async def test_dynamics_down_then_up_every_activity_arrives_once_in_order(adapter, fake):
    calls = [make_call(f"burst{n}", "+74951234567", start=T0 + timedelta(minutes=n)) for n in range(6)]
    await adapter.lookup("+74951234567")  # warm: token fetched before the outage
    fake.down = True
    pending = []
    for call in calls:
        with pytest.raises(CRMError) as info:
            await adapter.log_call(call, None)
        assert info.value.retryable and info.value.error_id == "crm_unavailable"
        pending.append(call)
    assert phonecalls(fake) == []
    fake.down = False
    for call in pending:  # the outbox drains in order
        await drive(adapter.log_call, call, None)
    records = phonecalls(fake)
    assert [r["activityid"] for r in records] == [phonecall_id(c.id) for c in calls]
    assert [r["actualstart"] for r in records] == sorted(r["actualstart"] for r in records)


async def test_withheld_number_is_logged_without_lookup(adapter, fake):
    call = make_call("c14", "")
    call.remote_number = None
    await adapter.log_call(call, None)
    [record] = phonecalls(fake)
    assert record["subject"] == "Incoming call from a withheld number"
    assert record["phonenumber"] == ""
    assert not any(s.path == "$batch" for s in fake.seen)


async def test_contact_deleted_between_lookup_and_write_is_retried_unbound(adapter, world, fake):
    call = make_call("c15", "+74951234567")
    original = adapter.lookup

    async def lookup_then_delete(phone):
        matches = await original(phone)
        fake.records["contacts"].pop(world.jane, None)  # someone deletes Jane meanwhile
        return matches

    adapter.lookup = lookup_then_delete
    with pytest.raises(CRMError) as info:
        await adapter.log_call(call, None)
    assert info.value.retryable and "Does Not Exist" in str(info.value)
    adapter.lookup = original
    await adapter.log_call(call, None)
    [record] = phonecalls(fake)
    assert record.get("_regardingobjectid_value") is None and (record["statecode"], record["statuscode"]) == (1, 4)


async def test_connection_refused_is_retryable(make_adapter, fake):
    adapter = make_adapter(url="https://127.0.0.1:9", auth={"scope": f"{fake.url}/.default"})
    with pytest.raises(CRMError) as info:
        await adapter.log_call(make_call("c16", "+74951234567"), None)
    assert info.value.retryable and info.value.error_id == "crm_unreachable"
    assert str(info.value).startswith("cannot reach Dynamics at https://127.0.0.1:9: ConnectError")


async def test_internal_calls_are_not_logged_unless_configured(make_adapter, fake):
    call = make_call("c11", "102", direction=Direction.INTERNAL)
    assert await make_adapter().log_call(call, None) is None
    assert phonecalls(fake) == []


async def test_validation_error_is_not_retryable(make_adapter, fake):
    adapter = make_adapter(recording={"mode": "url_field", "url_field": "new_recordingurl"})
    call = make_call("c12", "+74951234567")
    call.recording_url = "https://ctid.example/api/calls/x/recording"
    with pytest.raises(CRMError) as info:  # the fake's phonecall has no such column
        await adapter.log_call(call, None)
    assert not info.value.retryable
    assert "new_recordingurl" in str(info.value) and "400" in str(info.value)


async def test_history_correction_with_the_same_outcome_rewrites_times_and_duration(adapter, fake):
    await adapter.log_call(make_call("c18", "+74951234567", talk=30), None)
    corrected = make_call("c18", "+74951234567", talk=600)  # the PBX history: a 10-minute call
    await adapter.log_call(corrected, None)
    [record] = phonecalls(fake)
    assert (record["statecode"], record["statuscode"]) == (1, 4)
    assert record["actualdurationminutes"] == 10
    assert record["actualstart"] == "2026-03-02T09:30:00.000Z"
    assert record["actualend"] == "2026-03-02T09:40:08.000Z"
    assert "talked: 600 s" in record["description"]
    # reopened (documented SetState to Open), written while open, closed again as received
    writes = [s for s in fake.api("PATCH", "phonecalls") if s.status in (200, 204)][2:]
    assert [(s.body.get("statecode"), s.body.get("statuscode")) for s in writes] == [(0, 1), (None, None), (1, 4)]
    # the same correction delivered again changes nothing
    before = len(fake.seen)
    await adapter.log_call(corrected, None)
    assert [s.status for s in fake.seen[before:] if s.method == "PATCH"] == [412]


async def test_history_correction_survives_lost_answers_at_every_step(adapter, fake):
    await adapter.lookup("+74951234567")
    for step in (3, 4, 5):  # lookup, create (412), read; then the reopen / update / close loses its answer
        await adapter.log_call(make_call(f"c19-{step}", "+74951234567", talk=30), None)
        corrected = make_call(f"c19-{step}", "+74951234567", talk=600)
        fake.lose_answers(times=1, after=step)
        _, errors = await drive(adapter.log_call, corrected, None)
        assert [e.error_id for e in errors] == ["crm_unavailable"], step
        record = fake.records["phonecalls"][phonecall_id(corrected.id)]
        assert (record["statecode"], record["statuscode"]) == (1, 4), step
        assert record["actualdurationminutes"] == 10, step
    assert len(phonecalls(fake)) == 3


def test_stored_values_compare_as_dynamics_returns_them():
    from ctid_dynamics.payloads import comparable, stale_columns

    wanted = comparable({
        "subject": "Incoming call", "description": "a\nb", "actualstart": "2026-03-02T09:30:00.250Z",
        "actualdurationminutes": 3, "directioncode": False, "phonenumber": "",
        "ownerid@odata.bind": "/systemusers(6F9A1C2E-0000-4000-8000-000000000001)",
        "regardingobjectid_contact_phonecall@odata.bind": "/contacts(6f9a1c2e-0000-4000-8000-000000000002)",
        "phonecall_activity_parties": [{"partyid_contact@odata.bind": "/contacts(x)", "participationtypemask": 1}],
    })
    stored = {
        "subject": "Incoming call", "description": "a\r\nb", "actualstart": "2026-03-02T09:30:00Z",
        "actualdurationminutes": 3, "directioncode": False, "phonenumber": None,
        "_ownerid_value": "6f9a1c2e-0000-4000-8000-000000000001",
        "_regardingobjectid_value": "6f9a1c2e-0000-4000-8000-000000000002",
    }
    assert stale_columns(stored, wanted) == []
    changed = {**stored, "actualstart": "2026-03-02T09:29:58Z", "actualdurationminutes": 10, "_ownerid_value": None}
    assert stale_columns(changed, wanted) == ["actualstart", "actualdurationminutes", "_ownerid_value"]
