"""One rule for PBX failures: the id's family decides the HTTP status, for every connector."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from quart_trio import QuartTrio

from ctid.errors import PBX_STATUS, PBXError
from ctid.web.app import error_response


@pytest.mark.parametrize(("error_id", "status"), [
    ("pbx_refused", 409), ("pbx_refused:invalid_state", 409), ("pbx_throttled", 429),
    ("pbx_unreachable", 502), ("pbx_bad_answer", 502), ("pbx_unauthorized", 502), ("pbx_timeout", 502),
    (None, 502),
])
def test_the_status_follows_from_the_id(error_id, status) -> None:
    assert PBXError("no", error_id=error_id).status == status


def test_an_explicit_status_wins() -> None:
    assert PBXError("no", error_id="capability_missing", status=409).status == 409
    assert PBXError("no", error_id="pbx_refused", status=502).status == 502


@given(suffix=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=30))
def test_any_reason_suffix_keeps_the_family_status(suffix) -> None:
    assert PBXError("no", error_id=f"pbx_refused:{suffix}").status == PBX_STATUS["pbx_refused"]


async def render(exc: PBXError):
    app = QuartTrio("t")
    async with app.app_context():
        response = error_response(exc)
        return response.status_code, response.headers.get("Retry-After"), await response.get_json()


async def test_throttling_answers_429_with_retry_after() -> None:
    status, retry_after, body = await render(PBXError("points spent", error_id="pbx_throttled", retry_after=41.2))
    assert (status, retry_after, body["error"]) == (429, "42", "pbx_throttled")


async def test_a_refusal_is_409_with_its_reason_and_no_retry_after() -> None:
    status, retry_after, body = await render(PBXError("CoMagic hold.call: no [invalid_state]",
                                                      error_id="pbx_refused:invalid_state", retry_after=5))
    assert (status, retry_after) == (409, None)
    assert body == {"error": "pbx_refused:invalid_state", "message": "CoMagic hold.call: no [invalid_state]"}
