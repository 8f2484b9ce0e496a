"""Property-based fuzzing of a connector's webhook through a running ctid, for plugin authors.

    from ctid.testing.fuzz import fuzz_simulated_webhooks

    async def test_fuzzed_pushes(ctid_daemon):
        await fuzz_simulated_webhooks(ctid_daemon, "mf")

The connector's own :meth:`~ctid.connector.Connector.simulate` gives native requests for every
scenario; hypothesis spoils them (a field set to text with lone surrogates, huge numbers, huge
strings, odd enum values, digits other than 0-9; a field dropped; a field added; JSON nested deep; bytes that are not
UTF-8 in a form) and posts them to ``/hooks/{instance}`` over one keep-alive connection. Every answer
must come within 10 s, be below 500 and not be a dead letter (202: the connector raised, a bug
ctid's supervision caught); ctid must serve on. ``resign(headers, body)`` recomputes a signature the
PBX puts in a header. Examples: ``examples`` or ``CTID_FUZZ_EXAMPLES`` (default 40).

Random spoiling seldom hits the one field that breaks a connector; run :func:`sweep_simulated_webhooks`
(ctid.testing.sweep) as well: every field of every simulated request × every value of ``SWEEP_VALUES``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctid.connector import SimulationContext
from ctid.testing.sweep import (  # the deterministic half
    SWEEP_VALUES,
    simulation_base,
    sweep_simulated_webhooks,
)

surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
#: Values a careless or hostile PBX sends.
nasty_values = st.one_of(
    st.text(max_size=20),
    st.builds(lambda a, s: a + s, st.text(max_size=4), surrogate),
    st.integers(min_value=10**150, max_value=10**300).map(str),
    st.just("9" * 5000), st.just("x" * 70_000), st.just("-1"), st.just("1e999"), st.just(""), st.just("nan"),
    st.just("2026-13-45T99:99:99Z"), st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    # digits to str.isdigit() that int() refuses ("³") or reads (Arabic-Indic, fullwidth): ids and numbers
    st.sampled_from(["³", "55²", "¹⁰¹", "7916123456³", "٣٤٥", "１２３"]),
    st.builds(lambda a, s: a + s, st.sampled_from(["", "1", "79161234567"]),
              st.text(st.characters(categories=["No"]), min_size=1, max_size=4)),
)


def _mutations(keys: st.SearchStrategy[str]) -> st.SearchStrategy[list[tuple[str, str, Any]]]:
    one = st.one_of(st.tuples(st.just("set"), keys, nasty_values), st.tuples(st.just("drop"), keys, st.none()),
                    st.tuples(st.just("add"), st.text(max_size=10), nasty_values))
    return st.lists(one, max_size=3)


def _decode(body: bytes, content_type: str) -> tuple[str, dict[str, Any]] | None:
    if "json" in content_type:
        try:
            value = json.loads(body)
        except ValueError:
            return None
        return ("json", value) if isinstance(value, dict) else None
    if "form" in content_type:
        return "form", dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return None


def _encode(kind: str, fields: dict[str, Any], extra: str) -> bytes:
    if kind == "form":
        text = urlencode({k: str(v) for k, v in fields.items()}, errors="surrogatepass")
        return (text + ("&x=%ED%B0%80%FF%C3" if extra == "bad-bytes" else "")).encode()
    text = json.dumps(fields, ensure_ascii=True, default=str)
    if extra == "deep":
        text = text[:-1] + (", " if fields else "") + '"deep": ' + "[" * 200 + "]" * 200 + "}"
    return text.encode()


async def fuzz_simulated_webhooks(app: Any, instance: str, *, examples: int | None = None,
                                  resign: Callable[[dict[str, str], bytes], dict[str, str]] | None = None,
                                  context: SimulationContext | None = None) -> dict[int, int]:
    """Fuzz ``instance``'s webhook on the running daemon ``app`` (a RunningDaemon); returns how often
    each status was answered."""
    connector = app.daemon.connectors[instance]
    base = simulation_base(app, instance, context)
    scenarios = list(connector.scenarios)
    statuses: dict[int, int] = {}
    token = trio.lowlevel.current_trio_token()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=app.url, limits=limits, timeout=10) as client:

        async def send(method: str, path: str, headers: dict[str, str], body: bytes) -> None:
            with trio.fail_after(10):
                response = await client.request(method, path, headers=headers, content=body)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, (response.status_code, response.text, body[:300])
            assert response.status_code != 202 or "dead_letter" not in response.text, (response.text, body[:300])

        @settings(max_examples=examples or int(os.environ.get("CTID_FUZZ_EXAMPLES", "40")), deadline=None,
                  database=None, suppress_health_check=list(HealthCheck))
        @given(st.sampled_from(scenarios), st.integers(0, 50), st.data(),
               st.sampled_from(["plain", "deep", "bad-bytes"]))
        def run(scenario: str, index: int, data: st.DataObject, extra: str) -> None:
            requests = connector.simulate(scenario, base)
            request = requests[index % len(requests)]
            headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
            content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
            decoded = _decode(request.body, content_type)
            if decoded is None:
                body = request.body
            else:
                kind, fields = decoded
                keys = st.sampled_from(sorted(fields)) if fields else st.text(max_size=5)
                for op, key, value in data.draw(_mutations(keys)):
                    if op == "drop":
                        fields.pop(key, None)
                    else:
                        fields[key] = value
                body = _encode(kind, fields, extra)
            if resign is not None:
                headers = resign(headers, body)
            trio.from_thread.run(send, request.method, request.path, headers, body, trio_token=token)

        await trio.to_thread.run_sync(run)
        assert (await client.get("/healthz")).status_code == 200
    return statuses


__all__ = ["SWEEP_VALUES", "fuzz_simulated_webhooks", "nasty_values", "sweep_simulated_webhooks"]
