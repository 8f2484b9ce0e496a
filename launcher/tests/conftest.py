"""Shared fixtures of the launcher's tests: an isolated config home, and a real ``ctid serve``."""

from __future__ import annotations

import pytest
import yaml

from ctid.testing.daemon import ServeProcess
from launcher_support import PASSWORDS, SECRET


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CTID_LAUNCHER_HOME", str(tmp_path / "launcher-home"))
    monkeypatch.setenv("CTID_LAUNCHER_LANG", "en")


def _hash(password: str) -> str:
    from werkzeug.security import generate_password_hash

    return generate_password_hash(password, method="pbkdf2:sha256:1000")


@pytest.fixture
def ctid_server(tmp_path):
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text('- {id: c-1, name: Anna Kuznetsova, company: Romashka LLC, phones: ["+79161234567"]}\n')
    config = {
        "database": {"url": f"sqlite:///{tmp_path / 'ctid.db'}"},
        "data_dir": str(tmp_path / "var"),
        "auth": {"users": [
            {"username": "alice", "password_hash": _hash(PASSWORDS["alice"]), "role": "agent", "agent": "alice"},
            {"username": "super", "password_hash": _hash(PASSWORDS["super"]), "role": "supervisor"},
        ]},
        "agents": {"alice": {"name": "Alice", "extension": "101"}, "bob": {"name": "Bob", "extension": "102"}},
        "connectors": {"office": {"plugin": "generic", "secret": SECRET}},
        "crm": {"plugin": "directory", "contacts": str(contacts)},
    }
    path = tmp_path / "ctid.yaml"
    path.write_text(yaml.safe_dump(config))
    server = ServeProcess(path)
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()
