"""The generic webhook (docs/generic-webhook.md) fuzzed through a running daemon: signed and unsigned
bodies of events, lists and garbage (lone surrogates, deep nesting, huge numbers and strings, UTF-16,
random bytes). No answer is a 5xx, each comes within seconds on the same keep-alive connection, every
refusal names a stable error id, and the daemon still takes a good webhook afterwards."""

from __future__ import annotations

import json

import httpx
import trio
from core.conftest import SECRET, post_events
from hypothesis import strategies as st

from ctid.builtins.generic import sign
from ctid.testing.daemon import running_daemon

from .conftest import fuzz
from .strategies import raw_bodies

requests = st.tuples(raw_bodies, st.sampled_from(["signed", "unsigned", "bad-signature"]),
                     st.sampled_from(["application/json", "text/plain", "application/json; charset=utf-16", None]))


async def test_fuzzed_generic_webhooks_never_5xx(config):
    async with running_daemon(config) as app:
        # one connection for every example: keep-alive requests must all be answered
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        statuses: dict[int, int] = {}  # what the run saw (useful when reading a failure)
        async with httpx.AsyncClient(base_url=app.url, limits=limits, timeout=10) as client:

            async def check(example) -> None:
                body, how, content_type = example
                headers = {"Content-Type": content_type} if content_type else {}
                if how == "signed":
                    headers["X-Ctid-Signature"] = sign(SECRET, body)
                elif how == "bad-signature":
                    headers["X-Ctid-Signature"] = "sha256=" + "0" * 64
                with trio.fail_after(10):
                    response = await client.post("/hooks/office", content=body, headers=headers)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                assert response.status_code < 500, (response.status_code, response.text, body[:300])
                assert response.status_code != 202, response.text  # a dead letter: the connector raised
                if response.status_code >= 400:
                    answer = response.json()
                    assert isinstance(answer["error"], str) and answer["error"], answer
                else:
                    assert response.status_code == 200 and response.json()["accepted"] >= 1
                    json.loads(body.decode("utf-8"))  # only UTF-8 JSON is ever taken

            await fuzz(requests, check)
            assert (await client.get("/healthz")).status_code == 200
        # every accepted call is stored and readable, and a good webhook is still taken
        await post_events(app, [{"event": "ring", "call_id": "after-fuzz", "from": "+79161234567",
                                 "agent": "101", "timestamp": "2026-11-25T10:00:00Z"}])
        assert any(c.pbx_call_id == "after-fuzz" for c in app.daemon.switchboard.calls.values())
        assert await app.daemon.store.list_calls(limit=1000)


async def test_fuzzed_simulated_generic_traffic_never_5xx(config):
    from ctid.testing.fuzz import fuzz_simulated_webhooks

    def resign(headers: dict[str, str], body: bytes) -> dict[str, str]:
        return {**headers, "X-Ctid-Signature": sign(SECRET, body)}

    async with running_daemon(config) as app:
        statuses = await fuzz_simulated_webhooks(app, "office", resign=resign)
        assert set(statuses) <= {200, 400}, statuses


async def test_every_field_of_every_simulated_generic_event_swept(config, postgres_schema_url):
    # deterministic: each field of each simulated event × SWEEP_VALUES, deleted too, signed afresh; on
    # PostgreSQL, which refuses what SQLite keeps (a NUL in call_id was a 503 there)
    from ctid.testing.fuzz import sweep_simulated_webhooks

    def resign(headers: dict[str, str], body: bytes) -> dict[str, str]:
        return {**headers, "X-Ctid-Signature": sign(SECRET, body)}

    config["database"] = {"url": postgres_schema_url}
    async with running_daemon(config) as app:
        statuses = await sweep_simulated_webhooks(app, "office", resign=resign)
        assert set(statuses) <= {200, 400} and 400 in statuses, statuses


async def test_the_sweep_finds_a_connector_that_raises_on_one_value_in_one_field(config):
    # the sweep can fail: CoMagic's old bug (str.isdigit() then int(), so "³" raised) in a generic clone
    import types

    import pytest

    import ctid
    from ctid.builtins.generic import GenericConfig, GenericConnector
    from ctid.limits import loads
    from ctid.testing.fuzz import sweep_simulated_webhooks

    class CarelessConfig(GenericConfig):
        plugin: str = "careless"

    class Careless(GenericConnector):
        plugin_name = "careless"
        Config = CarelessConfig

        async def handle_webhook(self, request):
            result = await super().handle_webhook(request)  # the signature and shape checks first
            data = loads(request.body)
            for item in data if isinstance(data, list) else [data]:
                if isinstance(item, dict) and isinstance(item.get("call_id"), str) and item["call_id"].isdigit():
                    int(item["call_id"])  # ValueError for "³"
            return result

    def resign(headers: dict[str, str], body: bytes) -> dict[str, str]:
        return {**headers, "X-Ctid-Signature": sign(SECRET, body)}

    config["connectors"]["careless"] = {**config["connectors"]["office"], "plugin": "careless"}
    plugin = types.SimpleNamespace(ctid_register_connectors=ctid.hookimpl(lambda: [Careless]))
    async with running_daemon(config, plugins=[plugin]) as app:
        with pytest.raises(AssertionError, match=r"json:call_id = superscript: 202 .*dead_letter"):
            await sweep_simulated_webhooks(app, "careless", resign=resign, limit=300)
