"""Dead letters: webhooks whose connector raised, kept whole so an admin can re-submit them.

A webhook the core accepted must not be lost because a plugin has a bug (docs/input-limits.md,
"Dead letters"). When a connector's ``handle_webhook`` raises something that is not a ctid error,
the raw request (method, sub-path, headers, query, body, source address, time) is written to the
``dead_letters`` table before the PBX is answered; ``/api/dead-letters`` lists, re-submits and
deletes them.

Credentials the caller sent stay in the table, because a re-submission runs the connector's own
verification again (the generic connector checks ``X-Ctid-Signature``; a plugin may check
``Authorization``), but the API never shows them: :func:`redacted` replaces the value of every header
and query parameter that can hold one with ``[redacted]`` (the name stays, so an admin still sees that
it was sent). The body is shown as it came (it may carry a PBX's token, e.g. MegaFon's ``crm_token``;
dead letters are for admins only). The statements are portable (no ``ON CONFLICT``; ``tests/test_dead_letters.py``
compiles each for MS SQL too).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Delete, Insert, Select, delete, func, insert, select

from ctid.connector import WebhookRequest
from ctid.store.schema import dead_letters

if TYPE_CHECKING:
    from ctid.store.store import Store

#: The most dead letters kept; the oldest are dropped beyond it (a plugin failing on every webhook
#: must not fill the disk). Each is at most ``server.max_body_bytes`` of body.
MAX_KEPT = 10_000


#: Header names whose value is a credential of the caller, whole or in part.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})
#: Any header or query parameter whose name holds one of these words is treated as a credential too
#: (``X-Ctid-Signature``, ``X-Auth-Token``, ``crm_token``, ``api_key``, ``sig``, ``password`` ...).
SECRET_WORDS = re.compile(r"token|secret|signature|(?:^|[-_])sig(?:$|[-_])|auth|key|passw|session|cookie|credential",
                          re.IGNORECASE)
REDACTED = "[redacted]"


def is_secret(name: str) -> bool:
    """Whether a header or query parameter called ``name`` may carry a credential."""
    return name.lower() in SECRET_HEADERS or SECRET_WORDS.search(name) is not None


def redacted(values: dict[str, str]) -> dict[str, str]:
    """``values`` with every credential's value replaced by ``[redacted]`` (names kept)."""
    return {name: REDACTED if is_secret(name) else value for name, value in values.items()}


@dataclass(slots=True)
class DeadLetter:
    id: int
    connector: str
    received_at: datetime
    error_id: str
    error: str
    request: WebhookRequest

    def to_json(self, *, body: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id, "connector": self.connector, "received_at": self.received_at.isoformat(),
            "error": self.error_id, "message": self.error, "method": self.request.method,
            "subpath": self.request.subpath, "remote_addr": self.request.remote_addr,
            "body_bytes": len(self.request.body),
        }
        if body:
            data["headers"] = redacted(dict(self.request.headers))
            data["query"] = redacted(dict(self.request.query))
            data["body_base64"] = base64.b64encode(self.request.body).decode()
        return data


def _text(value: str | None, limit: int | None = None) -> str | None:
    """Text as the database can keep it: lone surrogates (never valid Unicode) replaced."""
    if value is None:
        return None
    text = value.encode("utf-8", "replace").decode("utf-8")
    return text[:limit] if limit else text


# --- statements ------------------------------------------------------------------------------------

def insert_dead_letter(row: dict[str, Any]) -> Insert:
    return insert(dead_letters).values(**row)


def list_dead_letters(connector: str | None, before_id: int | None, limit: int) -> Select:
    stmt = select(dead_letters).order_by(dead_letters.c.id.desc()).limit(limit)
    if connector is not None:
        stmt = stmt.where(dead_letters.c.connector == connector)
    if before_id is not None:
        stmt = stmt.where(dead_letters.c.id < before_id)
    return stmt


def get_dead_letter(letter_id: int) -> Select:
    return select(dead_letters).where(dead_letters.c.id == letter_id)


def delete_dead_letter(letter_id: int) -> Delete:
    return delete(dead_letters).where(dead_letters.c.id == letter_id)


def count_dead_letters() -> Select:
    return select(func.count(), func.max(dead_letters.c.id)).select_from(dead_letters)


def delete_dead_letters_up_to(letter_id: int) -> Delete:
    return delete(dead_letters).where(dead_letters.c.id <= letter_id)


#: Every builder with sample arguments (compiled for each dialect by the tests).
BUILDERS: dict[str, tuple[Any, ...]] = {
    "insert_dead_letter": ({"connector": "mf", "received_at": None, "error_id": "plugin_failed", "error": "x",
                            "method": "POST", "subpath": "", "remote_addr": None, "headers": {}, "query": {},
                            "body": b""},),
    "list_dead_letters": ("mf", 10, 100),
    "get_dead_letter": (1,),
    "delete_dead_letter": (1,),
    "count_dead_letters": (),
    "delete_dead_letters_up_to": (1,),
}


def _letter(row: Any) -> DeadLetter:
    request = WebhookRequest(method=row.method, subpath=row.subpath or "", headers=dict(row.headers or {}),
                             query=dict(row.query or {}), body=bytes(row.body or b""), remote_addr=row.remote_addr,
                             received_at=row.received_at)
    return DeadLetter(row.id, row.connector, row.received_at, row.error_id, row.error, request)


class DeadLetters:
    """The ``dead_letters`` table of one :class:`~ctid.store.store.Store`."""

    def __init__(self, store: Store, *, max_kept: int = MAX_KEPT):
        self.store = store
        self.max_kept = max_kept

    async def add(self, connector: str, request: WebhookRequest, error_id: str, error: str) -> int:
        """Keep ``request``; returns the dead letter's id. Raises StoreError when it cannot be kept."""
        row = {
            "connector": _text(connector, 100), "received_at": request.received_at, "error_id": _text(error_id, 100),
            "error": _text(error, 2000), "method": _text(request.method, 10), "subpath": _text(request.subpath, 1000),
            "remote_addr": _text(request.remote_addr, 100),
            "headers": {_text(k): _text(v) for k, v in request.headers.items()},
            "query": {_text(k): _text(v) for k, v in request.query.items()}, "body": bytes(request.body),
        }
        max_kept = self.max_kept

        def run(conn: Any) -> int:
            new_id = conn.execute(insert_dead_letter(row)).inserted_primary_key[0]
            count, _ = conn.execute(count_dead_letters()).one()
            if count > max_kept:
                conn.execute(delete_dead_letters_up_to(new_id - max_kept))
            return int(new_id)

        return await self.store._write(run)

    async def list(self, *, connector: str | None = None, before_id: int | None = None,
                   limit: int = 100) -> list[DeadLetter]:
        stmt = list_dead_letters(connector, before_id, limit)
        return await self.store._read(lambda conn: [_letter(row) for row in conn.execute(stmt)])

    async def get(self, letter_id: int) -> DeadLetter | None:
        stmt = get_dead_letter(letter_id)
        return await self.store._read(lambda conn: next((_letter(r) for r in conn.execute(stmt)), None))

    async def delete(self, letter_id: int) -> bool:
        stmt = delete_dead_letter(letter_id)
        return await self.store._write(lambda conn: conn.execute(stmt).rowcount > 0)
