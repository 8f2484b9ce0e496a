"""Password hashes for ``auth.users[].password_hash``: scrypt through ``werkzeug.security``.

``ctid auth hash-password`` prints :func:`hash_password`'s result; REST login checks a password
with :func:`verify_password`. The format is werkzeug's ``method$salt$hex`` (for example
``scrypt:32768:8:1$<salt>$<hex>``); ``pbkdf2`` hashes made by other werkzeug tools are accepted too.
"""

from __future__ import annotations

import re

from pydantic import SecretStr
from werkzeug.security import check_password_hash, generate_password_hash

#: Method used for new hashes (werkzeug's default parameters: N=32768, r=8, p=1).
METHOD = "scrypt"

_HASH = re.compile(r"^(scrypt|pbkdf2)(:[A-Za-z0-9:]+)?\$[^$\s]+\$[0-9a-f]+$")


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password``. Refuses an empty password."""
    if not password:
        raise ValueError("the password is empty")
    return generate_password_hash(password, method=METHOD)


def looks_like_hash(value: str) -> bool:
    """Whether ``value`` has the shape of a hash :func:`verify_password` can check (not a plain password)."""
    return bool(_HASH.match(value))


def verify_password(password: str, password_hash: str | SecretStr) -> bool:
    """Whether ``password`` matches ``password_hash``; False for a malformed hash (never raises)."""
    if isinstance(password_hash, SecretStr):
        password_hash = password_hash.get_secret_value()
    if not password or not looks_like_hash(password_hash):
        return False
    try:
        return check_password_hash(password_hash, password)
    except (ValueError, TypeError):
        return False
