"""Secrets in plugin configuration and on the wire: one field type, one comparison, one signature.

Configuration values come from the YAML after ``${VAR}`` / ``${file:/run/secrets/name}``
substitution (:mod:`ctid.config.source`), so a secret never has to be written into the file.
:data:`SecretValue` is the pydantic field type of a secret: a ``SecretStr`` (redacted as ``***``
by ``ctid config show`` and in every repr and log line) of at least 8 characters without stray
whitespace, whose error says how to supply it, marked ``writeOnly`` / ``format: password`` in JSON
schemas. Other minimum lengths: ``Annotated[SecretStr, SecretRules(min_length=16)]`` (a type
checker understands it as a ``SecretStr``)::

    from typing import Annotated
    from pydantic import Field, SecretStr
    from ctid.secret import SecretRules, SecretValue

    class MyConfig(ConnectorConfig):
        webhook_token: SecretValue = Field(description="Token the PBX sends with each webhook.")
        api_key: Annotated[SecretStr, SecretRules(min_length=16)] = Field(description="The API key.")

:func:`secrets_equal` compares a received token with the configured one in constant time;
:func:`sign` / :func:`verify_signature` are HMAC-SHA256 signatures of a body (``sha256=<hex>``, the
generic webhook's ``X-Ctid-Signature``); :func:`secret_value` unwraps a ``SecretStr``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, SecretBytes, SecretStr
from pydantic_core import CoreSchema, core_schema

#: The shortest secret :data:`SecretValue` accepts.
DEFAULT_MIN_LENGTH = 8


@dataclass(frozen=True, slots=True)
class SecretRules:
    """pydantic metadata for ``Annotated[SecretStr, SecretRules(...)]``: the checks of a secret.

    .. versionadded:: 2.0
    """

    min_length: int = DEFAULT_MIN_LENGTH

    def check(self, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if len(text) < self.min_length:
            raise ValueError(
                f"must be at least {self.min_length} characters (supply it from the environment with "
                "${NAME} or from a file with ${file:/run/secrets/name})"
            )
        if text != text.strip():
            raise ValueError("has leading or trailing whitespace (a stray newline in the secret file?)")
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        json_schema = handler(schema)
        json_schema.update(writeOnly=True, format="password")
        return json_schema


#: A secret configuration value of at least :data:`DEFAULT_MIN_LENGTH` characters.
SecretValue = Annotated[SecretStr, SecretRules()]
#: A secret of any non-empty length (credentials whose length another system decides).
AnySecret = Annotated[SecretStr, SecretRules(min_length=1)]


def secret_value(value: SecretStr | SecretBytes | str | bytes | None) -> bytes:
    """The bytes of a secret however it is held (UTF-8 for text); empty for None."""
    if isinstance(value, (SecretStr, SecretBytes)):
        value = value.get_secret_value()
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else bytes(value)


def secrets_equal(given: str | bytes | None, expected: SecretStr | SecretBytes | str | bytes | None) -> bool:
    """Whether ``given`` (from a request) is the ``expected`` secret, in constant time.

    An empty or missing value never matches, so an unset secret cannot be "guessed" as empty.
    """
    want = secret_value(expected)
    got = secret_value(given)
    return bool(want) and bool(got) and hmac.compare_digest(got, want)


def sign(secret: SecretStr | str | bytes, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of body with secret>``."""
    return "sha256=" + hmac.new(secret_value(secret), body, hashlib.sha256).hexdigest()


def verify_signature(secret: SecretStr | str | bytes, body: bytes, given: str | None) -> bool:
    """Whether ``given`` (a ``sha256=<hex>`` header, any case, spaces around) signs ``body``."""
    if not given:
        return False
    return secrets_equal(given.strip().lower(), sign(secret, body))
