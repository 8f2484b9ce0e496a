"""Where the access token is kept: the OS keyring (Windows Credential Manager, macOS Keychain,
Secret Service on Linux) through ``keyring``; a file readable only by the user when no keyring
works (a headless Linux session, CI), said so by ``doctor``."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ctid_launcher.config import config_dir

log = logging.getLogger(__name__)
SERVICE = "ctid-launcher"


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_at: float | None  # unix time; None = never (an API key)

    def due_for_refresh(self, now: float, margin: float = 0.2, ttl: float | None = None) -> bool:
        """Within the last ``margin`` of its life (or 10 minutes, whichever is longer)."""
        if self.expires_at is None:
            return False
        life = ttl or 43_200
        return now >= self.expires_at - max(600.0, life * margin)

    def to_json(self) -> str:
        return json.dumps({"token": self.value, "expires_at": self.expires_at})

    @classmethod
    def from_json(cls, text: str) -> Token | None:
        try:
            data = json.loads(text)
            return cls(str(data["token"]), data.get("expires_at"))
        except (ValueError, KeyError, TypeError):
            return None


def _keyring():
    """The keyring module when a real backend is available, else None."""
    if os.environ.get("CTID_LAUNCHER_KEYRING") == "file":
        return None
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # noqa: BLE001 - a broken keyring configuration must not stop the launcher
        return None
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 1) <= 0:
        return None
    return keyring


class TokenStore:
    """Keeps one token per (server, user)."""

    def __init__(self, server: str, username: str):
        self.account = f"{username}@{server}"
        self.file = config_dir() / "token.json"

    @property
    def where(self) -> str:
        kr = _keyring()
        return f"keyring ({type(kr.get_keyring()).__name__})" if kr else f"file {self.file}"

    def load(self) -> Token | None:
        kr = _keyring()
        if kr is not None:
            try:
                text = kr.get_password(SERVICE, self.account)
                return Token.from_json(text) if text else None
            except Exception as exc:  # noqa: BLE001 - locked/unavailable keyring: try the file
                log.warning("keyring unavailable (%s); using %s", exc, self.file)
        return self._load_file()

    def save(self, token: Token) -> None:
        kr = _keyring()
        if kr is not None:
            try:
                kr.set_password(SERVICE, self.account, token.to_json())
                self._remove_file()
                return
            except Exception as exc:  # noqa: BLE001
                log.warning("keyring unavailable (%s); keeping the token in %s", exc, self.file)
        self.file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps({self.account: json.loads(token.to_json())}))
        os.chmod(self.file, 0o600)

    def delete(self) -> None:
        kr = _keyring()
        if kr is not None:
            try:
                kr.delete_password(SERVICE, self.account)
            except Exception:  # noqa: BLE001 - nothing stored there
                pass
        self._remove_file()

    def _load_file(self) -> Token | None:
        try:
            data = json.loads(Path(self.file).read_text(encoding="utf-8"))
            entry = data[self.account]
            return Token(str(entry["token"]), entry.get("expires_at"))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _remove_file(self) -> None:
        try:
            self.file.unlink()
        except FileNotFoundError:
            pass


def token_from_login(access_token: str, expires_in: int | None) -> Token:
    return Token(access_token, time.time() + expires_in if expires_in else None)
