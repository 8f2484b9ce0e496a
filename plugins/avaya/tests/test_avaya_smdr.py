"""SMDR: the reference's published samples, byte streams cut anywhere, reboots, bad lines."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avaya_kit import final, pipeline, stream
from avaya_samples import AVAYA_EXAMPLES, IP500, REBOOT, TRANSFER
from ctid.model import Direction, EventKind, Outcome
from ctid_avaya.smdr import LineSplitter, SmdrError, decode, parse_record


def test_every_published_sample_parses_by_position():
    for line in AVAYA_EXAMPLES + IP500 + TRANSFER + REBOOT:
        record = parse_record(line)
        assert record.call_start.year in (2008, 2017)
    lost = parse_record(AVAYA_EXAMPLES[0])
    assert (lost.connected, lost.ring, lost.caller, lost.direction, lost.call_id, lost.field_count) == (
        0, 9, "8004206", "I", 1000014155, 17)
    sip = parse_record(IP500[4])
    assert sip.caller_number == "0518012216" and sip.hold == 38 and sip.dialled == "48564756067"
    assert sip.caller_leg_key() == ("192.168.0.201", 1025) and sip.field_count == 34
    assert parse_record(IP500[0]).party2_name == "WŁOCŁAWSKA"


def test_samples_become_the_right_calls():
    events, bad = pipeline([stream(AVAYA_EXAMPLES + IP500)])
    assert bad == []
    calls = final(events)
    assert len(calls) == 9  # the voicemail transfer's two records are one call
    by_callid = {tuple(e.extra["smdr_call_ids"]): e for e in calls.values()}
    lost = by_callid[(1000014155,)]
    assert (lost.direction, lost.outcome, lost.agent_login, lost.talk_seconds, lost.wait_seconds) == (
        Direction.INBOUND, Outcome.MISSED, "x4324", None, 9.0)
    to_vm = by_callid[(1000014160,)]
    assert (to_vm.outcome, to_vm.agent_login, to_vm.talk_seconds, to_vm.total_seconds, to_vm.extra["records"]) == (
        Outcome.ANSWERED, "x4750", 13.0, 13 + 7 + 11 + 21, 2)
    internal = by_callid[(1000013898,)]
    assert internal.direction is Direction.INTERNAL and internal.outcome is Outcome.ANSWERED
    outbound = by_callid[(1005727,)]
    assert (outbound.direction, outbound.remote_number, outbound.talk_seconds, outbound.agent_login) == (
        Direction.OUTBOUND, "600988600", 61.0, "x217")
    never = by_callid[(1005726,)]
    assert never.outcome is Outcome.NO_ANSWER
    analog = by_callid[(1005817,)]
    assert (analog.outcome, analog.remote_number, analog.wait_seconds) == (Outcome.MISSED, None, 26.0)
    sip = by_callid[(1000008,)]
    assert (sip.remote_number, sip.line_number, sip.outcome, sip.hold_seconds) == (
        "0518012216", "48564756067", Outcome.ANSWERED, 38)
    # local time of the unit -> UTC (Warsaw is UTC+2 in summer)
    assert sip.at == datetime(2017, 7, 28, 10, 54, 49, tzinfo=UTC)
    ddi = by_callid[(1000013,)]
    assert (ddi.line_number, ddi.agent_login) == ("390664", "x23")


def test_external_transfer_tail_joins_the_original_call_through_the_caller_leg():
    events, _ = pipeline([stream(TRANSFER)])
    calls = final(events)
    assert len(calls) == 2  # the inbound call (with its transferred tail) and 513's consultation call
    inbound = next(e for e in calls.values() if e.direction is Direction.INBOUND)
    assert inbound.extra["smdr_call_ids"] == [1000014, 1000018]
    assert inbound.pbx_call_id == "192.168.0.201-1043-20170728125746"
    # the caller talked to 513, then (the tail, no agent) to the external number 513 transferred to
    assert inbound.agent_login == "x513" and inbound.talk_seconds == 109.0 + 17.0
    # the first record spans 109 + 7 + 97 s (talk, ring, hold); the tail (13:00:24 + 17 s) ends inside it
    assert inbound.total_seconds == 213.0
    consult = next(e for e in calls.values() if e.direction is Direction.OUTBOUND)
    assert consult.extra["smdr_call_ids"] == [1000018] and consult.remote_number == "783809110"


def test_a_reboot_mid_day_does_not_merge_two_calls():
    same_day = REBOOT[1].replace("2017/08/06 17:43:17", "2017/07/28 17:43:17")
    events, _ = pipeline([stream([REBOOT[0], same_day])])
    calls = final(events)
    assert len(calls) == 2
    # a call whose last record never came (the unit rebooted mid-call), then the same Call ID again
    first = REBOOT[0].replace(",1000000,0,", ",1000000,1,")
    events, _ = pipeline([stream([first, same_day])])
    calls = final(events)
    assert len(calls) == 2
    assert sorted(e.extra["complete"] for e in calls.values()) == [False, True]


def test_redelivered_records_are_duplicates():
    once, _ = pipeline([stream(IP500)])
    twice, _ = pipeline([stream(IP500 + IP500)])
    assert {e.key for e in twice} == {e.key for e in once}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_byte_stream_cut_anywhere_yields_the_same_calls(data):
    raw = b"\x00\x00" + stream(AVAYA_EXAMPLES + IP500 + TRANSFER + REBOOT)
    expected, _ = pipeline([raw])
    cuts = sorted(data.draw(st.sets(st.integers(1, len(raw) - 1), max_size=40)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    got, bad = pipeline(chunks)
    assert bad == []
    assert [(e.key, e.outcome, e.total_seconds) for e in got] == [(e.key, e.outcome, e.total_seconds) for e in expected]


def test_every_single_cut_position():
    raw = stream(TRANSFER + IP500[:2])
    expected, _ = pipeline([raw])
    for cut in range(1, len(raw)):
        got, _ = pipeline([raw[:cut], raw[cut:]])
        assert [e.key for e in got] == [e.key for e in expected], cut


@settings(max_examples=80, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_garbage_between_records_is_skipped_and_nothing_received_is_lost(noise):
    good = stream(IP500)
    parts = [good[: len(good) // 2].rsplit(b"\n", 1)[0] + b"\n"]
    parts += [n.replace(b"\n", b"") + b"\r\n" for n in noise]
    parts.append(good[len(parts[0]):])
    expected, _ = pipeline([good])
    got, _ = pipeline(parts)
    assert {e.key for e in expected} <= {e.key for e in got}


def test_bad_lines_say_which_field():
    with pytest.raises(SmdrError, match="fields"):
        parse_record("a,b,c")
    with pytest.raises(SmdrError, match="call start"):
        parse_record("yesterday" + AVAYA_EXAMPLES[0][19:])
    with pytest.raises(SmdrError, match="call id"):
        parse_record(AVAYA_EXAMPLES[0].replace("1000014155", "x"))


def test_an_oversized_line_is_dropped_up_to_the_next_line_end():
    splitter = LineSplitter(max_line=300)
    assert splitter.feed(b"x" * 500) == []
    assert splitter.oversized == 1
    assert splitter.feed(b"yyy\r\n" + stream(IP500[:1])) == [IP500[0].encode()]


def test_cp1251_falls_back():
    assert decode("Иван".encode("cp1251")) == "Иван"


def test_summary_kind():
    events, _ = pipeline([stream(IP500[:1])])
    assert events[0].kind is EventKind.SUMMARY


def test_analog_trunk_calls_sharing_caller_leg_2_stay_apart():
    first = IP500[3]  # 11:01:57, caller leg 2, ring 26
    second = first.replace("11:01:57", "11:02:05").replace(",1005817,", ",1005818,")
    events, _ = pipeline([stream([first, second])])
    assert len(final(events)) == 2


def test_a_37_field_r12_record_and_extra_columns():
    line = IP500[4] + ",2017/07/28 10:55:57,0,A"  # SMDR Record Time, consent directive, attestation
    record = parse_record(line)
    assert record.field_count == 37 and record.caller_leg_key() == ("192.168.0.201", 1025)
    assert parse_record(line + ",,future,columns").caller == "0518012216@193.43.148.35"


def test_a_split_divert_keeps_one_call_although_its_times_restart():
    # "Call Splitting for Diverts": the forwarded part keeps the Call ID, its start restarts (§1.1)
    first = ("2026/05/04 10:00:00,00:00:00,15,79161234567,I,201,74950000001,,0,1000200,1,E201,Anna,T9001,"
             "Line 1.1,0,0,,,,,,,,,,,,,,10.0.0.1,7001,0.0.0.0,0")
    second = ("2026/05/04 10:00:15,00:01:00,3,79161234567,I,89160000000,89160000000,,0,1000200,0,T9002,Line 2.1,"
              "T9001,Line 1.1,0,0,,,,,,,,,,,MT,Anna,,10.0.0.1,7001,10.0.0.1,7003")
    events, _ = pipeline([stream([first, second])])
    calls = final(events)
    assert len(calls) == 1
    (call,) = calls.values()
    assert call.extra["records"] == 2 and call.total_seconds == 15 + 63
    # answered on Anna's twinned mobile: answered, hers, no callback task
    assert (call.outcome.value, call.agent_login, call.talk_seconds) == ("answered", "x201", 60.0)


def test_a_missed_call_left_in_voicemail_belongs_to_the_extension_that_rang():
    rang = AVAYA_EXAMPLES[1].replace(",00:00:13,", ",00:00:00,").replace(",11,0", ",0,0")
    events, _ = pipeline([stream([rang, AVAYA_EXAMPLES[2]])])
    (call,) = final(events).values()
    assert (call.outcome.value, call.agent_login, call.talk_seconds) == ("missed", "x4750", None)


def test_the_leg_index_forgets_calls_older_than_two_days():
    from datetime import timedelta

    from ctid_avaya.calllog import LegIndex

    index = LegIndex()
    old = datetime(2026, 5, 1, tzinfo=UTC)
    index.register(("10.0.0.1", 1), "old-call", old, old)
    for n in range(2, 1001):
        index.register(("10.0.0.1", n), f"call-{n}", old + timedelta(days=3))
    assert index.find(("10.0.0.1", 1), old) is None and index.find(("10.0.0.1", 5), old + timedelta(days=3))


_GOOD = ("2026/12/01 10:00:00,00:00:30,5,79160000001,I,201,74950000001,,0,1000000,0,E201,Anna,T9001,Line 1.1,0,0"
         ",,,,,,,,,,,,,,192.168.0.201,1003,192.168.0.201,1005").split(",")
_ODD = st.sampled_from(["18446744073709551617", "99999999999999999999999", "²", "٣", "１", "-1", "1e5", " 7 ",
                        "99:99:99", "00:00:²", "999999999:00:00", "", "x",
                        "9999/12/31 23:59:59", "0001/01/01 00:00:00"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.integers(0, len(_GOOD) - 1), _ODD, min_size=1, max_size=5))
def test_odd_numbers_in_any_field_are_a_skipped_line_never_a_crash(changes):
    """A unit (or a line noise) writing an absurd number (2**64 + 1, a superscript digit) into a time or id
    field: the line is skipped with SmdrError, and a good record after it on the stream still counts
    (an OverflowError / ValueError used to end the SMDR connection and lose the records behind it)."""
    fields = list(_GOOD)
    for index, value in changes.items():
        fields[index] = value
    good = ",".join(_GOOD).replace("1000000,0", "1000001,0").replace(",1003,", ",2003,")
    events, bad = pipeline([stream([",".join(fields), good])])
    assert any(e.pbx_call_id.startswith("192.168.0.201-2003-") for e in events)
    for event in events:
        assert event.wait_seconds is None or event.wait_seconds <= 7 * 86400
        assert event.talk_seconds is None or event.talk_seconds <= 7 * 86400


def test_a_sip_trunk_caller_is_stored_as_dialled_not_as_a_russian_guess():
    """The reference's SIP caller ``0518012216@193.43.148.35`` (a Polish number as the trunk gave it):
    ctid's one normalisation keeps ``0518012216`` whatever the default region, with or without the host."""
    from ctid.phone import normalize

    record = parse_record(IP500[4])
    (sip,) = [e for e in final(pipeline([stream([IP500[4]])])[0]).values()]
    for region in ("RU", "PL", "US"):
        assert normalize(record.caller, region) == normalize(sip.remote_number, region) == "0518012216"
