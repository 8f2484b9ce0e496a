"""ctid.limits: JSON within the limits decodes exactly as json.loads; anything beyond one limit is a
LimitError with that limit's stable error id (property-based)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctid import limits
from ctid.errors import RequestError

# no lone surrogates (st.characters() with any argument may draw them: st.text() alone leaves them
# out) and no NUL (PostgreSQL cannot store it): both are refused, tested below
texts = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20)
values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30),
                                st.floats(allow_nan=False, allow_infinity=False), texts),
                      lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
                      max_leaves=20)


def _depth(value) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@given(values, st.booleans())
def test_values_within_the_limits_decode_as_json_loads(value, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert limits.loads(text.encode()) == json.loads(text)


@given(values, st.text(max_size=5), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF))
def test_a_lone_surrogate_anywhere_is_bad_encoding(value, prefix, surrogate):
    text = json.dumps({"v": value, prefix + surrogate: 1})  # escaped as \\udXXX, as a client would
    with pytest.raises(limits.LimitError) as info:
        limits.loads(text.encode())
    assert info.value.error_id == "bad_encoding" and info.value.status == 400


@given(st.integers(min_value=limits.MAX_DEPTH + 1, max_value=5000))
def test_deeper_than_the_limit_is_too_deep(depth):
    with pytest.raises(limits.LimitError) as info:
        limits.loads(b"[" * depth + b"]" * depth)
    assert info.value.error_id == "too_deep"


def test_exactly_the_limits_pass():
    depth = limits.MAX_DEPTH
    assert _depth(limits.loads(b"[" * depth + b"]" * depth)) == depth
    assert limits.loads(b"1" * limits.MAX_NUMBER_CHARS) == int("1" * limits.MAX_NUMBER_CHARS)
    assert len(limits.loads(json.dumps("x" * limits.MAX_STRING_CHARS).encode())) == limits.MAX_STRING_CHARS


@pytest.mark.parametrize(("body", "error"), [
    (b"1" * (limits.MAX_NUMBER_CHARS + 1), "number_too_long"),
    (b"-" + b"1" * limits.MAX_NUMBER_CHARS, "number_too_long"),
    (b"1e400", "number_too_long"),
    (b"[NaN]", "bad_json"),
    (b"[Infinity]", "bad_json"),
    (json.dumps("x" * (limits.MAX_STRING_CHARS + 1)).encode(), "string_too_long"),
    (json.dumps({"k" * (limits.MAX_STRING_CHARS + 1): 1}).encode(), "string_too_long"),
    ('{"a": 1}'.encode("utf-16"), "bad_encoding"),
    ('{"a": 1}'.encode("utf-32"), "bad_encoding"),
    ('{"a": 1}'.encode("utf-8-sig"), "bad_encoding"),
    (b'{"a": "\xed\xb0\x80"}', "bad_encoding"),  # a surrogate encoded in UTF-8 bytes: not UTF-8
    (b'{"a": ["1\\u00000"]}', "bad_encoding"),  # NUL: PostgreSQL text cannot hold it
    (b'{"\\u0000": 1}', "bad_encoding"),
    (b"{", "bad_json"),
])
def test_each_limit_has_its_error_id(body, error):
    with pytest.raises(RequestError) as info:
        limits.loads(body)
    assert info.value.error_id == error and info.value.status == 400


def test_screen_json_leaves_what_is_not_json_to_the_connector():
    assert limits.screen_json(b"a=1&b=2", "application/x-www-form-urlencoded") is None
    assert limits.screen_json(b"{not json", "application/json") is None
    assert limits.screen_json("{}".encode("utf-16"), "application/json") is None  # the connector refuses it
    assert limits.screen_json(b'{"a": 1}', "") == {"a": 1}
    with pytest.raises(limits.LimitError):
        limits.screen_json(b'{"a": "\\udc00"}', "text/plain")


# -- paths and query strings (check_target, run before routing for every request) ----------------------
query_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)


@given(st.lists(st.tuples(query_text, query_text), max_size=5), st.lists(query_text, max_size=4))
def test_a_clean_path_and_query_pass_and_read_back_as_sent(pairs, segments):
    from urllib.parse import quote, urlencode

    query = urlencode(pairs).encode()
    path = ("/" + "/".join(quote(segment, safe="") for segment in segments)).encode()
    limits.check_target(path, query)
    assert limits.form_pairs(query) == [(name, value) for name, value in pairs]


@given(st.lists(st.tuples(query_text, query_text), min_size=1, max_size=5), st.data())
def test_a_nul_anywhere_in_the_query_is_bad_encoding(pairs, data):
    from urllib.parse import urlencode

    index = data.draw(st.integers(0, len(pairs) - 1))
    name, value = pairs[index]
    if data.draw(st.booleans()):
        name += "\x00"
    else:
        value = "\x00" + value
    pairs[index] = (name, value)
    with pytest.raises(limits.LimitError) as raised:
        limits.check_target(b"/api/calls", urlencode(pairs).encode())
    assert raised.value.error_id == "bad_encoding"


@given(st.binary(max_size=8))
def test_path_bytes_pass_only_as_utf8_without_nul(raw):
    from urllib.parse import quote_from_bytes

    path = b"/api/calls/" + quote_from_bytes(raw).encode()
    try:
        text = raw.decode("utf-8")
        ok = "\x00" not in text
    except UnicodeDecodeError:
        ok = False
    if ok:
        limits.check_target(path, b"")
    else:
        with pytest.raises(limits.LimitError) as raised:
            limits.check_target(path, b"")
        assert raised.value.error_id == "bad_encoding"
