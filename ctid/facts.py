"""Per-call facts a PBX states about a call (campaign, UTM tags, cost, rating ...), checked once.

A connector attaches facts to any :class:`~ctid.model.CallEvent` (``facts=...``), or sends them
later in an event of kind ``facts`` (for example the cost it fetched from the PBX's billing API
after the call). The switchboard merges them into :attr:`ctid.model.Call.facts` in event order,
later values winning key by key; reports store what they need from them when a call is written.

Well-known keys (:data:`FACT_FIELDS`) have fixed types so every PBX plugin means the same thing by
them; plugin-specific keys start with ``x_`` and are kept as given (JSON values), not interpreted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ctid.errors import RequestError

#: Well-known fact keys and what each holds. ``str`` values are stripped; empty means unknown.
FACT_FIELDS: dict[str, tuple[type, str]] = {
    "campaign": (str, "advertising campaign name"),
    "campaign_id": (str, "advertising campaign id in the PBX's or ad platform's terms"),
    "site": (str, "the web site the caller came from (call tracking)"),
    "channel": (str, "traffic channel: organic, cpc, direct, referral, social, email, offline ..."),
    "utm_source": (str, "utm_source of the caller's visit"),
    "utm_medium": (str, "utm_medium of the caller's visit"),
    "utm_campaign": (str, "utm_campaign of the caller's visit"),
    "utm_content": (str, "utm_content of the caller's visit"),
    "utm_term": (str, "utm_term of the caller's visit"),
    "cost": (float, "the call's total cost in `currency` (sum of its legs)"),
    "currency": (str, "ISO 4217 code of `cost`"),
    "rating": (float, "the caller's or a quality rating of the call, on the PBX's scale"),
    "tags": (list, "labels the PBX put on the call (list of strings)"),
    "first_call": (bool, "the PBX says this is the caller's first call (a new contact)"),
}

#: Longest text kept for one fact, and most keys per event (facts are small by nature).
MAX_TEXT = 500
MAX_KEYS = 64
_MAX_KEY = 64


def _bad(key: str, message: str) -> RequestError:
    return RequestError(f"facts.{key}: {message}", error_id="bad_fact")


def _text(key: str, value: Any) -> str | None:
    if not isinstance(value, str):
        raise _bad(key, "must be a string")
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise _bad(key, f"longer than {MAX_TEXT} characters")
    return value or None


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(key, "must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise _bad(key, "must be a finite number")
    return number


def _clean_one(key: str, value: Any) -> Any:
    kind = FACT_FIELDS[key][0]
    if kind is str:
        return _text(key, value)
    if kind is float:
        return _number(key, value)
    if kind is bool:
        if not isinstance(value, bool):
            raise _bad(key, "must be true or false")
        return value
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise _bad(key, "must be a list of strings")
    return [text for item in value if (text := _text(key, item))]


def _json_value(key: str, value: Any, depth: int = 0) -> Any:
    """A plugin-specific value: plain JSON only (so it stores and publishes unchanged)."""
    if depth > 4:
        raise _bad(key, "nested too deeply")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return _number(key, value) if isinstance(value, float) else value
    if isinstance(value, list | tuple):
        return [_json_value(key, item, depth + 1) for item in value]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _json_value(key, v, depth + 1) for k, v in value.items()}
    raise _bad(key, "must be a JSON value")


def clean_facts(facts: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check and normalise a connector's facts; ``None`` values (unknown) are dropped.

    :raises RequestError: (error id ``bad_fact``) naming the first bad key, so a connector that
        parses a webhook can answer 400 with it.
    """
    if not facts:
        return {}
    if len(facts) > MAX_KEYS:
        raise RequestError(f"facts: more than {MAX_KEYS} keys", error_id="bad_fact")
    clean: dict[str, Any] = {}
    for key, value in facts.items():
        if not isinstance(key, str) or not key or len(key) > _MAX_KEY:
            raise RequestError(f"facts: bad key {str(key)[:80]!r}", error_id="bad_fact")
        if value is None:
            continue
        if key in FACT_FIELDS:
            value = _clean_one(key, value)
        elif key.startswith("x_"):
            value = _json_value(key, value)
        else:
            raise _bad(key, "unknown fact (well-known keys: " + ", ".join(FACT_FIELDS) + "; others start with x_)")
        if value is not None:
            clean[key] = value
    return clean


def merge_facts(ordered: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The facts of a call: each event's facts in event order, later values winning key by key."""
    merged: dict[str, Any] = {}
    for facts in ordered:
        if facts:
            merged.update(facts)
    return merged
