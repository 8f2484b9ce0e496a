"""A deterministic field-by-field sweep of a connector's webhook through a running ctid, for plugin authors.

    from ctid.testing.fuzz import sweep_simulated_webhooks

    async def test_every_field_swept(ctid_daemon):
        await sweep_simulated_webhooks(ctid_daemon, "mf")

Random mutation (:func:`ctid.testing.fuzz.fuzz_simulated_webhooks`) rarely puts a value that matters
into the field that matters; this sweep does it for every one. It takes the native requests of every
scenario of :meth:`~ctid.connector.Connector.simulate`, parses each body (JSON object or array, form)
and query string, and for every field (every path into nested JSON, containers too; every form and
query key) sends one request per value of :data:`SWEEP_VALUES` with that field replaced, and one with
the field deleted. Requests of the same shape (same fields, same enum-like values such as event
names) are swept once. The daemon first takes each scenario's valid requests but the last, so
spoiled requests meet live calls as well as unknown ones. Each answer must come within 10 s, be below 500 and not be a dead letter (the
connector raised); afterwards the daemon must hold no new dead letter, answer ``/healthz`` and accept
the scenario's valid requests. ``resign(headers, body)`` recomputes a signature the PBX puts in a
header. Requests go concurrently over a few keep-alive connections; the sweep is bounded by
``limit`` or ``CTID_FUZZ_SWEEP`` (default 2500 requests): every field gets the values in order, so a
bound drops the least telling values of :data:`SWEEP_VALUES` first. Returns how often each status was
answered.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import trio

from ctid.connector import SimulatedRequest, SimulationContext


@dataclass(frozen=True, slots=True)
class Raw:
    """JSON text put into a body as is (a token :func:`json.dumps` would not write)."""

    text: str


_DEEP = "[" * 40 + "]" * 40
#: (name, value) pairs put into every field, most telling first (a bounded sweep keeps the first ones);
#: the field is also deleted, after the first six.
SWEEP_VALUES: list[tuple[str, Any]] = [
    ("surrogate", "\udc00"), ("superscript", "³"), ("arabic-digit", "٣"), ("none", None), ("list", []),
    ("object", {}), ("empty", ""), ("digits-5000", "9" * 5000), ("true", True), ("1e309", Raw("1e309")),
    ("digit-sign-tail", "55²"), ("fullwidth", "１２３"), ("text-surrogate", "101\udc00"), ("minus-one", -1),
    ("big-int", Raw("9" * 400)), ("float", 1.5), ("string-70k", "x" * 70_000), ("deep-40", Raw(_DEEP)),
    ("bad-date", "2026-13-45T99:99:99Z"), ("nan-text", "nan"), ("zero", 0), ("list-of-signs", ["1", "³"]),
    ("nul", "1\x000"), ("spaced", " 7 "), ("infinity-text", "Infinity"), ("minus-digits", "-" + "9" * 400),
    ("control", "\x1b[31m\r\n"), ("huge-float", 1e308),
]
#: Values a form or query field can carry: text, plus bytes that are not UTF-8 (percent-escaped as is).
_FORM_VALUES = [(name, v) for name, v in SWEEP_VALUES if isinstance(v, str)] + [("bad-utf8", b"\xed\xb0\x80\xff")]
_DROP = ("deleted", None)
_ENUM_LIKE = re.compile(r"[A-Za-z_.-]{1,40}")


@dataclass(slots=True)
class _Case:
    request: SimulatedRequest
    where: str  # "json", "form", "query"
    path: tuple[Any, ...]
    name: str
    value: Any


def _leaves(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every path into ``value`` (containers and their items), the root excluded."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield (*prefix, key), item
        yield from _leaves(item, (*prefix, key))


def _parse(request: SimulatedRequest) -> tuple[str, Any] | None:
    content_type = next((v for k, v in request.headers.items() if k.lower() == "content-type"), "").lower()
    if not request.body:
        return None
    if "json" in content_type:
        try:
            value = json.loads(request.body)
        except ValueError:
            return None
        return ("json", value) if isinstance(value, dict | list) else None
    if "form" in content_type:
        return "form", parse_qsl(request.body.decode(), keep_blank_values=True)
    return None


def _shape(request: SimulatedRequest, parsed: tuple[str, Any] | None) -> tuple[Any, ...]:
    """Requests alike to the connector: same fields, same enum-like values (event names, commands)."""
    query = tuple(sorted(parse_qsl(urlsplit(request.path).query, keep_blank_values=True)))
    if parsed is None:
        return request.method, query, ()
    kind, value = parsed
    pairs = value if kind == "form" else [(p, v) for p, v in _leaves(value) if not isinstance(v, dict | list)]
    fields = tuple(sorted((repr(p), v if isinstance(v, str) and _ENUM_LIKE.fullmatch(v) else type(v).__name__)
                          for p, v in pairs))
    return request.method, tuple(k for k, _ in query), fields


def _with_drop(values: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [*values[:6], _DROP, *values[6:]]


def _cases(requests: list[SimulatedRequest], bound: int | None = None) -> list[_Case]:
    """The sweep's cases, round-robin over the fields (each field's first value, then the second...),
    at most ``bound``."""
    per_field: list[list[_Case]] = []
    seen: set[tuple[Any, ...]] = set()
    for request in requests:
        parsed = _parse(request)
        shape = _shape(request, parsed)
        if shape in seen:
            continue
        seen.add(shape)
        query = parse_qsl(urlsplit(request.path).query, keep_blank_values=True)
        for index in range(len(query)):
            per_field.append([_Case(request, "query", (index,), *nv) for nv in _with_drop(_FORM_VALUES)])
        if parsed is None:
            continue
        kind, value = parsed
        if kind == "form":
            for index in range(len(value)):
                per_field.append([_Case(request, "form", (index,), *nv) for nv in _with_drop(_FORM_VALUES)])
        else:
            for path, _ in _leaves(value):
                per_field.append([_Case(request, "json", path, *nv) for nv in _with_drop(SWEEP_VALUES)])
    depth = max((len(values) for values in per_field), default=0)
    cases = [values[i] for i in range(depth) for values in per_field if i < len(values)]
    return cases if bound is None else cases[:bound]


def _dumps(value: Any) -> str:
    raws: dict[str, str] = {}

    def mark(item: Any) -> Any:
        if isinstance(item, Raw):
            raws[key := f"\x00raw{len(raws)}\x00"] = item.text
            return key
        return [mark(i) for i in item] if isinstance(item, list) else (
            {k: mark(v) for k, v in item.items()} if isinstance(item, dict) else item)

    text = json.dumps(mark(value), ensure_ascii=True)
    for key, raw in raws.items():
        text = text.replace(json.dumps(key), raw)
    return text


def _form_text(pairs: list[tuple[str, Any]]) -> str:
    def enc(text: Any) -> str:
        raw = text if isinstance(text, bytes) else str(text).encode("utf-8", "surrogatepass")
        return quote(raw, safe="")
    return "&".join(f"{enc(k)}={enc(v)}" for k, v in pairs)


def _build(case: _Case) -> tuple[str, bytes]:
    """The spoiled request's path and body."""
    request = case.request
    split = urlsplit(request.path)
    path, body = request.path, request.body
    if case.where == "query":
        pairs: list[tuple[str, Any]] = parse_qsl(split.query, keep_blank_values=True)
        index = case.path[0]
        pairs = pairs[:index] + pairs[index + 1:] if case.name == "deleted" else [
            (k, case.value if i == index else v) for i, (k, v) in enumerate(pairs)]
        return split.path + ("?" + _form_text(pairs) if pairs else ""), body
    kind, value = _parse(request)  # type: ignore[misc]
    if kind == "form":
        index = case.path[0]
        pairs = value[:index] + value[index + 1:] if case.name == "deleted" else [
            (k, case.value if i == index else v) for i, (k, v) in enumerate(value)]
        return path, _form_text(pairs).encode()
    parent = value
    for key in case.path[:-1]:
        parent = parent[key]
    if case.name == "deleted":
        del parent[case.path[-1]]
    else:
        parent[case.path[-1]] = case.value
    return path, _dumps(value).encode()


def _label(case: _Case) -> str:
    where = ".".join(str(p) for p in case.path)
    if case.where != "json":
        pairs = parse_qsl(urlsplit(case.request.path).query if case.where == "query" else case.request.body.decode(),
                          keep_blank_values=True)
        where = pairs[case.path[0]][0]
    return f"{case.request.description or case.request.path} {case.where}:{where} = {case.name}"


def simulation_base(app: Any, instance: str, context: SimulationContext | None) -> SimulationContext:
    """Who takes part in the fuzzed calls: ``context``, or the instance's first configured login (and
    the next as "others") calling from a fixed number; started five minutes ago."""
    base = context or SimulationContext(caller="+79161234567", agent="", others=[], line="+74950000001")
    if not base.agent:
        logins = [login for agent in app.daemon.directory.agents()
                  if (login := app.daemon.directory.login_for_agent(instance, agent.id))]
        base.agent, base.others = (logins[0] if logins else "101"), logins[1:2]
    base.start = base.start - timedelta(minutes=5)
    return base


async def sweep_simulated_webhooks(app: Any, instance: str, *, limit: int | None = None,
                                   resign: Callable[[dict[str, str], bytes], dict[str, str]] | None = None,
                                   context: SimulationContext | None = None,
                                   connections: int = 6) -> dict[int, int]:
    """Sweep ``instance``'s webhook on the running daemon ``app`` (a RunningDaemon); see the module."""
    connector = app.daemon.connectors[instance]
    if not connector.accepts_webhooks:
        raise ValueError(f"connector {instance!r} takes no webhooks: nothing to sweep")
    base = simulation_base(app, instance, context)
    scenarios = list(connector.scenarios)
    requests = [r for scenario in scenarios for r in connector.simulate(scenario, base)]
    cases = _cases(requests, limit or int(os.environ.get("CTID_FUZZ_SWEEP", "2500")))
    letters_before = len(await app.daemon.dead_letters.list(limit=10_000))
    statuses: dict[int, int] = {}
    failures: list[str] = []
    send_channel, receive_channel = trio.open_memory_channel[_Case](0)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=app.url, limits=limits, timeout=10) as client:

        def headers_for(request: SimulatedRequest, body: bytes) -> dict[str, str]:
            headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
            return resign(headers, body) if resign is not None else headers

        async def send_valid(request: SimulatedRequest) -> None:
            response = await client.request(request.method, request.path, content=request.body,
                                            headers=headers_for(request, request.body))
            assert 200 <= response.status_code < 300 and "dead_letter" not in response.text, (
                request.description, response.status_code, response.text[:300])

        # every scenario but its last request first: spoiled requests then meet live calls too
        for scenario in scenarios:
            for request in connector.simulate(scenario, base)[:-1]:
                await send_valid(request)

        async def worker() -> None:
            async for case in receive_channel:
                path, body = _build(case)
                try:
                    with trio.fail_after(10):
                        response = await client.request(case.request.method, path, content=body,
                                                        headers=headers_for(case.request, body))
                except (trio.TooSlowError, httpx.HTTPError) as exc:
                    failures.append(f"{_label(case)}: no answer ({exc!r})")
                    continue
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code >= 500 or "dead_letter" in response.text:
                    failures.append(f"{_label(case)}: {response.status_code} {response.text[:300]}")

        async with trio.open_nursery() as nursery:
            for _ in range(connections):
                nursery.start_soon(worker)
            async with send_channel:
                for case in cases:
                    await send_channel.send(case)
        assert not failures, f"{len(failures)} of {len(cases)} swept requests failed:\n" + "\n".join(failures[:15])
        letters = await app.daemon.dead_letters.list(limit=10_000)
        assert len(letters) == letters_before, [(x.error_id, x.error) for x in letters[: len(letters) - letters_before]]
        assert (await client.get("/healthz")).status_code == 200
        # a valid request is still taken: the first scenario afresh (new call ids), in order
        base.start = base.start + timedelta(minutes=1)
        for request in connector.simulate(scenarios[0], base) if scenarios else ():
            await send_valid(request)
    return statuses
