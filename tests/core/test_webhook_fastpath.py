"""The webhook fast path answers exactly as the Quart route would, and leaves everything else to Quart."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from ctid.builtins.generic import sign
from ctid.testing.daemon import running_daemon
from ctid.web.fastpath import WebhookFastPath

from .conftest import API_KEY, SECRET

ADMIN = {"Authorization": f"Bearer {API_KEY}"}


def _scope(path: str, body: bytes, headers: dict[str, str], method: str = "POST", query: bytes = b"") -> dict:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "", "headers": raw,
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080), "extensions": {},
    }


async def _call(app: Any, scope: dict, body: bytes) -> tuple[int, dict[str, str], bytes]:
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        await trio.sleep_forever()  # the client stays connected (Quart listens for a disconnect)

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def _event(call_id: str, event: str = "ring", **more: Any) -> bytes:
    return json.dumps({"event": event, "call_id": call_id, "id": f"{call_id}-{event}", "agent": "101",
                       "from": "+79161234567", **more}).encode()


CASES = [
    ("good", lambda body: {"X-Ctid-Signature": sign(SECRET, body), "Content-Type": "application/json"}, None),
    ("bad signature", lambda body: {"X-Ctid-Signature": "sha256=deadbeef"}, None),
    ("no signature", lambda body: {}, None),
    ("bad json", lambda body: {"X-Ctid-Signature": sign(SECRET, b"{nope")}, b"{nope"),
    ("unknown field", lambda body: {"X-Ctid-Signature": sign(SECRET, body)}, _event("u", bogus=1)),
]


@pytest.mark.parametrize(("name", "headers", "body"), CASES, ids=[c[0] for c in CASES])
async def test_fast_path_answers_as_the_quart_route(config, name, headers, body):
    async with running_daemon(config) as app:
        quart = app.daemon.web_app
        fast = WebhookFastPath(quart, app.daemon)
        answers = []
        for index, handler in enumerate((quart, fast)):
            payload = body if body is not None else _event(f"fp-{name}-{index}")
            hdrs = {**headers(payload), "Content-Length": str(len(payload))}
            answers.append(await _call(handler, _scope("/hooks/office", payload, hdrs), payload))
        (s1, h1, b1), (s2, h2, b2) = answers
        assert (s2, b2) == (s1, b1)
        for header in ("content-type", "www-authenticate", "content-length"):
            assert h2.get(header) == h1.get(header), header


@pytest.mark.parametrize("query", [b"token=a%00b", b"x=%FF", b"%ED%A0%80=1"])
async def test_a_bad_query_string_is_the_same_400_on_both_paths(config, query):
    async with running_daemon(config) as app:
        quart = app.daemon.web_app
        fast = WebhookFastPath(quart, app.daemon)
        payload = _event("fp-query")
        hdrs = {"X-Ctid-Signature": sign(SECRET, payload), "Content-Length": str(len(payload))}
        for handler in (quart, fast):
            status, _headers, body = await _call(handler, _scope("/hooks/office", payload, hdrs, query=query), payload)
            assert (status, json.loads(body)["error"]) == (400, "bad_encoding")
        assert app.daemon.switchboard.calls == {}


async def test_fast_path_stores_and_publishes_like_the_route(config):
    async with running_daemon(config) as app:
        fast = WebhookFastPath(app.daemon.web_app, app.daemon)
        body = _event("fp-stored")
        headers = {"X-Ctid-Signature": sign(SECRET, body), "Content-Length": str(len(body))}
        status, _, answer = await _call(fast, _scope("/hooks/office", body, headers), body)
        assert status == 200, answer
        calls = (await app.client.get("/api/calls", headers=ADMIN)).json()["items"]
        assert [(c["pbx_call_id"], c["state"], c["agent"]) for c in calls] == [("fp-stored", "ringing", "alice")]
        metrics = (await app.client.get("/metrics")).text
        assert 'ctid_webhook_requests_total{connector="office",status="200"} 1.0' in metrics


@pytest.mark.parametrize(
    ("path", "method", "headers", "body"),
    [
        ("/hooks/nowhere", "POST", {"Content-Length": "2"}, b"{}"),  # unknown instance: Quart's 404
        ("/hooks/office/sub", "POST", {"Content-Length": "2"}, b"{}"),  # a subpath
        ("/hooks/office", "GET", {}, b""),  # not a POST
        ("/hooks/office", "POST", {}, b"{}"),  # no Content-Length (chunked)
        ("/hooks/office", "POST", {"Content-Length": "999999999"}, b"{}"),  # over the limit: Quart's 413
        ("/healthz", "GET", {}, b""),
    ],
)
async def test_everything_else_goes_to_quart(config, path, method, headers, body):
    async with running_daemon(config) as app:
        seen = []

        async def quart(scope, receive, send):
            seen.append(scope["path"])
            await app.daemon.web_app(scope, receive, send)

        quart.config = app.daemon.web_app.config
        fast = WebhookFastPath(quart, app.daemon)
        status, _, _ = await _call(fast, _scope(path, body, headers, method), body)
        assert seen == [path]
        assert status != 200 or path == "/healthz"
