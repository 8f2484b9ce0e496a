"""Hypothesis strategies for ctid's inputs: JSON values (with the nasty parts: lone surrogates,
deep nesting, huge numbers), generic-webhook events, hub handshakes and hub records."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

RS = "\x1e"

#: Text that is not Unicode: lone surrogates (json.dumps escapes them as \\udXXX).
surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
nasty_text = st.one_of(
    st.text(max_size=30),
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=5), surrogates, st.text(max_size=5)),
    st.just("x" * 70_000),
)
huge_numbers = st.one_of(st.integers(min_value=10**120, max_value=10**400), st.just(float("inf")),
                         st.just(float("nan")))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    nasty_text, huge_numbers)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(nasty_text, inner, max_size=4)),
                        max_leaves=max_leaves)


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def dumps(value: Any) -> str:
    """JSON text as a careless client writes it (lone surrogates escaped, NaN and Infinity as such)."""
    return json.dumps(value, ensure_ascii=True, allow_nan=True, default=str)


# --- the generic webhook (docs/generic-webhook.md) -------------------------------------------------

EVENT_KINDS = ("ring", "answer", "hold", "unhold", "transfer", "leg_end", "end")
timestamps = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.just("2026-11-25T10:00:00Z"),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.booleans(),
    nasty_text,
)
generic_event = st.fixed_dictionaries(
    {"event": st.one_of(st.sampled_from(EVENT_KINDS), nasty_text),
     "call_id": st.one_of(st.text(min_size=1, max_size=20), nasty_text, st.integers())},
    optional={
        "id": st.one_of(st.text(max_size=20), nasty_text),
        "timestamp": timestamps,
        "direction": st.one_of(st.sampled_from(["inbound", "outbound", "internal"]), nasty_text),
        "from": st.one_of(st.just("+79161234567"), st.text(max_size=70), nasty_text),
        "to": st.one_of(st.just("+74951234567"), nasty_text),
        "agent": st.one_of(st.sampled_from(["101", "102", "999"]), nasty_text),
        "group": nasty_text,
        "target": st.one_of(st.sampled_from(["102", "103"]), nasty_text),
        "outcome": st.one_of(st.sampled_from(["answered", "missed", "busy", "no_answer", "failed"]), nasty_text),
        "recording_url": st.one_of(st.just("https://pbx.example/rec/1.mp3"), nasty_text),
        "extra": json_values(4),
    },
)
#: Events the connector takes (so the fuzz also reaches reduce, publish and commit), some with a
#: field made nasty.
valid_generic_event = st.fixed_dictionaries(
    {"event": st.sampled_from([k for k in EVENT_KINDS if k != "transfer"]),
     "call_id": st.text(alphabet="abcdef0123456789.-", min_size=1, max_size=12),
     "id": st.uuids().map(str),
     "timestamp": st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2026, 1, 1),
                               timezones=st.just(UTC)).map(lambda d: d.isoformat())},
    optional={"from": st.sampled_from(["+79161234567", "84951234567", "101", ""]),
              "to": st.just("+74951234567"), "agent": st.sampled_from(["101", "102", "103", "999"]),
              "direction": st.sampled_from(["inbound", "outbound", "internal"]),
              "group": st.text(max_size=20), "outcome": st.sampled_from(["answered", "missed", "busy"])},
)
spoiled_event = st.tuples(valid_generic_event, st.sampled_from(["from", "agent", "group", "call_id", "id"]),
                          st.one_of(nasty_text, huge_numbers, json_values(3))).map(
    lambda t: {**t[0], t[1]: t[2]})
generic_body = st.one_of(
    st.lists(valid_generic_event, min_size=1, max_size=5).map(dumps),
    st.lists(st.one_of(valid_generic_event, spoiled_event), min_size=1, max_size=4).map(dumps),
    generic_event.map(dumps),
    st.lists(generic_event, max_size=5).map(dumps),
    st.lists(generic_event, max_size=3).map(lambda events: dumps({"events": events})),
    json_values().map(dumps),
    st.integers(min_value=30, max_value=3000).map(deep),
    st.text(max_size=200),
).map(lambda text: text.encode("utf-8", "surrogatepass"))
raw_bodies = st.one_of(st.binary(max_size=300), generic_body,
                       generic_event.map(lambda e: json.dumps(e, ensure_ascii=False, default=str)
                                         .encode("utf-16", "surrogatepass")))


# --- hub (docs/hub-protocol.md) --------------------------------------------------------------------

handshakes = st.one_of(
    st.builds(lambda v: dumps({"protocol": "json", "version": v}) + RS, st.integers(-1, 4)),
    st.builds(lambda p: dumps({"protocol": p, "version": 1}) + RS, nasty_text),
    json_values().map(lambda v: dumps(v) + RS),
    st.integers(min_value=30, max_value=5000).map(lambda d: deep(d) + RS),
    st.just('{"protocol":"json","version":1,"x":"' + "y" * 20_000 + '"}' + RS),
    st.text(max_size=100),
)
METHODS = ["Dial", "Hold", "Unhold", "Hangup", "Transfer", "SetStatus", "Snapshot", "Nope"]
invocations = st.fixed_dictionaries(
    {"type": st.one_of(st.integers(-2, 11), st.just(1)),
     "target": st.one_of(st.sampled_from(METHODS), nasty_text, st.integers())},
    optional={"invocationId": st.one_of(st.text(max_size=8), nasty_text, st.integers()),
              "arguments": st.one_of(st.lists(json_values(6), max_size=4), json_values(3)),
              "streamIds": st.lists(st.text(max_size=4), max_size=2),
              "result": json_values(3), "error": nasty_text},
)
records = st.one_of(
    invocations.map(lambda m: dumps(m) + RS),
    json_values().map(lambda v: dumps(v) + RS),
    st.integers(min_value=30, max_value=5000).map(lambda d: deep(d) + RS),
    st.text(max_size=60),
    st.binary(max_size=60),
)
