"""One-time sign-in codes: hand a signed-in session to a browser without a token in any URL.

The desktop launcher (or any client holding an access token) asks for a code
(``POST /api/auth/handoff``) and opens ``/panel/#code=<code>``; the panel redeems the code once
(``POST /api/auth/handoff/redeem``) for an access token of its own. A code names the user, lives
``CODE_TTL`` seconds, and is signed with the installation secret (so any ctid instance sharing the
database redeems it); it works once: the first redemption writes the code's nonce into the shared
``settings`` table, and a second one, on any instance, finds it there and is refused. Only users
(not API keys) can hand over a session: a panel signed in with an API key could not be signed out.
"""

from __future__ import annotations

import secrets
from typing import Any

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

from ctid.auth import Principal
from ctid.config.models import Role
from ctid.errors import AuthError, RequestError

CODE_TTL = 60  # seconds: long enough to start a browser, short enough to be useless in a history file
_USED = "handoff-used:"  # settings key prefix of redeemed nonces


class HandoffCodes:
    def __init__(self, secret: str, store: Any):
        self._serializer = URLSafeTimedSerializer(secret, salt="ctid-handoff-code")
        self._store = store
        self.ttl = CODE_TTL

    def issue(self, principal: Principal) -> str:
        if principal.subject.startswith("key:"):
            raise RequestError("an API key cannot hand over a session; sign in with a user",
                               error_id="handoff_needs_user")
        return self._serializer.dumps({"sub": principal.subject, "role": principal.role.value,
                                       "agent": principal.agent, "n": secrets.token_urlsafe(16)})

    async def redeem(self, code: Any, auth: Any) -> tuple[str, Principal]:
        """A fresh access token for the code's user; ``AuthError`` (401 ``bad_code``) for a wrong,
        expired or already used code or a user that no longer exists."""
        if not isinstance(code, str) or not code or len(code) > 1000:
            raise RequestError("code must be a non-empty string", error_id="bad_code_format")
        try:
            data = self._serializer.loads(code, max_age=self.ttl)
        except SignatureExpired as exc:
            raise AuthError("the sign-in code has expired; open the panel again", error_id="code_expired") from exc
        except (BadData, UnicodeError) as exc:  # a forged code, or one with lone surrogates from JSON
            raise AuthError("not a sign-in code", error_id="bad_code") from exc
        nonce, mine = str(data.get("n", "")), secrets.token_hex(16)
        if not nonce or await self._store.set_setting_if_absent(_USED + nonce, mine) != mine:
            raise AuthError("the sign-in code was used already", error_id="bad_code")
        try:
            principal = Principal(subject=str(data["sub"]), role=Role(data["role"]), agent=data.get("agent"))
        except (KeyError, ValueError) as exc:
            raise AuthError("not a sign-in code", error_id="bad_code") from exc
        token = auth.issue(principal)
        return token, auth.authenticate(token)  # refuses a user removed or changed since the code
