"""Helpers of the MegaFon connector tests: a tiny directory, CRM lookup, config builder and push
builders (storage and event sink are ctid.testing.memory's; fixtures using them live in conftest.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import trio

from ctid.connector import WebhookRequest, WebhookResult
from ctid.crm import ContactMatch
from ctid.model import Agent
from ctid_megafon.config import MegafonConfig
from ctid_megafon.connector import MegafonConnector
from ctid_megafon.testing.fake_server import FakeMegafon

INSTANCE = "mf"
TOKEN = "76fsd7tfs-fhjdgfdjsfsk-hfgsdguuuwoeiwey1111"
API_KEY = "fake-api-key-0123456789"
PBX_IP = "193.201.230.155"


class FakeDirectory:
    """Agents a1..a3 with logins on instance ``mf`` (a1 is also CRM user ``crm-anna``)."""

    def __init__(self) -> None:
        self._agents = {
            "a1": Agent(id="a1", name="Anna", extension="701", groups=["sales"], crm_user="crm-anna"),
            "a2": Agent(id="a2", name="Boris", extension="702", groups=["sales"]),
            "a3": Agent(id="a3", name="Vera", extension="703", groups=["sales"]),
        }
        self.logins = {"a1": "anna", "a2": "boris", "a3": "vera"}

    def agents(self) -> list[Agent]:
        return list(self._agents.values())

    def get(self, agent_id: str) -> Agent | None:
        return self._agents.get(agent_id)

    def agent_for_login(self, connector: str, login: str) -> str | None:
        if connector != INSTANCE:
            return None
        return next((a for a, lg in self.logins.items() if lg == login), None)

    def login_for_agent(self, connector: str, agent_id: str) -> str | None:
        return self.logins.get(agent_id) if connector == INSTANCE else None

    def agent_for_crm_user(self, crm_user: str) -> str | None:
        return next((a.id for a in self._agents.values() if a.crm_user == crm_user), None)


class FakeContacts:
    """CRM lookups by E.164 number; ``delay`` simulates a slow CRM."""

    def __init__(self) -> None:
        self.matches: dict[str, list[ContactMatch]] = {}
        self.delay = 0.0
        self.calls: list[tuple[str, float | None]] = []

    async def lookup(self, phone: str, *, budget: float | None = None) -> list[ContactMatch] | None:
        self.calls.append((phone, budget))
        if self.delay:
            await trio.sleep(self.delay)
        return self.matches.get(phone, [])


def make_config(fake: FakeMegafon | None = None, **overrides: Any) -> MegafonConfig:
    values: dict[str, Any] = {
        "plugin": "megafon",
        "crm_token": TOKEN,
        "api_url": fake.base_url if fake else "https://vats100.megapbx.ru",
        "api_key": API_KEY,
        "settle_seconds": 20,
        "recording_delay": 20,
        "recording_retries": 3,
        "recording_retry_interval": 60,
    }
    values.update(overrides)
    return MegafonConfig.model_validate(values)


def request(
    fields: dict[str, Any],
    *,
    token: str | None = TOKEN,
    as_json: bool = False,
    method: str = "POST",
    remote: str | None = PBX_IP,
    received_at: datetime | None = None,
) -> WebhookRequest:
    """A push as the PBX sends it (form-encoded by default)."""
    body_fields = dict(fields)
    if token is not None:
        body_fields["crm_token"] = token
    when = {"received_at": received_at} if received_at is not None else {}
    if method == "GET":
        return WebhookRequest("GET", "", {}, {k: str(v) for k, v in body_fields.items()}, b"", remote, **when)
    if as_json:
        body = httpx.Request("POST", "http://x", json=body_fields).content
        headers = {"content-type": "application/json"}
    else:
        body = urlencode(body_fields).encode()
        headers = {"content-type": "application/x-www-form-urlencoded"}
    return WebhookRequest(method, "", headers, {}, body, remote, **when)


async def push(connector: MegafonConnector, fields: dict[str, Any], **kwargs: Any) -> WebhookResult:
    return await connector.handle_webhook(request(fields, **kwargs))
