"""The hub's pure protocol pieces: record framing, handshake, message parsing, connection tokens."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctid.hub import protocol as p
from ctid.hub.tokens import ConnectionClaims, ConnectionTokens

from .conftest import FakePrincipal


def test_records_split_across_and_within_frames() -> None:
    buffer = p.RecordBuffer(1000)
    assert buffer.feed('{"type":6}\x1e{"ty') == ['{"type":6}']
    assert buffer.pending
    assert buffer.feed('pe":1,"target":"A","arguments":[]}\x1e{"type":6}\x1e') == [
        '{"type":1,"target":"A","arguments":[]}',
        '{"type":6}',
    ]
    assert not buffer.pending


def test_oversize_record_and_oversize_tail_are_protocol_errors() -> None:
    buffer = p.RecordBuffer(20)
    with pytest.raises(p.ProtocolError, match="maximum size of 20 bytes"):
        buffer.feed("x" * 21 + "\x1e")
    tail = p.RecordBuffer(20)
    tail.feed("x" * 15)
    with pytest.raises(p.ProtocolError):
        tail.feed("y" * 10)  # no separator yet, but already too long
    multibyte = p.RecordBuffer(20)
    with pytest.raises(p.ProtocolError):
        multibyte.feed("ж" * 11 + "\x1e")  # 11 characters, 22 bytes


@pytest.mark.parametrize("version", [0, 1, 2])
def test_handshake_accepts_json_versions_0_to_2(version: int) -> None:
    assert p.parse_handshake(f'{{"protocol": "json", "version": {version}}}') == version


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"protocol":"messagepack","version":1}', "The protocol 'messagepack' is not supported."),
        ('{"protocol":"json","version":3}', "The server does not support version 3 of the 'json' protocol."),
        ('{"protocol":"json"}', "An unexpected error occurred during connection handshake."),
        ('{"protocol":"json","version":true}', "An unexpected error occurred during connection handshake."),
        ("not json", "An unexpected error occurred during connection handshake."),
        ("[1]", "An unexpected error occurred during connection handshake."),
    ],
)
def test_handshake_errors_use_aspnet_texts(text: str, error: str) -> None:
    with pytest.raises(p.ProtocolError) as info:
        p.parse_handshake(text)
    assert str(info.value) == error


def test_parse_message_drops_headers_and_keeps_unknown_fields() -> None:
    message = p.parse_message(
        '{"type":1,"headers":{"Authorization":"Bearer secret"},"target":"Dial","arguments":["1"],'
        '"invocationId":"x","future":1}'
    )
    assert message.type == p.INVOCATION
    assert "headers" not in message.raw
    assert "secret" not in repr(message)
    assert (message.target, message.arguments, message.invocation_id) == ("Dial", ["1"], "x")


@pytest.mark.parametrize(
    "text",
    [
        "{",
        "[]",
        '{"type":"1"}',
        '{"type":true}',
        '{"type":1,"arguments":[]}',
        '{"type":1,"target":"A","arguments":{}}',
        '{"type":1,"target":"A","arguments":[],"invocationId":5}',
        '{"type":3}',
        '{"type":3,"invocationId":"1","result":1,"error":"x"}',
    ],
)
def test_malformed_messages_are_protocol_errors(text: str) -> None:
    with pytest.raises(p.ProtocolError):
        p.parse_message(text)


def test_encoders() -> None:
    assert p.record(p.invocation("callUpdated", [{"id": "c"}])) == (
        '{"type":1,"target":"callUpdated","arguments":[{"id":"c"}]}\x1e'
    )
    assert p.completion("1", result=None) == {"type": 3, "invocationId": "1"}
    assert p.completion("1", result=0) == {"type": 3, "invocationId": "1", "result": 0}
    assert p.completion("1", error="bad") == {"type": 3, "invocationId": "1", "error": "bad"}
    assert p.close("bye", allow_reconnect=True) == {"type": 7, "error": "bye", "allowReconnect": True}
    assert p.close() == {"type": 7}


def test_connection_tokens_validate_anywhere_with_the_shared_secret() -> None:
    a = ConnectionTokens(b"s" * 32, ttl=60)
    b = ConnectionTokens(b"s" * 32, ttl=60)
    alice = FakePrincipal("alice", "agent", "101")
    token = a.issue("conn1", alice, now=1000)
    assert b.verify(token, now=1030) == ConnectionClaims("conn1", "alice", "agent", "101", 1060)
    assert b.verify(token, now=1061) is None  # expired
    assert ConnectionTokens(b"t" * 32).verify(token, now=1030) is None  # other secret
    assert b.verify(token.replace("conn1", "conn2"), now=1030) is None
    conn, expiry, who, mac = token.split(".")
    bob = a.issue("conn1", FakePrincipal("bob", "admin", None), now=1000).split(".")[2]
    assert b.verify(f"{conn}.{expiry}.{bob}.{mac}", now=1030) is None  # the principal is under the MAC
    assert b.verify(f"{conn}.{int(expiry) + 600}.{who}.{mac}", now=1030) is None  # so is the expiry
    assert b.verify("garbage") is None
    assert b.verify("a.b.c") is None
    assert b.verify("a.b.c.d") is None
    assert b.verify(f"{conn}.{chr(178)}.{who}.{mac}") is None  # a digit to str.isdigit, not to int()
    assert b.verify(f"{conn}.{expiry}.{who}.{mac[:-1]}\udc00", now=1030) is None  # never a TypeError
    assert b.verify(token + "x" * 3000, now=1030) is None
    key = a.issue("c2", FakePrincipal("key:launcher", "agent", None), now=1000)  # an API key's subject
    assert b.verify(key, now=1000).subject == "key:launcher"


@settings(database=None)
@given(st.text(max_size=300))
def test_connection_token_verify_takes_any_text(text: str) -> None:
    assert ConnectionTokens(b"s" * 32).verify(text) is None
