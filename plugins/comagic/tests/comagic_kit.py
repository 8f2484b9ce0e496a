"""Helpers of the CoMagic connector tests: directory, config and request builders (storage and event
sink are ctid.testing.memory's; fixtures using them live in conftest.py)."""

from __future__ import annotations

from typing import Any

import httpx

from ctid.connector import WebhookRequest, WebhookResult
from ctid.model import Agent
from ctid.testing.memory import MemorySink
from ctid_comagic.config import ComagicConfig
from ctid_comagic.connector import ComagicConnector
from ctid_comagic.testing.fake_calls import Notification
from ctid_comagic.testing.fake_server import FakeComagic

INSTANCE = "cm"
PATH_SECRET = "path-secret-0123456789"
BODY_SECRET = "body-secret-0123456789"
API_KEY = "fake-comagic-key-0123456789"
SOURCE_IP = "37.139.38.215"
#: ctid agent -> CoMagic employee id (the agent's login on the instance)
EMPLOYEES = {"a1": "101", "a2": "102", "a3": "103"}


def employee_rows() -> list[dict[str, Any]]:
    return [
        {"id": 101, "login": "anna", "full_name": "Anna A", "extension": {"extension_phone_number": "201"},
         "phone_numbers": [{"phone_number": "79160000101", "status": "active"}], "groups": [{"group_id": 1, "group_name": "sales"}]},
        {"id": 102, "login": "boris", "full_name": "Boris B", "extension": {"extension_phone_number": "202"},
         "phone_numbers": [], "groups": [{"group_id": 1, "group_name": "sales"}]},
        {"id": 103, "login": "vera", "full_name": "Vera V", "extension": None,
         "phone_numbers": [{"phone_number": "79160000103", "status": "active"}], "groups": []},
    ]


class FakeDirectory:
    def __init__(self) -> None:
        self._agents = {
            "a1": Agent(id="a1", name="Anna", groups=["sales"]),
            "a2": Agent(id="a2", name="Boris", groups=["sales"]),
            "a3": Agent(id="a3", name="Vera", groups=["sales"]),
        }

    def agents(self) -> list[Agent]:
        return list(self._agents.values())

    def get(self, agent_id: str) -> Agent | None:
        return self._agents.get(agent_id)

    def agent_for_login(self, connector: str, login: str) -> str | None:
        return next((a for a, lg in EMPLOYEES.items() if lg == login), None) if connector == INSTANCE else None

    def login_for_agent(self, connector: str, agent_id: str) -> str | None:
        return EMPLOYEES.get(agent_id) if connector == INSTANCE else None

    def agent_for_crm_user(self, crm_user: str) -> str | None:
        return None


def make_config(fake: FakeComagic | None = None, **overrides: Any) -> ComagicConfig:
    base = fake.base_url if fake else "http://127.0.0.1"
    values: dict[str, Any] = {
        "plugin": "comagic", "api_key": API_KEY, "webhook_secret": PATH_SECRET, "body_secret": BODY_SECRET,
        "call_api_url": f"{base}/v4.0", "data_api_url": f"{base}/v2.0", "media_url": base,
        "recording_delay": 10, "recording_retries": 2, "recording_retry_interval": 30, "facts_delay": 60,
    }
    values.update(overrides)
    return ComagicConfig.model_validate(values)


def request(note: Notification | None = None, *, body: bytes | None = None, subpath: str = PATH_SECRET,
            method: str | None = None, query: dict[str, str] | None = None,
            remote: str | None = SOURCE_IP) -> WebhookRequest:
    """A notification as the platform sends it (from the fake's outbox), or a hand-made body."""
    if note is not None:
        method = note.method
        body = note.body
        if note.method == "GET":
            path, _, raw = note.path.partition("?")
            from urllib.parse import parse_qsl
            query = dict(parse_qsl(raw, keep_blank_values=True))
            subpath = path.rsplit("/", 1)[1]
    return WebhookRequest(method or "POST", subpath, {"content-type": "application/json"}, query or {},
                          body or b"", remote)


async def deliver(connector: ComagicConnector, fake: FakeComagic, sink: MemorySink | None = None,
                  notes: list[Notification] | None = None) -> list[WebhookResult]:
    """Hand the fake's pending notifications to the connector; accepted events go to ``sink``."""
    results = []
    for note in notes if notes is not None else fake.take():
        result = await connector.handle_webhook(request(note))
        assert result.status == 200, (note.kind, result.body)
        if sink is not None:
            await sink.submit(result.events)
        results.append(result)
    return results


def transport(fake: FakeComagic) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=fake)
