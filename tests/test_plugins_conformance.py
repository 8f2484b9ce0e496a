"""The built-in generic connector and directory CRM pass ctid.testing's conformance suites, the
same ones every bundled and third-party plugin runs against itself."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ctid.connector import SimulatedRequest
from ctid.secret import sign
from ctid.testing.conformance import ConnectorConformance, CRMConformance
from ctid.testing.fakes import Answer, FakeRequest, FakeServer, json_answer, serve


class FakeCommandPBX(FakeServer):
    """The PBX side of the generic connector's commands (docs/generic-webhook.md): answers each
    signed command with ``{"ok": true}`` (and a call id for dial)."""

    def handle(self, request: FakeRequest) -> Answer:
        command = (request.json or {}).get("command")
        return json_answer(200, {"ok": True, "call_id": "pbx-dial-1" if command == "dial" else None})


class TestGenericConformance(ConnectorConformance):
    plugin_name = "generic"
    instance = "pbx"
    secret = "conformance-secret-0123"

    @pytest.fixture
    async def connector_config(self, nursery) -> dict:
        url = await nursery.start(serve, FakeCommandPBX())
        return {"plugin": "generic", "secret": self.secret, "command_url": f"{url}/commands"}

    def with_wrong_secret(self, request: SimulatedRequest) -> SimulatedRequest:
        headers = {k: v for k, v in request.headers.items() if k.lower() != "x-ctid-signature"}
        return dataclasses.replace(request, headers={**headers, "X-Ctid-Signature": sign("not-the-secret", request.body)})


class TestGenericWithoutCommandsConformance(TestGenericConformance):
    """Without command_url the generic connector declares no command: each one must fail loudly."""

    @pytest.fixture
    def connector_config(self) -> dict:
        return {"plugin": "generic", "secret": self.secret}


class TestDirectoryConformance(CRMConformance):
    plugin_name = "directory"

    @pytest.fixture
    def crm_config(self, tmp_path: Path) -> dict:
        contacts = tmp_path / "contacts.yaml"
        contacts.write_text(f'- {{id: c-1, name: Anna, phones: ["{self.known_phone}"], owner: alice}}\n')
        return {"plugin": "directory", "contacts": str(contacts)}
