"""schemathesis against ``/openapi.json`` of a running daemon: every documented operation is called with
generated inputs (valid and invalid), as an admin, as an agent and without credentials, and every response must
agree with the document (status code documented, content type, body schema, headers) and never be
a 5xx. Examples per operation: ``CTID_FUZZ_EXAMPLES`` (tests/fuzz/conftest.py)."""

from __future__ import annotations

import schemathesis
import trio
from core.conftest import AGENT_KEY, API_KEY
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ctid.testing.daemon import running_daemon

from .conftest import EXAMPLES

#: Checks that judge the responses against the document (the rest judge how strict the API is
#: with inputs the document allows or forbids: ctid documents its bodies loosely on purpose).
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


def _test_for(operation, base_url: str, headers: dict[str, str], examples: int):
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def test(case) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=10)

    return test


def _run(schema, base_url: str, headers: dict[str, str], examples: int) -> list[str]:
    """Every operation, ``examples`` cases each; returns the failures (operation: error)."""
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        try:
            _test_for(operation, base_url, headers, examples)()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # collected, so one run shows every operation's problem
            failures.append(f"{operation.label}: {type(exc).__name__}: {exc}"[:2000])
    return failures


async def test_every_response_agrees_with_openapi_json(config):
    async with running_daemon(config) as app:
        document = (await app.client.get("/openapi.json")).json()
        schema = schemathesis.openapi.from_dict(document)
        examples = max(3, EXAMPLES // 4)
        failures = await trio.to_thread.run_sync(
            _run, schema, app.url, {"Authorization": f"Bearer {API_KEY}"}, examples)
        failures += await trio.to_thread.run_sync(
            _run, schema, app.url, {"Authorization": f"Bearer {AGENT_KEY}"}, max(2, examples // 2))
        failures += await trio.to_thread.run_sync(_run, schema, app.url, {}, max(2, examples // 2))
        assert not failures, "\n\n".join(failures)
