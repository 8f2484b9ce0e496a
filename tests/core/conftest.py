"""Fixtures for daemon-level tests: a config dict with agents, users, keys, the generic connector
pointing at a fake PBX command endpoint, and the directory CRM with a few contacts."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import hypercorn.config
import hypercorn.trio
import pytest
import trio
from quart import jsonify, request
from quart_trio import QuartTrio

from ctid.builtins.generic import sign
from ctid.testing.daemon import free_port

SECRET = "test-webhook-secret"
API_KEY = "test-admin-api-key-0123456789"
AGENT_KEY = "test-alice-api-key-0123456789"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "super": "super-pw"}


@functools.cache
def _hash(password: str) -> str:
    from werkzeug.security import generate_password_hash

    # Cheap parameters keep the suite fast; production hashes come from `ctid auth hash-password`.
    return generate_password_hash(password, method="pbkdf2:sha256:1000")


CONTACTS = """
- {id: c-1, name: Anna Kuznetsova, company: Romashka LLC, phones: ["+79161234567"], owner: alice}
- {id: c-2, name: Dmitry Volkov, company: Vector, phones: ["+74957770000"], owner: bob}
- {id: c-3, name: Elena Orlova, company: Vector, phones: ["+74957770000"], owner: bob}
"""


class FakePBX:
    """Receives the generic connector's signed commands; can be told to refuse them."""

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []
        self.fail_with: int | None = None
        self.url = ""

    def app(self) -> QuartTrio:
        app = QuartTrio("fake-pbx")

        @app.post("/commands")
        async def commands():
            data = await request.get_json()
            data["_signature"] = request.headers.get("X-Ctid-Signature")
            self.commands.append(data)
            if self.fail_with:
                return jsonify({"error": "refused"}), self.fail_with
            return jsonify({"ok": True, "call_id": "pbx-dial-1" if data["command"] == "dial" else None})

        return app

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        port = free_port()
        config = hypercorn.config.Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = None
        self.url = f"http://127.0.0.1:{port}/commands"
        await hypercorn.trio.serve(self.app(), config, task_status=task_status)


@pytest.fixture
async def fake_pbx(nursery) -> FakePBX:
    pbx = FakePBX()
    await nursery.start(pbx.serve)
    return pbx


def make_config(tmp_path: Path, *, db_url: str | None = None, command_url: str | None = None) -> dict[str, Any]:
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text(CONTACTS)
    generic: dict[str, Any] = {"plugin": "generic", "secret": SECRET}
    if command_url:
        generic["command_url"] = command_url
    return {
        "database": {"url": db_url or f"sqlite:///{tmp_path / 'ctid.db'}"},
        "data_dir": str(tmp_path / "var"),
        "auth": {
            "users": [
                {"username": "alice", "password_hash": _hash(PASSWORDS["alice"]), "role": "agent", "agent": "alice"},
                {"username": "bob", "password_hash": _hash(PASSWORDS["bob"]), "role": "agent", "agent": "bob"},
                {"username": "carol", "password_hash": _hash(PASSWORDS["carol"]), "role": "agent", "agent": "carol"},
                {"username": "super", "password_hash": _hash(PASSWORDS["super"]), "role": "supervisor"},
            ],
            "api_keys": [
                {"name": "admin", "key": API_KEY, "role": "admin"},
                {"name": "alice-key", "key": AGENT_KEY, "role": "agent", "agent": "alice"},
            ],
        },
        "agents": {
            "alice": {"name": "Alice", "extension": "101", "groups": ["sales"]},
            "bob": {"name": "Bob", "extension": "102", "groups": ["sales"]},
            "carol": {"name": "Carol", "extension": "103", "groups": ["sales"]},
        },
        "connectors": {"office": generic},
        "crm": {"plugin": "directory", "contacts": str(contacts)},
    }


@pytest.fixture
def config(tmp_path, fake_pbx) -> dict[str, Any]:
    return make_config(tmp_path, command_url=fake_pbx.url)


async def post_events(app, events: list[dict[str, Any]]) -> None:
    """POST signed generic-connector ``events`` to ``app`` (a RunningDaemon); it must take them."""
    body = json.dumps(events).encode()
    response = await app.client.post("/hooks/office", content=body, headers={"X-Ctid-Signature": sign(SECRET, body)})
    assert response.status_code == 200, response.text


async def stored_calls_loaded(daemon) -> bool:
    """Whether ``daemon``'s stored-calls index is loaded and current: its backplane confirmed the
    sync subscription and no sync message can have been missed since."""
    token = daemon.hub.backplane.continuity(daemon.SYNC_CHANNEL)
    return token is not None and daemon.sync.stored_token == token and daemon.stored_calls.trusted
