"""Who is calling the REST API or the hub: access tokens, API keys and the authorization rules.

Access tokens are signed and time-limited (itsdangerous, a declared dependency) with a secret
from ``auth.secret`` or, when unset, one generated once and kept in the database, so every ctid
instance sharing the database accepts every other instance's tokens. API keys from
``auth.api_keys`` are accepted as bearer tokens too, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import trio
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ctid.auth_hash import verify_password
from ctid.auth_links import LinkSigner
from ctid.auth_throttle import LoginThrottle
from ctid.config.models import AuthConfig, Role
from ctid.errors import AuthError, ForbiddenError


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user or API key."""

    subject: str  # username, or "key:<name>"
    role: Role
    agent: str | None = None

    @property
    def is_supervisor(self) -> bool:
        return self.role in (Role.SUPERVISOR, Role.ADMIN)

    def to_json(self) -> dict:
        return {"subject": self.subject, "role": self.role.value, "agent": self.agent}


class Authenticator:
    """Issues and checks access tokens; checks API keys and passwords from configuration."""

    def __init__(self, config: AuthConfig, secret: str):
        self._config = config
        self._serializer = URLSafeTimedSerializer(secret, salt="ctid-access-token")
        self._users = {user.username: user for user in config.users}
        self._keys = {
            hashlib.sha256(key.key.get_secret_value().encode()).digest(): key for key in config.api_keys
        }
        self.ttl = config.token_ttl
        self.throttle = LoginThrottle(config.throttle)
        self.links = LinkSigner(secret, config.link_ttl)
        self._limiter: trio.CapacityLimiter | None = None  # made inside Trio, on first use

    async def login(self, username: str, password: str, source: str | None = None) -> tuple[str, Principal]:
        """A token for a right password; ``AuthError`` for a wrong one, ``LoginThrottled`` (429) while
        ``username`` or ``source`` (the client's address) must wait (``ctid.auth_throttle``).

        The password check (scrypt: tens of ms of CPU) runs in a worker thread, at most
        ``auth.throttle.password_threads`` at once, so the event loop keeps serving meanwhile."""
        keys = self.throttle.begin(username, source)
        user = self._users.get(username)
        # Verify against a dummy hash for unknown users too, so timing does not reveal usernames.
        stored = user.password_hash.get_secret_value() if user else _DUMMY_HASH
        if self._limiter is None:
            self._limiter = trio.CapacityLimiter(self._config.throttle.password_threads)
        right = await trio.to_thread.run_sync(verify_password, password, stored, limiter=self._limiter)
        if not right or user is None:
            raise AuthError("wrong username or password", error_id="bad_credentials")
        self.throttle.succeeded(keys)
        principal = Principal(subject=user.username, role=user.role, agent=user.agent)
        return self.issue(principal), principal

    def principal_of(self, subject: str) -> Principal:
        """The principal a signed link names (``ctid.auth_links``), as configured *now*."""
        if subject.startswith("key:"):
            for key in self._keys.values():
                if key.name == subject[4:]:
                    return Principal(subject=subject, role=key.role, agent=key.agent)
        elif (user := self._users.get(subject)) is not None:
            return Principal(subject=user.username, role=user.role, agent=user.agent)
        raise AuthError("the link's user is no longer configured", error_id="bad_link")

    def issue(self, principal: Principal) -> str:
        return self._serializer.dumps({"sub": principal.subject, "role": principal.role.value, "agent": principal.agent})

    def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise AuthError("authentication required", error_id="unauthorized")
        digest = hashlib.sha256(token.encode()).digest()
        for known, key in self._keys.items():
            if hmac.compare_digest(known, digest):
                return Principal(subject=f"key:{key.name}", role=key.role, agent=key.agent)
        try:
            data = self._serializer.loads(token, max_age=self.ttl)
        except SignatureExpired as exc:
            raise AuthError("token expired", error_id="token_expired") from exc
        except BadSignature as exc:
            raise AuthError("invalid token", error_id="bad_token") from exc
        user = self._users.get(data.get("sub", ""))
        if user is None or user.role.value != data.get("role") or user.agent != data.get("agent"):
            raise AuthError("token no longer matches a configured user", error_id="bad_token")
        return Principal(subject=user.username, role=user.role, agent=user.agent)


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def require_agent_access(principal: Principal, agent_id: str) -> None:
    """An agent may act only as itself; supervisors and admins as anyone."""
    if principal.is_supervisor or principal.agent == agent_id:
        return
    raise ForbiddenError(f"{principal.subject} may not act for agent {agent_id!r}", error_id="forbidden")


def require_call_access(principal: Principal, participants: set[str]) -> None:
    """An agent may see and command only calls it takes part in."""
    if principal.is_supervisor or (principal.agent is not None and principal.agent in participants):
        return
    raise ForbiddenError("this call belongs to another agent", error_id="forbidden")


def require_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        raise ForbiddenError(f"requires role {' or '.join(r.value for r in roles)}", error_id="forbidden")


_DUMMY_HASH = "scrypt:32768:8:1$ctiddummysalt000$" + "0" * 128
