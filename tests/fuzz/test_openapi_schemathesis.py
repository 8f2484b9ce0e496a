"""schemathesis against ``/openapi.json`` of a running daemon: every documented operation is called with
generated inputs, as a signed-in admin user, with an admin API key, with an agent's key and without
credentials. Every response must agree with the document (status code documented, content type, body
schema, headers) and never be a 5xx; inputs the document allows must be accepted (the schemas are not
looser than the server). Examples per operation: ``CTID_FUZZ_EXAMPLES`` (tests/fuzz/conftest.py).

Both generation modes run: *positive* (inputs the document allows) and *negative* (inputs it forbids:
``limit=0``, ``status=null``, an id ``³`` ...). The first version ran positive inputs only and judged
only the responses, so an undocumented 400, a 500 on a non-ASCII id and schemas looser than the server
(``limit`` without bounds, an empty ``number``) all passed; ``schemathesis run`` found them at once.
"""

from __future__ import annotations

import schemathesis
import trio
from core.conftest import AGENT_KEY, API_KEY
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, positive_data_acceptance
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.security import generate_password_hash

from ctid.testing.daemon import running_daemon

from .conftest import EXAMPLES

#: Checks that judge the responses against the document, for every input.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]

#: Operations whose documented input can still be refused with a 400 for a rule a JSON Schema cannot say
#: (each 400 is documented): ``positive_data_acceptance`` is not asked of them.
CONDITIONAL = {
    "POST /api/calls": "the number must be dialable, and a user without an agent must name one",
    "GET /api/reports/{name}": "from <= to and the period at most reports.max_days; group_by per report",
    "GET /api/calls/{id}/recording": "a signed link's u, exp and sig belong together",
}
#: Refused with a documented 400 for an API key (a user's token has something to refresh or hand over).
USER_ONLY = {"POST /api/auth/refresh", "POST /api/auth/handoff"}

ROOT_PASSWORD = "root-fuzz-password-1"


def _test_for(operation, mode: GenerationMode, base_url: str, headers: dict[str, str], examples: int, checks):
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def test(case) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=checks, timeout=10)

    return test


def _run(schema, base_url: str, headers: dict[str, str], examples: int, *, accept: bool,
         user: bool = False) -> list[str]:
    """Every operation, ``examples`` cases per generation mode; returns the failures (operation: error).
    ``accept``: also require that inputs the document allows are accepted."""
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            checks = list(CHECKS)
            if (accept and mode is GenerationMode.POSITIVE and operation.label not in CONDITIONAL
                    and (user or operation.label not in USER_ONLY)):
                checks.append(positive_data_acceptance)
            try:
                _test_for(operation, mode, base_url, headers, examples, checks)()
            except Unsatisfiable:
                continue  # nothing to negate (no parameters, or only a free-form body)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # collected, so one run shows every operation's problem
                failures.append(f"{mode.value} {operation.label}: {type(exc).__name__}: {exc}"[:2000])
    return failures


async def test_every_response_agrees_with_openapi_json(config):
    config["auth"]["users"].append({"username": "root", "role": "admin",
                                    "password_hash": generate_password_hash(ROOT_PASSWORD, "pbkdf2:sha256:1000")})
    async with running_daemon(config) as app:
        document = (await app.client.get("/openapi.json")).json()
        schema = schemathesis.openapi.from_dict(document)
        # No NUL in any string, known property or not: a boundary rule the document's description states
        # (ctid refuses it everywhere, PostgreSQL cannot store it) and a JSON Schema cannot say for
        # properties it does not name. Negative cases still send NUL and must get a documented 400.
        schema.config.generation.update(allow_x00=False)
        user = await app.headers_for("root", ROOT_PASSWORD)
        examples = max(3, EXAMPLES // 5)  # both modes: about 40 s in all at the default 40
        failures = await trio.to_thread.run_sync(
            lambda: _run(schema, app.url, user, examples, accept=True, user=True))
        failures += await trio.to_thread.run_sync(
            lambda: _run(schema, app.url, {"Authorization": f"Bearer {API_KEY}"}, max(2, examples // 2), accept=True))
        failures += await trio.to_thread.run_sync(
            lambda: _run(schema, app.url, {"Authorization": f"Bearer {AGENT_KEY}"}, max(2, examples // 4),
                         accept=False))
        failures += await trio.to_thread.run_sync(lambda: _run(schema, app.url, {}, max(2, examples // 4),
                                                               accept=False))
        assert not failures, "\n\n".join(failures)
