"""The launcher's settings (a small JSON file in the user's config directory) and its paths."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import platformdirs

APP = "ctid-launcher"


def config_dir() -> Path:
    """``CTID_LAUNCHER_HOME`` (tests, portable installs) or the OS's per-user config directory."""
    home = os.environ.get("CTID_LAUNCHER_HOME")
    return Path(home) if home else Path(platformdirs.user_config_dir(APP, appauthor=False))


def log_dir() -> Path:
    home = os.environ.get("CTID_LAUNCHER_HOME")
    return Path(home) / "logs" if home else Path(platformdirs.user_log_dir(APP, appauthor=False))


class SettingsError(Exception):
    """The settings file is unreadable or has a bad value (the message names the key)."""


@dataclass(slots=True)
class Settings:
    server: str = ""  # e.g. https://ctid.example.com (the panel is at {server}/panel/)
    username: str = ""  # the ctid user the token belongs to
    agent: str = ""  # the ctid agent of that user (filled in at login)
    on_login: str = "available"  # "available" | "none": what the launcher sets at logon
    open_on: str = "ring"  # "ring" | "answer" | "never": when to open the CRM record
    lease_seconds: int = 60  # the presence lease asked from ctid; renewed every third of it
    language: str = ""  # "", "ru" or "en" ("" = the OS locale)
    tray: bool = True

    def validate(self) -> Settings:
        choices = {"on_login": ("available", "none"), "open_on": ("ring", "answer", "never"),
                   "language": ("", "ru", "en")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise SettingsError(f"{key}: must be one of {', '.join(repr(a) for a in allowed)}")
        if not isinstance(self.lease_seconds, int) or not 5 <= self.lease_seconds <= 3600:
            raise SettingsError("lease_seconds: must be an integer from 5 to 3600")
        if self.server and not self.server.startswith(("http://", "https://")):
            raise SettingsError("server: must start with http:// or https://")
        self.server = self.server.rstrip("/")
        return self

    @property
    def hub_url(self) -> str:
        return f"{self.server}/hub"


def settings_path() -> Path:
    return config_dir() / "settings.json"


def load() -> Settings:
    path = settings_path()
    if not path.exists():
        return Settings()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: must be a JSON object")
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"{path}: unknown key {unknown[0]!r}")
    try:
        return Settings(**data).validate()
    except TypeError as exc:
        raise SettingsError(f"{path}: {exc}") from exc


def save(settings: Settings) -> None:
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(settings), indent=2) + "\n", encoding="utf-8")
