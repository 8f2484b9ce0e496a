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


async def person_closes(adapter, fake, record_id, at, state=(1, 5)):
    """Someone completes (or cancels) the task in Dynamics at ``at`` on the organization's clock."""
    fake.clock = lambda: at
    await adapter.client.call("PATCH", f"tasks({record_id})", json={"statecode": state[0], "statuscode": state[1]},
                              headers={"If-Match": "*"})


async def test_a_miss_after_a_person_closed_the_task_opens_a_follow_up(adapter, world, fake):
    misses = [make_call(f"f{n}", "+74951234567", outcome=Outcome.MISSED, start=T0 + timedelta(minutes=20 * n))
              for n in range(3)]
    first_task = make_task("+74951234567", misses[:1])
    first_id = await adapter.create_callback_task(first_task, None)
    await person_closes(adapter, fake, first_id, T0 + timedelta(minutes=10))  # Bob called Jane back

    # The caller misses again; ctid's task is still open (ctid never saw the callback).
    second = make_task("+74951234567", misses[:2])
    follow_up_id = await adapter.create_callback_task(second, None)
    assert follow_up_id == task_record_id(second.id, 1) != first_id
    first, follow_up = fake.records["tasks"][first_id], fake.records["tasks"][follow_up_id]
    assert (first["statecode"], first["statuscode"]) == (1, 5)  # the person's completion stands
    assert "Missed calls: 1" in first["description"]
    assert (follow_up["statecode"], follow_up["statuscode"]) == (0, 2)
    assert follow_up["subject"] == "Call back +74951234567 Jane Doe (2 missed)"
    assert "Missed again after the previous callback task was closed in Dynamics (2026-03-02 09:40 UTC)" in (
        follow_up["description"])
    assert follow_up["scheduledend"] == "2026-03-02T13:50:00.000Z"  # latest miss + 4 h
    assert follow_up["_ownerid_value"] == world.bob_user and follow_up["_regardingobjectid_value"] == world.jane

    # Repeats of that job, and the next miss, update the follow-up; nothing else is added.
    await adapter.create_callback_task(second, None)
    third = make_task("+74951234567", misses)
    assert await adapter.create_callback_task(third, None) == follow_up_id
    assert len(tasks(fake)) == 2 and "Missed calls: 3" in fake.records["tasks"][follow_up_id]["description"]

    # ctid reaches the caller: the open follow-up is completed, the person's task is untouched.
    fake.clock = lambda: T0 + timedelta(hours=1)
    before = dict(first)
    await adapter.close_callback_task(third)
    assert (fake.records["tasks"][follow_up_id]["statecode"], fake.records["tasks"][follow_up_id]["statuscode"]) == (1, 5)
    assert fake.records["tasks"][first_id] == before
    await adapter.close_callback_task(third)  # idempotent
    assert len(tasks(fake)) == 2


async def test_a_miss_from_before_the_close_changes_nothing(adapter, fake):
    misses = [make_call(f"g{n}", "+74951234567", outcome=Outcome.MISSED, start=T0 + timedelta(minutes=20 * n))
              for n in range(2)]
    first_id = await adapter.create_callback_task(make_task("+74951234567", misses[:1]), None)
    # The second miss's job was held up (Dynamics was down) while the person completed the task.
    await person_closes(adapter, fake, first_id, T0 + timedelta(minutes=30))
    assert await adapter.create_callback_task(make_task("+74951234567", misses), None) == first_id
    [record] = tasks(fake)
    assert (record["statecode"], record["statuscode"]) == (1, 5) and "Missed calls: 1" in record["description"]


async def test_follow_ups_chain_and_survive_a_lost_answer(adapter, fake):
    misses = [make_call(f"h{n}", "+74951234567", outcome=Outcome.MISSED, start=T0 + timedelta(minutes=20 * n))
              for n in range(3)]
    first_id = await adapter.create_callback_task(make_task("+74951234567", misses[:1]), None)
    await person_closes(adapter, fake, first_id, T0 + timedelta(minutes=10))
    await adapter.lookup("+74951234567")
    # lookup, create R0 (412), read R0, read its modifiedon; the follow-up's create loses its answer
    fake.lose_answers(times=1, after=4)
    second = make_task("+74951234567", misses[:2])
    with pytest.raises(CRMError) as info:
        await adapter.create_callback_task(second, None)
    assert info.value.retryable
    assert await adapter.create_callback_task(second, None) == task_record_id(second.id, 1)
    assert len(tasks(fake)) == 2
    # The follow-up is cancelled by a person too; the caller misses once more: a second follow-up.
    await person_closes(adapter, fake, task_record_id(second.id, 1), T0 + timedelta(minutes=30), state=(2, 6))
    third = make_task("+74951234567", misses)
    assert await adapter.create_callback_task(third, None) == task_record_id(third.id, 2)
    states = [(r["statecode"], r["statuscode"]) for r in tasks(fake)]
    assert states == [(1, 5), (2, 6), (0, 2)]
