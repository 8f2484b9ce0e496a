"""Self-validating connection tokens, so any ctid instance accepts the WebSocket of a negotiate
another instance answered (no sticky sessions, nothing stored server-side).

A token is ``<connectionId>.<expiry>.<mac>`` where mac is HMAC-SHA256 over the connection id,
the expiry (Unix seconds) and the principal's subject, with a secret shared by every instance.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time


def new_connection_id() -> str:
    return secrets.token_urlsafe(16)


class ConnectionTokens:
    def __init__(self, secret: bytes | None = None, *, ttl: float = 60.0):
        #: without a shared secret, only this process can validate its tokens (single instance)
        self.secret = secret or secrets.token_bytes(32)
        self.ttl = ttl

    def _mac(self, connection_id: str, expiry: int, subject: str) -> str:
        message = f"{connection_id}.{expiry}.{subject}".encode()
        digest = hmac.new(self.secret, message, hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, connection_id: str, subject: str, *, now: float | None = None) -> str:
        expiry = int((time.time() if now is None else now) + self.ttl)
        return f"{connection_id}.{expiry}.{self._mac(connection_id, expiry, subject)}"

    def verify(self, token: str, subject: str, *, now: float | None = None) -> str | None:
        """The connection id inside a valid, unexpired token issued for ``subject``; else None."""
        parts = token.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        connection_id, expiry_text, mac = parts
        expiry = int(expiry_text)
        if not hmac.compare_digest(mac, self._mac(connection_id, expiry, subject)):
            return None
        if expiry < (time.time() if now is None else now):
            return None
        return connection_id
