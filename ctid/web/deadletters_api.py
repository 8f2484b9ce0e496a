"""REST routes of dead letters (admins only): list, read, re-submit and delete kept webhooks.

A dead letter is a webhook whose connector raised (ctid/webhooks.py). Re-submitting runs it through
the same path as a new webhook (limits, supervised parsing, events, commit): when the connector now
takes it (an answer below 400) its events are accepted (duplicates are ignored as always) and the
letter is deleted; otherwise the letter stays and the answer says why.
"""

from __future__ import annotations

from typing import Any

from quart import Response, jsonify, request

from ctid.auth import Principal, bearer
from ctid.config.models import Role
from ctid.errors import CtidError, ForbiddenError, NotFoundError, PluginError, RequestError, StoreError
from ctid.limits import LimitError, ascii_digits
from ctid.web.openapi import document

_LETTER = {"type": "object", "properties": {name: {} for name in (
    "id", "connector", "received_at", "error", "message", "method", "subpath", "remote_addr", "body_bytes",
    "headers", "query", "body_base64")}}
_ADMIN = {403: "not an admin"}
_ID = {"letter_id": {"type": "string", "pattern": "^[0-9]{1,18}$", "description": "a dead letter's id"}}

document(path="/api/dead-letters", method="GET", tag="operations", summary="Webhooks kept because their "
         "connector failed, newest first (admins)",
         query={"connector": {"type": "string"},
                "before": {"type": "integer", "minimum": 1, "maximum": 10**18 - 1, "description": "ids below this"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000}},
         response={"type": "object", "properties": {"items": {"type": "array", "items": _LETTER}}},
         errors={400: "bad query", **_ADMIN})
document(path="/api/dead-letters/{letter_id}", method="GET", tag="operations", path_params=_ID, summary="One dead letter, with its "
         "headers, query and body (base64)", response=_LETTER, errors={400: "bad id", 404: "no such dead letter",
                                                                          **_ADMIN})
document(path="/api/dead-letters/{letter_id}", method="DELETE", tag="operations", path_params=_ID, summary="Delete a dead letter",
         status=204, errors={400: "bad id", 404: "no such dead letter", **_ADMIN})
document(path="/api/dead-letters/{letter_id}/retry", method="POST", tag="operations", path_params=_ID,
         summary="Re-submit a dead letter to its connector; deleted when the connector takes it",
         response={"type": "object", "properties": {"status": {"type": "integer"}, "answer": {}}},
         errors={400: "bad id, or the input is refused", 404: "no such dead letter or connector",
                 409: "the connector refused it (its answer is in the message)", 502: "the connector failed again",
                 503: "database unavailable", **_ADMIN})


def _id(value: str) -> int:
    if not ascii_digits(value) or len(value) > 18:
        raise RequestError("a dead letter id is a positive integer", error_id="bad_id")
    return int(value)


def register_dead_letters(app: Any, daemon: Any) -> None:
    def admin() -> Principal:
        who = daemon.auth.authenticate(bearer(request.headers.get("Authorization")))
        if who.role is not Role.ADMIN:
            raise ForbiddenError("dead letters are for admins", error_id="forbidden")
        return who

    @app.get("/api/dead-letters")
    async def dead_letters():
        admin()
        connector = request.args.get("connector") or None
        before = request.args.get("before")
        limit = request.args.get("limit") or "100"
        if not ascii_digits(limit) or len(limit) > 4 or not 1 <= int(limit) <= 1000:
            raise RequestError("limit must be between 1 and 1000", error_id="bad_query")
        if before is not None and (not ascii_digits(before) or len(before) > 18 or int(before) < 1):
            raise RequestError("before must be a dead letter id", error_id="bad_query")
        items = await daemon.dead_letters.list(connector=connector, before_id=int(before) if before else None,
                                               limit=int(limit))
        return jsonify({"items": [letter.to_json(body=False) for letter in items]})

    async def _letter(letter_id: str):
        letter = await daemon.dead_letters.get(_id(letter_id))
        if letter is None:
            raise NotFoundError("no such dead letter", error_id="dead_letter_not_found")
        return letter

    @app.get("/api/dead-letters/<letter_id>")
    async def dead_letter(letter_id: str):
        admin()
        return jsonify((await _letter(letter_id)).to_json())

    @app.delete("/api/dead-letters/<letter_id>")
    async def delete_dead_letter(letter_id: str):
        admin()
        if not await daemon.dead_letters.delete(_id(letter_id)):
            raise NotFoundError("no such dead letter", error_id="dead_letter_not_found")
        return Response("", status=204)

    @app.post("/api/dead-letters/<letter_id>/retry")
    async def retry_dead_letter(letter_id: str):
        from ctid.webhooks import take

        admin()
        letter = await _letter(letter_id)
        connector = daemon.connectors.get(letter.connector)
        if connector is None:
            raise NotFoundError(f"connector {letter.connector!r} is not running", error_id="unknown_instance")
        try:
            result = await take(daemon, connector, letter.request, keep=False)
        except PluginError as exc:
            raise PluginError(str(exc), status=502) from exc
        except (StoreError, LimitError):
            raise
        except CtidError as exc:  # the connector's own refusal (a bad signature ...): the letter stays
            raise RequestError(f"the connector answered {exc.status} {exc.error_id}: {exc}",
                               error_id="retry_refused", status=409) from exc
        answer = result.body if not isinstance(result.body, bytes) else result.body.decode("utf-8", "replace")
        if result.status >= 400:
            raise RequestError(f"the connector answered {result.status}: {answer}", error_id="retry_refused",
                               status=409)
        await daemon.dead_letters.delete(letter.id)
        return jsonify({"status": result.status, "answer": answer})
