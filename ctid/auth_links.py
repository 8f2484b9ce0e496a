"""Short-lived signed links: a URL that grants one user one resource of one call for a few minutes.

An ``<audio>`` element cannot send an ``Authorization`` header, and a bearer token in a URL ends up
in access logs, browser history and ``Referer`` headers. So the panel asks ctid for a link instead
(``POST /api/calls/{id}/recording-link`` with its token) and plays that: the link carries the
user's name, an expiry and an HMAC-SHA256 over the resource, the call id, the user and the expiry,
keyed by the installation secret (``auth.secret`` or the one kept in the database). Whoever holds
the link can fetch that one resource until it expires, as that user; the user must still exist
and still see the call when the link is used.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

from ctid.errors import AuthError


class LinkSigner:
    """Signs and checks ``?u=<user>&exp=<unix time>&sig=<hex>`` for a resource of a call."""

    def __init__(self, secret: str, ttl: int):
        self._key = hmac.new(secret.encode(), b"ctid-signed-link", hashlib.sha256).digest()
        self.ttl = ttl

    def _mac(self, resource: str, call_id: str, subject: str, expires: int) -> str:
        message = "\n".join((resource, call_id, subject, str(expires))).encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def query(self, resource: str, call_id: str, subject: str, *, now: float | None = None) -> str:
        """The query string (without ``?``) that grants ``subject`` ``resource`` of ``call_id``."""
        expires = int(now if now is not None else time.time()) + self.ttl
        return urlencode({"u": subject, "exp": expires, "sig": self._mac(resource, call_id, subject, expires)})

    def check(self, resource: str, call_id: str, args: dict[str, str], *, now: float | None = None) -> str:
        """The subject a link's query ``args`` grants ``resource`` of ``call_id`` to; ``AuthError``
        (401, ``bad_link`` / ``link_expired``) otherwise."""
        subject, expires, given = args.get("u", ""), args.get("exp", ""), args.get("sig", "")
        if not subject or not (expires.isascii() and expires.isdigit()) or len(expires) > 12 or not given:
            raise AuthError("the link is incomplete (u, exp and sig are required)", error_id="bad_link")
        if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                                   self._mac(resource, call_id, subject, int(expires)).encode()):
            raise AuthError("the link's signature does not match", error_id="bad_link")
        if int(expires) < (now if now is not None else time.time()):
            raise AuthError("the link has expired; ask for a new one", error_id="link_expired")
        return subject
