"""Whatever arrives at the webhook, the connector answers 200/400/401, never an exception (a 500)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctid.connector import WebhookRequest
from ctid.services import Services
from ctid_megafon.connector import MegafonConnector
from megafon_kit import FakeDirectory, make_config, request

NAMES = ["cmd", "type", "user", "phone", "callid", "direction", "status", "duration", "wait", "start", "link",
         "second_callid", "diversion", "rating", "groupRealName", "x"]
VALUES = st.one_of(
    st.sampled_from(["event", "history", "contact", "rating", "INCOMING", "ACCEPTED", "CANCELLED", "COMPLETED",
                     "TRANSFERRED", "OUTGOING", "in", "out", "internal", "Success", "missed", "pbx", "g_1@t",
                     "20261125T100000Z", "2026-11-25T10:00:00Z", "-1", "1e9", "nan", "60", "", "79101234567"]),
    st.text(max_size=30),
)


def _connector() -> MegafonConnector:
    return MegafonConnector("mf", make_config(), Services(directory=FakeDirectory()))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=12), as_json=st.booleans())
async def test_any_fields_with_the_right_token_give_200_or_400(fields, as_json):
    connector = _connector()
    result = await connector.handle_webhook(request(fields, as_json=as_json))
    assert result.status in (200, 400), result.body
    if result.status == 400:
        assert result.body["error"] == "Invalid parameters" and result.events == []
    await connector.aclose()


@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=300), content_type=st.sampled_from(
    ["application/json", "application/x-www-form-urlencoded", "text/plain", "", "multipart/form-data"]))
async def test_any_body_gives_a_documented_answer(body, content_type):
    connector = _connector()
    result = await connector.handle_webhook(WebhookRequest("POST", "", {"content-type": content_type}, {}, body))
    assert result.status in (400, 401) and result.events == []
    await connector.aclose()
