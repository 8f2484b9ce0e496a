"""Self-validating connection tokens: negotiate's ``connectionToken``, enough on its own to open the
hub's WebSocket (``GET /hub?id=<token>``, no bearer token in the URL), on any ctid instance
(no sticky sessions, nothing stored server-side).

A token is ``<connectionId>.<expiry>.<who>.<mac>``: ``who`` is base64url JSON
``[subject, role, agent]`` of the principal that negotiated, ``expiry`` Unix seconds, and ``mac``
HMAC-SHA256 (truncated to 144 bits) over a version tag and the three other parts, keyed by a
secret every instance shares. The hub re-resolves the subject when the WebSocket opens, so a
removed user or API key cannot use a token it got before (docs/hub-protocol.md, section 1).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

_VERSION = b"ctid-hub-connection-token/2"
_MAX_TOKEN = 2048  # a real one is ~120 characters; longer ones are not even parsed


def new_connection_id() -> str:
    return secrets.token_urlsafe(16)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def role_name(role: Any) -> str:
    """``Role.AGENT`` and ``"agent"`` alike."""
    return str(getattr(role, "value", role))


@dataclass(frozen=True, slots=True)
class ConnectionClaims:
    """What a valid connection token says: the connection and who negotiated it."""

    connection_id: str
    subject: str
    role: str
    agent: str | None
    expiry: int


class ConnectionTokens:
    def __init__(self, secret: bytes | None = None, *, ttl: float = 60.0):
        #: without a shared secret, only this process can validate its tokens (single instance)
        self.secret = secret or secrets.token_bytes(32)
        self.ttl = ttl

    def _mac(self, connection_id: str, expiry: str, who: str) -> bytes:
        message = b"\n".join((_VERSION, connection_id.encode("utf-8", "surrogatepass"), expiry.encode(),
                              who.encode("utf-8", "surrogatepass")))
        return _b64(hmac.new(self.secret, message, hashlib.sha256).digest()[:18]).encode()

    def issue(self, connection_id: str, principal: Any, *, now: float | None = None) -> str:
        """A token for ``connection_id`` naming ``principal`` (``subject``, ``role``, ``agent``)."""
        expiry = str(int((time.time() if now is None else now) + self.ttl))
        who = _b64(json.dumps([principal.subject, role_name(principal.role), principal.agent],
                              separators=(",", ":")).encode())
        return f"{connection_id}.{expiry}.{who}.{self._mac(connection_id, expiry, who).decode()}"

    def verify(self, token: str, *, now: float | None = None) -> ConnectionClaims | None:
        """The claims of a token this deployment issued that has not expired; None for anything
        else (malformed, forged, expired, any text at all: never raises)."""
        if not isinstance(token, str) or len(token) > _MAX_TOKEN:
            return None
        parts = token.split(".")
        if len(parts) != 4:
            return None
        connection_id, expiry, who, mac = parts
        if not (connection_id and expiry.isascii() and expiry.isdigit() and len(expiry) <= 12):
            return None
        if not hmac.compare_digest(mac.encode("utf-8", "surrogatepass"), self._mac(connection_id, expiry, who)):
            return None
        if int(expiry) < (time.time() if now is None else now):
            return None
        try:  # signed by us, so well-formed; checked anyway (a secret shared with an older version)
            subject, role, agent = json.loads(base64.urlsafe_b64decode(who + "=" * (-len(who) % 4)))
        except (ValueError, TypeError, binascii.Error):
            return None
        if not (isinstance(subject, str) and isinstance(role, str) and (agent is None or isinstance(agent, str))):
            return None
        return ConnectionClaims(connection_id, subject, role, agent, int(expiry))
