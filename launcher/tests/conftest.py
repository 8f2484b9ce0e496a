"""Shared fixtures of the launcher's tests: an isolated config home and no real keyring."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CTID_LAUNCHER_HOME", str(tmp_path / "launcher-home"))
    monkeypatch.setenv("CTID_LAUNCHER_LANG", "en")
