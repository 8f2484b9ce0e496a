"""Callback tasks (one per caller, owner rule, update on a repeat miss, closing) and recording links."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ctid.errors import CRMError
from ctid.model import Outcome
from ctid_dynamics.payloads import note_id, phonecall_id, task_record_id
from ctid_dynamics.testing.factories import T0, make_call, make_task


def tasks(fake):
    return list(fake.records["tasks"].values())


async def test_missed_call_creates_one_task_owned_by_the_contact_owner(adapter, world, fake):
    miss = make_call("m1", "+74951234567", outcome=Outcome.MISSED)
    task = make_task("+74951234567", [miss])
    record_id = await adapter.create_callback_task(task, None)
    [record] = tasks(fake)
    assert record_id == record["activityid"] == task_record_id(task.id)
    assert (record["statecode"], record["statuscode"]) == (0, 2)  # open, not started
    assert record["subject"] == "Call back +74951234567 Jane Doe (1 missed)"
    assert record["_regardingobjectid_value"] == world.jane
    assert record["_ownerid_value"] == world.bob_user  # contact_owner comes first in the rule
    assert record["scheduledend"] == "2026-03-02T13:30:00.000Z"  # first miss + 4 h
    assert record["prioritycode"] == 2


async def test_second_miss_updates_the_task_instead_of_adding_one(adapter, fake):
    first = make_call("m2", "+74951234567", outcome=Outcome.MISSED)
    second = make_call("m3", "+74951234567", outcome=Outcome.MISSED, start=T0 + timedelta(minutes=20))
    await adapter.create_callback_task(make_task("+74951234567", [first]), None)
    fake.records["tasks"][task_record_id(make_task("+74951234567", [first]).id)]["scheduledend"] = "2026-03-03T08:00:00Z"
    await adapter.create_callback_task(make_task("+74951234567", [first, second]), None)
    [record] = tasks(fake)
    assert record["subject"] == "Call back +74951234567 Jane Doe (2 missed)"
    assert "Missed calls: 2" in record["description"]
    assert record["scheduledend"] == "2026-03-03T08:00:00Z"  # a due date a person moved is kept


async def test_owner_rule_falls_back_to_agent_then_group_manager(make_adapter, world, fake):
    adapter = make_adapter()
    unknown = make_call("m4", "+74990000001", outcome=Outcome.MISSED)
    await adapter.create_callback_task(make_task("+74990000001", [unknown], owner="alice"), None)
    await adapter.create_callback_task(make_task("+74990000002", [make_call("m5", "+74990000002")]), None)
    owners = {r["subject"].split()[2]: r["_ownerid_value"] for r in tasks(fake)}
    assert owners == {"+74990000001": world.alice_user, "+74990000002": world.manager_user}
    assert all(r.get("_regardingobjectid_value") is None for r in tasks(fake))

    only_manager = make_adapter(callback_task={"owner_rule": ["group_manager"], "group_managers": {"sales": "mary"}})
    await only_manager.create_callback_task(make_task("+74951234567", [make_call("m6", "+74951234567")]), None)
    record = next(r for r in tasks(fake) if r.get("_regardingobjectid_value") == world.jane)
    assert record["_ownerid_value"] == world.manager_user


async def test_shared_number_task_is_not_linked_to_any_contact(adapter, fake):
    await adapter.create_callback_task(make_task("+74957770000", [make_call("m7", "+74957770000")]), None)
    [record] = tasks(fake)
    assert record.get("_regardingobjectid_value") is None
    assert "3 CRM records share this number" in record["description"]


async def test_closing_the_task_is_idempotent(adapter, fake):
    task = make_task("+74951234567", [make_call("m8", "+74951234567")])
    await adapter.create_callback_task(task, None)
    await adapter.close_callback_task(task)
    await adapter.close_callback_task(task)
    [record] = tasks(fake)
    assert (record["statecode"], record["statuscode"]) == (1, 5)
    # a repeat miss arriving for a task a person already completed does not reopen or duplicate it
    await adapter.create_callback_task(task, None)
    assert len(tasks(fake)) == 1 and tasks(fake)[0]["statecode"] == 1


async def test_closing_before_creating_leaves_a_completed_task(adapter, fake):
    task = make_task("+74951234567", [make_call("m9", "+74951234567")])
    await adapter.close_callback_task(task)  # the close job arrived first
    await adapter.create_callback_task(task, None)  # then the create job
    [record] = tasks(fake)
    assert (record["statecode"], record["statuscode"]) == (1, 5)
    assert record["subject"].startswith("Call back +74951234567")


async def test_recording_note_is_attached_once(adapter, fake):
    call = make_call("r1", "+74951234567")
    url = "https://ctid.example/api/calls/r1/recording"
    with pytest.raises(CRMError) as info:  # the phonecall is not there yet: retry later
        await adapter.attach_recording(call, url)
    assert info.value.retryable and info.value.error_id == "crm_not_ready"
    await adapter.log_call(call, None)
    await adapter.attach_recording(call, url)
    await adapter.attach_recording(call, url)
    [note] = fake.records["annotations"].values()
    assert note["annotationid"] == note_id(call.id)
    assert note["_objectid_value"] == phonecall_id(call.id)
    assert url in note["notetext"]


async def test_recording_url_field_reopens_and_recloses_the_phonecall(make_adapter, fake):
    fake.entities["phonecalls"].columns.add("new_recordingurl")
    adapter = make_adapter(recording={"mode": "url_field", "url_field": "new_recordingurl"})
    call = make_call("r2", "+74951234567", outcome=Outcome.MISSED)
    await adapter.log_call(call, None)
    url = "https://ctid.example/api/calls/r2/recording"
    await adapter.attach_recording(call, url)
    before = len(fake.seen)
    await adapter.attach_recording(call, url)  # already there: one GET, no write
    assert [s.method for s in fake.seen[before:]] == ["GET"]
    record = fake.records["phonecalls"][phonecall_id(call.id)]
    assert record["new_recordingurl"] == url
    assert (record["statecode"], record["statuscode"]) == (2, 3)


async def test_clipping_keeps_long_subjects_and_descriptions_within_dynamics_limits(make_adapter, world, fake):
    fake.records["contacts"][world.jane]["fullname"] = "J" * 160  # the longest full name Dynamics holds
    adapter = make_adapter(
        phonecall={"subject": "{label} {number} {name} {agent} {line} {group} {outcome}"},
        callback_task={"subject": "Call back {number} {name} ({count} missed) {first_missed} {last_missed} {line}"},
    )
    call = make_call("long1", "+74951234567")
    call.recording_url = "https://ctid.example/api/calls/long1/recording?token=" + "t" * 2500
    await adapter.log_call(call, None)
    record = fake.records["phonecalls"][phonecall_id(call.id)]
    assert len(record["subject"]) == 200 and record["subject"].endswith("…")
    assert len(record["description"]) == 2000 and record["description"].endswith("…")
    assert (record["statecode"], record["statuscode"]) == (1, 4)
    task = make_task("+74951234567", [make_call("long2", "+74951234567", outcome=Outcome.MISSED)])
    await adapter.create_callback_task(task, None)
    [record] = tasks(fake)
    assert len(record["subject"]) == 200 and record["subject"].startswith("Call back +74951234567 JJJ")
    assert all(s.status < 400 for s in fake.seen if s.method == "PATCH")
    before = len(fake.seen)
    await adapter.log_call(call, None)  # a repeat compares the clipped values: nothing to rewrite
    assert [s.status for s in fake.seen[before:] if s.method == "PATCH"] == [412]
