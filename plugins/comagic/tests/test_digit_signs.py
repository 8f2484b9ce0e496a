"""Ids and numbers with characters ``str.isdigit`` calls digits but ``int()`` refuses ("³", "²"): a 400
naming the field, never an exception out of ``handle_webhook`` (the daemon kept them as dead letters)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_webhook import body

from comagic_kit import request
from ctid_comagic.client import _int_or_none, _session


def with_value(kind: str, name: str, value) -> bytes:
    data = json.loads(body(kind))
    data[name] = value
    return json.dumps(data).encode()


@pytest.mark.parametrize(("kind", "field", "value"), [
    ("waiting", "call_session_id", "³"),
    ("waiting", "call_session_id", "55²"),
    ("waiting", "employee_id", "¹⁰¹"),
    ("waiting", "contact_phone_number", "7910123456³"),
    ("talk_started", "leg_ids", ["1", "³"]),
    ("waiting", "call_session_id", "٥٥٥"),  # Arabic-Indic digits: int() reads them, CoMagic never sends them
])
async def test_digit_signs_are_400_naming_the_field(connector, kind, field, value):
    result = await connector.handle_webhook(request(body=with_value(kind, field, value)))
    assert (result.status, result.events) == (400, []), result.body
    assert result.body["message"].startswith(field), result.body


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(categories=["Nd", "No"]), min_size=1, max_size=8))
def test_the_api_helpers_read_only_ascii_digits_as_numbers(text):
    number = _int_or_none(text)
    assert number is None or (text.isascii() and number == int(text))
    session = _session(text)
    assert session == text or (text.isascii() and session == int(text))
