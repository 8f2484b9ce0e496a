"""The generic connector: signature checks, parsing, bad input, simulation traffic."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ctid.builtins.generic import SCENARIOS, GenericConfig, GenericConnector, sign
from ctid.connector import SimulationContext, WebhookRequest
from ctid.errors import AuthError, CapabilityError, RequestError
from ctid.model import Capability, Direction, EventKind, Outcome
from ctid.services import Services

SECRET = "s3cret-value"
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


class _Directory:
    def agents(self):
        return []

    def get(self, agent_id):
        return None

    def agent_for_login(self, connector, login):
        return None

    def login_for_agent(self, connector, agent_id):
        return None

    def agent_for_crm_user(self, crm_user):
        return None


def connector(**extra) -> GenericConnector:
    cfg = GenericConfig(plugin="generic", secret=SECRET, **extra)
    return GenericConnector("office", cfg, Services(directory=_Directory()))


def request(body: bytes, signature: str | None = "auto", **headers) -> WebhookRequest:
    hdrs = {"content-type": "application/json", **headers}
    if signature == "auto":
        hdrs["x-ctid-signature"] = sign(SECRET, body)
    elif signature is not None:
        hdrs["x-ctid-signature"] = signature
    return WebhookRequest("POST", "", hdrs, {}, body)


async def test_parses_a_signed_event():
    body = json.dumps({"event": "ring", "call_id": "c1", "timestamp": "2026-11-25T10:00:00Z",
                       "direction": "inbound", "from": "89161234567", "to": "+74951112233",
                       "agent": "101", "group": "sales"}).encode()
    result = await connector().handle_webhook(request(body))
    [event] = result.events
    assert event.kind is EventKind.RING
    assert event.pbx_call_id == "c1"
    assert event.at == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert event.direction is Direction.INBOUND
    assert (event.remote_number, event.line_number) == ("89161234567", "+74951112233")
    assert event.agent_login == "101" and event.group == "sales"
    assert result.status == 200 and result.body == {"accepted": 1}


async def test_outbound_swaps_remote_and_line_and_keys_are_stable():
    item = {"event": "ring", "call_id": "c2", "direction": "outbound", "from": "+74951112233", "to": "+79160000000",
            "timestamp": 1764064800}
    body = json.dumps({"events": [item, {**item, "event": "end", "outcome": "no_answer"}]}).encode()
    first = await connector().handle_webhook(request(body))
    again = await connector().handle_webhook(request(body))
    assert [e.key for e in first.events] == [e.key for e in again.events]
    assert len({e.key for e in first.events}) == 2
    assert first.events[0].remote_number == "+79160000000"
    assert first.events[1].outcome is Outcome.NO_ANSWER


@pytest.mark.parametrize(
    ("signature", "error_id"),
    [(None, "signature_missing"), ("sha256=00", "bad_signature"), (sign("other-secret", b"{}"), "bad_signature")],
)
async def test_bad_signatures_are_refused(signature, error_id):
    body = json.dumps({"event": "ring", "call_id": "c1", "id": "e1"}).encode()
    with pytest.raises(AuthError) as info:
        await connector().handle_webhook(request(body, signature=signature))
    assert info.value.error_id == error_id and info.value.status == 401


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "no events"),
        (b'"text"', "must be an object"),
        (b'{"event": "explode", "call_id": "c1"}', "events[0].event"),
        (b'{"event": "ring"}', "events[0].call_id"),
        (b'{"event": "ring", "call_id": "c1", "colour": "red"}', "events[0].colour"),
        (b'{"event": "ring", "call_id": "c1", "timestamp": "2026-11-25T10:00:00"}', "time zone"),
        (b'{"event": "ring", "call_id": "c1", "timestamp": "yesterday"}', "events[0].timestamp"),
        (b'{"event": "transfer", "call_id": "c1"}', "target"),
        (b'{"event": "end", "call_id": "c1", "outcome": "exploded"}', "events[0].outcome"),
        (b'[{"event": "ring", "call_id": "c1", "id": "e1"}, {"event": "hold", "call_id": "c1"}]',
         "events[1]: needs an `id` or a `timestamp` (idempotency)"),
    ],
)
async def test_bad_bodies_are_400_with_a_reason(body, fragment):
    with pytest.raises(RequestError) as info:
        await connector().handle_webhook(request(body))
    assert info.value.status == 400
    assert fragment in str(info.value)


async def test_repeated_events_without_id_are_told_apart_by_timestamp():
    """Two holds of one call (the agent held twice) are two events, a resent hold is one."""
    hold = {"event": "hold", "call_id": "c1", "agent": "101"}
    first = {**hold, "timestamp": "2026-11-25T10:00:10Z"}
    second = {**hold, "timestamp": "2026-11-25T10:00:40Z"}
    result = await connector().handle_webhook(request(json.dumps([first, second]).encode()))
    assert len({e.key for e in result.events}) == 2
    resent = await connector().handle_webhook(request(json.dumps(first).encode()))
    assert resent.events[0].key == result.events[0].key
    with pytest.raises(RequestError) as info:  # without either, a repeat and a retry look the same
        await connector().handle_webhook(request(json.dumps(hold).encode()))
    assert info.value.error_id == "bad_event" and info.value.status == 400
    assert "events[0]: needs an `id` or a `timestamp`" in str(info.value)


@pytest.mark.parametrize(
    ("timestamp", "fragment"),
    [
        (True, "not true/false"),
        (False, "not true/false"),
        (1, "before 2000"),
        ("1", "before 2000"),
        ("1999-12-31T23:59:59Z", "before 2000"),
        ("2026-11-27T10:00:01Z", "more than a day ahead"),
        (1764151200001, "milliseconds"),
        (1e300, "more than a day ahead"),
        ("nan", "events[0].timestamp"),
    ],
)
async def test_implausible_timestamps_are_refused(timestamp, fragment):
    body = json.dumps({"event": "ring", "call_id": "c1", "timestamp": timestamp}).encode()
    req = request(body)
    req.received_at = NOW
    with pytest.raises(RequestError) as info:
        await connector().handle_webhook(req)
    assert info.value.error_id == "bad_event" and info.value.status == 400
    assert "events[0].timestamp" in str(info.value) and fragment in str(info.value)


@pytest.mark.parametrize(
    "timestamp", ["2000-01-01T00:00:00Z", "2026-11-26T10:00:00Z", 946684800, 1764064800.25, "1764064800"]
)
async def test_plausible_timestamps_are_accepted(timestamp):
    body = json.dumps({"event": "ring", "call_id": "c1", "timestamp": timestamp}).encode()
    req = request(body)
    req.received_at = NOW
    [event] = (await connector().handle_webhook(req)).events
    assert datetime(2000, 1, 1, tzinfo=UTC) <= event.at <= datetime(2026, 11, 26, 10, tzinfo=UTC)


async def test_too_many_events():
    items = [{"event": "ring", "call_id": f"c{i}", "id": f"e{i}"} for i in range(3)]
    with pytest.raises(RequestError) as info:
        await connector(max_events=2).handle_webhook(request(json.dumps(items).encode()))
    assert info.value.error_id == "too_many_events"


def test_capabilities_follow_command_url():
    assert connector().capabilities == frozenset({Capability.RECORDINGS})  # recording_url is fetched
    assert Capability.HOLD in connector(command_url="http://127.0.0.1:9/x").capabilities


async def test_commands_without_command_url_are_capability_errors():
    with pytest.raises(CapabilityError):
        await connector().dial("101", "+79160000000")


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_every_scenario_produces_signed_parsable_traffic(scenario):
    conn = connector()
    ctx = SimulationContext(caller="+79161234567", agent="101", others=["102", "103"], line="+74951112233",
                            group="sales", start=datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    requests = conn.simulate(scenario, ctx)
    assert requests, scenario
    kinds = []
    for req in requests:
        assert req.path == "/hooks/office"
        result = await conn.handle_webhook(request(req.body, signature=req.headers["X-Ctid-Signature"]))
        kinds += [e.kind for e in result.events]
    assert kinds[0] is EventKind.RING
    assert kinds[-1] is EventKind.END


def test_unknown_scenario():
    with pytest.raises(RequestError, match="unknown scenario"):
        connector().simulate("party", SimulationContext(caller="1", agent="101"))
