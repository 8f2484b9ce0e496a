"""Property tests: whatever arrives at the notification URL gives a documented answer (200/400/401), never an
exception or a 5xx, and nothing from garbage is stored, in the connector and through a running ctid."""

from __future__ import annotations

import json
from datetime import datetime

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comagic_kit import BODY_SECRET, PATH_SECRET, FakeDirectory, make_config, request
from ctid.connector import WebhookRequest
from ctid.services import Services
from ctid.testing.daemon import ServeProcess
from ctid_comagic.connector import ComagicConnector
from ctid_comagic.events import REQUIRED, TYPES, InvalidNotification, parse
from ctid_comagic.templates import KINDS, VARIABLES, render, template

ADMIN_KEY = "fuzz-admin-key-0123456789"
NAMES = sorted(TYPES) + ["ctid_event", "ctid_secret", "x", "Call_Session_Id", ""]
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False),
    st.sampled_from([*KINDS, BODY_SECRET, "2026-12-01 12:00:00.250", "2026-02-30 25:00:00", "79101234567",
                     "in", "out", "https://app.comagic.ru/system/media/talk/1/ab/", "{{employee_id}}", ""]),
    st.text(max_size=30), st.lists(st.integers(min_value=-5, max_value=2**64), max_size=4),
    st.lists(st.text(max_size=5), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _connector() -> ComagicConnector:
    return ComagicConnector("cm", make_config(), Services(directory=FakeDirectory()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=14), kind=st.sampled_from(KINDS))
def test_the_parser_accepts_or_names_the_field(fields, kind):
    fields = {"ctid_event": kind, "ctid_secret": BODY_SECRET, **fields}
    try:
        note = parse("POST", json.dumps(fields).encode(), {})
    except InvalidNotification as exc:
        assert str(exc).split(":", 1)[0] in {*NAMES, "body"}, exc
        return
    assert note.kind in KINDS and isinstance(note.values["call_session_id"], int)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=14), kind=st.sampled_from(KINDS),
       method=st.sampled_from(["POST", "GET"]))
async def test_any_fields_with_the_right_secrets_give_200_or_400(fields, kind, method):
    connector = _connector()
    fields = {"ctid_event": kind, "ctid_secret": BODY_SECRET, **fields}
    if method == "GET":
        query = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        result = await connector.handle_webhook(request(method="GET", query=query))
    else:
        result = await connector.handle_webhook(request(body=json.dumps(fields).encode()))
    assert result.status in (200, 400, 401), result.body
    if result.status != 200:
        assert result.events == []
    else:
        assert len(result.events) == 1
    await connector.aclose()


@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=300), subpath=st.sampled_from([PATH_SECRET, "", "x", PATH_SECRET + "/x"]),
       content_type=st.sampled_from(["application/json", "text/plain", ""]))
async def test_any_body_gives_a_documented_answer(body, subpath, content_type):
    connector = _connector()
    result = await connector.handle_webhook(WebhookRequest("POST", subpath, {"content-type": content_type}, {}, body))
    assert result.status in (400, 401) and result.events == []
    await connector.aclose()


@pytest.fixture(scope="module")
def ctid(tmp_path_factory):
    """One real ``ctid serve`` process for every example (its API is unreachable: nothing but webhooks)."""
    import yaml

    tmp = tmp_path_factory.mktemp("fuzz")
    config = {
        "database": {"url": f"sqlite:///{tmp / 'ctid.db'}"}, "data_dir": str(tmp / "var"),
        "auth": {"api_keys": [{"name": "admin", "key": ADMIN_KEY, "role": "admin"}]},
        "agents": {"a1": {"name": "Anna", "pbx": {"cm": "101"}}},
        "connectors": {"cm": {"plugin": "comagic", "api_key": "k" * 20, "webhook_secret": PATH_SECRET,
                              "body_secret": BODY_SECRET, "call_api_url": "http://127.0.0.1:9/v4.0",
                              "data_api_url": "http://127.0.0.1:9/v2.0", "reconcile_interval": None}},
    }
    path = tmp / "ctid.yaml"
    path.write_text(yaml.safe_dump(config))
    with ServeProcess(path) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def _stored(client) -> int:
    return len(client.get("/api/calls", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()["items"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(st.binary(max_size=200), st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=10).map(
    lambda d: json.dumps({"ctid_secret": BODY_SECRET, **d}).encode())),
    method=st.sampled_from(["POST", "GET", "PUT"]), secret=st.sampled_from([PATH_SECRET, "guess-0123456789abcdef"]))
def test_the_webhook_endpoint_never_fails_and_stores_nothing_from_garbage(ctid, body, method, secret):
    before = _stored(ctid)
    response = ctid.request(method, f"/hooks/cm/{secret}", content=body, headers={"content-type": "application/json"})
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert response.status_code in (400, 401, 405), response.text
        assert isinstance(response.json()["error"], str)
        assert _stored(ctid) == before


_IDS = st.integers(min_value=0, max_value=2**62)
_VALID = {
    "id": _IDS, "int": st.integers(min_value=0, max_value=10**6), "ids": st.lists(_IDS, max_size=4),
    "texts": st.lists(st.text(max_size=20), max_size=3), "bool": st.booleans(),
    "text": st.text(min_size=1, max_size=40).filter(lambda t: t.strip() == t and "{{" not in t),
    "phone": st.from_regex(r"\A7[0-9]{10}\Z"), "direction": st.sampled_from(["in", "out"]),
    "time": st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2100, 12, 31)).map(
        lambda d: d.strftime("%Y-%m-%d %H:%M:%S.") + f"{d.microsecond // 1000:03d}"),
    "url": st.just("https://app.comagic.ru/system/media/talk/1/" + "a" * 32 + "/"),
}


@settings(max_examples=200, deadline=None)
@given(data=st.data(), kind=st.sampled_from(KINDS))
def test_what_the_platform_renders_from_a_shipped_template_parses_back(data, kind):
    values = {name: data.draw(st.one_of(st.none(), _VALID[TYPES[name]]) if name not in REQUIRED[kind]
                              else _VALID[TYPES[name]], label=name) for name in VARIABLES[kind]}
    note = parse("POST", render(template(kind, BODY_SECRET), values).encode(), {})
    assert (note.kind, note.secret) == (kind, BODY_SECRET)
    for name, value in values.items():
        got = note.values.get(name)
        if isinstance(value, str) and TYPES[name] == "text":
            value = value.strip()[:500] or None
        assert got == value, name

