"""ctid.testing.sweep builds the requests it says: every field of JSON (nested, lists, containers),
form and query string replaced by each swept value or deleted, the rest of the request untouched,
requests of one shape swept once, and a bound that keeps every field's first values."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

from ctid.connector import SimulatedRequest
from ctid.testing.sweep import SWEEP_VALUES, _build, _cases

JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


def _json_request(value) -> SimulatedRequest:
    return SimulatedRequest("POST", "/hooks/pbx/s3cret", JSON, json.dumps(value).encode())


def test_every_json_path_gets_every_value_and_a_deletion():
    request = _json_request({"event": "ring", "call": {"id": "7", "legs": ["1", "2"]}})
    cases = _cases([request])
    paths = {case.path for case in cases}
    assert paths == {("event",), ("call",), ("call", "id"), ("call", "legs"), ("call", "legs", 0), ("call", "legs", 1)}
    assert len(cases) == len(paths) * (len(SWEEP_VALUES) + 1)
    bodies = {(case.path, case.name): _build(case) for case in cases}
    path, body = bodies[(("call", "id"), "superscript")]
    assert path == "/hooks/pbx/s3cret" and json.loads(body) == {"event": "ring", "call": {"id": "³", "legs": ["1", "2"]}}
    assert json.loads(bodies[(("call", "legs", 1), "deleted")][1])["call"]["legs"] == ["1"]
    assert b'"id": 1e309' in bodies[(("call", "id"), "1e309")][1]
    assert b'"event": ' + b"[" * 40 + b"]" * 40 in bodies[(("event",), "deep-40")][1]
    assert b'"\\udc00"' in bodies[(("event",), "surrogate")][1]  # escaped, as a client writes it
    assert json.loads(request.body)["call"]["id"] == "7"  # the simulated request is left as it was


def test_form_and_query_fields_get_text_values_and_bytes_that_are_not_utf8():
    request = SimulatedRequest("POST", "/hooks/mf?token=abc", FORM, b"cmd=event&callid=L1")
    cases = _cases([request])
    assert {(case.where, case.path) for case in cases} == {("query", (0,)), ("form", (0,)), ("form", (1,))}
    assert all(isinstance(case.value, str | bytes | type(None)) for case in cases)
    built = {(case.where, case.path, case.name): _build(case) for case in cases}
    path, body = built[("form", (1,), "bad-utf8")]
    assert path == "/hooks/mf?token=abc" and body == b"cmd=event&callid=%ED%B0%80%FF"
    path, body = built[("query", (0,), "superscript")]
    assert parse_qsl(urlsplit(path).query) == [("token", "³")] and body == b"cmd=event&callid=L1"
    assert built[("query", (0,), "deleted")] == ("/hooks/mf", b"cmd=event&callid=L1")
    assert built[("form", (0,), "deleted")][1] == b"callid=L1"


def test_requests_of_one_shape_are_swept_once_other_events_each():
    ring = [_json_request({"event": "ring", "call_id": str(n)}) for n in range(5)]
    end = _json_request({"event": "end", "call_id": "1"})
    cases = _cases([*ring, end])
    assert {case.request.body for case in cases} == {ring[0].body, end.body}


def test_a_json_array_body_is_swept_by_index():
    cases = _cases([_json_request([{"event": "ring"}])])
    assert {case.path for case in cases} == {(0,), (0, "event")}


def test_a_bound_keeps_every_field_and_its_first_values():
    request = _json_request({f"f{n}": "x" for n in range(10)})
    cases = _cases([request], bound=75)  # 10 fields x 7.5 values
    assert len(cases) == 75
    for n in range(10):
        names = [case.name for case in cases if case.path == (f"f{n}",)]
        assert names[:7] == [*(name for name, _ in SWEEP_VALUES[:6]), "deleted"], names


async def test_a_connector_without_webhooks_is_refused_by_name():
    import types

    import pytest

    from ctid.testing.sweep import sweep_simulated_webhooks

    app = types.SimpleNamespace(daemon=types.SimpleNamespace(connectors={"cm": types.SimpleNamespace(
        accepts_webhooks=False)}))
    with pytest.raises(ValueError, match="'cm' takes no webhooks"):
        await sweep_simulated_webhooks(app, "cm")
