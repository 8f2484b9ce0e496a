"""Per-call facts: checked by ``clean_facts``, merged into ``Call.facts`` in event order, never
changing a call's state; carried by the generic webhook and stored with the call."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctid.callfold import fold_call
from ctid.errors import RequestError
from ctid.facts import FACT_FIELDS, clean_facts
from ctid.model import CallEvent, CallState, EventKind, Outcome, call_from_json

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def ev(kind, key, seconds, **kw):
    return CallEvent(connector="office", pbx_call_id="c1", kind=kind, key=key,
                     at=T0 + timedelta(seconds=seconds), received_at=T0 + timedelta(seconds=seconds), **kw)


def fold(events):
    return fold_call("id-1", events, resolve=lambda connector, login: login)


def test_clean_facts_types_and_unknown_keys():
    assert clean_facts({"campaign": "  Spring ", "cost": 3, "tags": ["a", " ", "b"], "first_call": True,
                        "x_lead": {"id": 7}, "utm_term": None}) == {
        "campaign": "Spring", "cost": 3.0, "tags": ["a", "b"], "first_call": True, "x_lead": {"id": 7}}
    for bad in ({"cost": "3"}, {"cost": float("nan")}, {"cost": True}, {"rating": []}, {"tags": "a"},
                {"first_call": 1}, {"campaing": "typo"}, {"x_deep": [[[[[[1]]]]]]}):
        with pytest.raises(RequestError) as info:
            clean_facts(bad)
        assert info.value.error_id == "bad_fact"
        assert f"facts.{next(iter(bad))}" in str(info.value)


@given(st.dictionaries(st.text(max_size=70), st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=600),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8), max_size=6))
def test_clean_facts_accepts_or_names_the_key(facts):
    """Any JSON-shaped input is either cleaned into JSON that survives a round trip or refused
    with ``bad_fact``: nothing else escapes."""
    try:
        clean = clean_facts(facts)
    except RequestError as exc:
        assert exc.error_id == "bad_fact"
        return
    assert json.loads(json.dumps(clean, allow_nan=False)) == clean
    assert all(key in FACT_FIELDS or key.startswith("x_") for key in clean)


def test_facts_merge_in_event_order_and_never_change_state():
    ring = ev(EventKind.RING, "r", 0, remote_number="+79161234567", agent_login="101",
              facts={"campaign": "Spring", "utm_source": "yandex"})
    answer = ev(EventKind.ANSWER, "a", 5, agent_login="101")
    end = ev(EventKind.END, "e", 65)
    cost = ev(EventKind.FACTS, "cost", 3600, facts={"cost": 2.5, "currency": "RUB", "campaign": "Spring-2"})
    with_cost = fold([cost, end, ring, answer])
    without = fold([ring, answer, end])
    assert with_cost.facts == {"campaign": "Spring-2", "utm_source": "yandex", "cost": 2.5, "currency": "RUB"}
    for field in ("state", "outcome", "started_at", "answered_at", "ended_at", "talk_seconds", "wait_seconds"):
        assert getattr(with_cost, field) == getattr(without, field)
    assert with_cost.state is CallState.ENDED and with_cost.outcome is Outcome.ANSWERED
    assert call_from_json(with_cost.to_json()).facts == with_cost.facts


def test_facts_alone_make_no_call_and_do_not_revive_a_ringing_one():
    assert fold([ev(EventKind.FACTS, "f", 0, facts={"cost": 1.0})]) is None
    ring = ev(EventKind.RING, "r", 0, agent_login="101")
    late = ev(EventKind.FACTS, "f", 900, facts={"rating": 5.0})
    call = fold([ring, late])
    assert call.state is CallState.RINGING and call.facts == {"rating": 5.0}


async def test_generic_webhook_carries_facts_to_the_stored_call(tmp_path):
    from ctid.builtins.generic import sign
    from ctid.testing.daemon import running_daemon

    secret = "facts-secret-1"
    config = {
        "database": {"url": f"sqlite:///{tmp_path}/ctid.db"},
        "auth": {"api_keys": [{"name": "t", "key": "k" * 32, "role": "admin"}]},
        "agents": {"alice": {"name": "Alice", "extension": "101"}},
        "connectors": {"office": {"plugin": "generic", "secret": secret}},
    }

    async def post(events):
        body = json.dumps(events).encode()
        return await app.client.post("/hooks/office", content=body, headers={
            "content-type": "application/json", "x-ctid-signature": sign(secret, body)})

    async with running_daemon(config, base_dir=tmp_path) as app:
        ok = await post([
            {"event": "ring", "call_id": "c9", "id": "1", "from": "+79161234567", "agent": "101",
             "facts": {"campaign": "Spring", "utm_source": "yandex"}},
            {"event": "answer", "call_id": "c9", "id": "2", "agent": "101"},
            {"event": "end", "call_id": "c9", "id": "3"},
            {"event": "facts", "call_id": "c9", "id": "4", "facts": {"cost": 1.8, "currency": "RUB"}},
        ])
        assert ok.status_code == 200, ok.text
        bad = await post([{"event": "facts", "call_id": "c9", "id": "5", "facts": {"cost": "free"}}])
        assert bad.status_code == 400 and bad.json()["error"] == "bad_event"
        assert "events[0].facts.cost" in bad.json()["message"]
        empty = await post([{"event": "facts", "call_id": "c9", "id": "6"}])
        assert empty.status_code == 400
        calls = (await app.client.get("/api/calls", headers=app.api_key_headers)).json()
        (call,) = calls["items"]
        assert call["state"] == "ended" and call["outcome"] == "answered"
        assert call["facts"] == {"campaign": "Spring", "utm_source": "yandex", "cost": 1.8, "currency": "RUB"}
        stored = await app.daemon.store.get_call(call["id"])
        assert stored["facts"] == call["facts"]
