"""Fixtures: the fake Dynamics served over https on a free port, a tiny agent directory, adapter factories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ctid.model import Agent, Call, CallState, Direction, Outcome, Task, call_id_for, task_id_for
from ctid.services import Services

from ctid_dynamics.adapter import DynamicsAdapter
from ctid_dynamics.config import DynamicsConfig
from ctid_dynamics.testing.fake_dynamics import FakeDynamics, serve_fake

MANAGER_ID = "11111111-1111-4111-8111-111111111111"


class FakeDirectory:
    """The agent directory the core would build from config."""

    def __init__(self, agents: list[Agent]):
        self._agents = {agent.id: agent for agent in agents}

    def agents(self) -> list[Agent]:
        return list(self._agents.values())

    def get(self, agent_id: str) -> Agent | None:
        return self._agents.get(agent_id)

    def agent_for_login(self, connector: str, login: str) -> str | None:
        return next((a.id for a in self._agents.values() if a.extension == login), None)

    def login_for_agent(self, connector: str, agent_id: str) -> str | None:
        agent = self._agents.get(agent_id)
        return agent.extension if agent else None

    def agent_for_crm_user(self, crm_user: str) -> str | None:
        return next((a.id for a in self._agents.values() if a.crm_user == crm_user), None)


class World:
    """The seeded fake organization and the ids tests refer to."""

    def __init__(self, fake: FakeDynamics):
        self.fake = fake
        self.alice_user = fake.add_user("Alice Agent", domainname="alice@contoso.example")
        self.bob_user = fake.add_user("Bob Agent", domainname="bob@contoso.example", email="bob@contoso.example")
        self.manager_user = fake.add_user("Mary Manager", domainname="mary@contoso.example")
        self.acme = fake.add_account("Acme Ltd", telephone1="+7 495 000-00-01")
        # Known caller: typed in national format, owned by Bob.
        self.jane = fake.add_contact("Jane Doe", owner=self.bob_user, account=self.acme, telephone1="8 (495) 123-45-67")
        # Three contacts share an office number.
        self.shared = [
            fake.add_contact(f"Shared {n}", account=self.acme, **{field: "+74957770000"})
            for n, field in ((1, "telephone1"), (2, "mobilephone"), (3, "telephone2"))
        ]
        self.lead = fake.add_lead("Leo Lead", companyname="Leads Inc", mobilephone="+79161112233")
        self.directory = FakeDirectory([
            Agent(id="alice", name="Alice Agent", extension="101", groups=["sales"], crm_user=self.alice_user),
            Agent(id="bob", name="Bob Agent", extension="102", groups=["sales"], crm_user="bob@contoso.example"),
            Agent(id="mary", name="Mary Manager", extension="100", groups=["sales"], crm_user=self.manager_user),
            Agent(id="nocrm", name="No CRM", extension="103", groups=["support"]),
        ])


@pytest.fixture
def fake() -> FakeDynamics:
    return FakeDynamics()


@pytest.fixture
def world(fake: FakeDynamics) -> World:
    return World(fake)


@pytest.fixture
async def ca_file(fake: FakeDynamics, tmp_path) -> AsyncIterator[Any]:
    async with serve_fake(fake, tmp_path) as ca:
        yield ca


def config_dict(fake: FakeDynamics, ca_file: Any, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "plugin": "dynamics",
        "url": fake.url,
        "auth": {
            "type": "client_credentials",
            "tenant": fake.tenant,
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
            "authority": f"{fake.url}/{fake.tenant}",
            "instance_discovery": False,
        },
        "ca_bundle": str(ca_file),
        "callback_task": {"group_managers": {"sales": "mary"}},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


@pytest.fixture
async def make_adapter(fake: FakeDynamics, world: World, ca_file: Any) -> AsyncIterator[Callable[..., DynamicsAdapter]]:
    made: list[DynamicsAdapter] = []

    def make(**overrides: Any) -> DynamicsAdapter:
        config = DynamicsConfig.model_validate(config_dict(fake, ca_file, **overrides))
        adapter = DynamicsAdapter(config, Services(directory=world.directory, default_region="RU"))
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
async def adapter(make_adapter: Callable[..., DynamicsAdapter]) -> DynamicsAdapter:
    return make_adapter()


T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def make_call(
    pbx_id: str,
    number: str,
    *,
    agent: str | None = "alice",
    direction: Direction = Direction.INBOUND,
    outcome: Outcome = Outcome.ANSWERED,
    start: datetime = T0,
    talk: float = 125,
) -> Call:
    answered = outcome is Outcome.ANSWERED
    return Call(
        id=call_id_for("pbx", pbx_id), connector="pbx", pbx_call_id=pbx_id, direction=direction,
        state=CallState.ENDED, outcome=outcome, remote_number=number, line_number="+74950001122",
        agent=agent if answered else None, group="sales", started_at=start,
        answered_at=start + timedelta(seconds=8) if answered else None,
        ended_at=start + timedelta(seconds=8 + (talk if answered else 30)),
        wait_seconds=8 if answered else 38, talk_seconds=talk if answered else 0,
        agents=[agent] if answered and agent else [],
    )


def make_task(number: str, calls: list[Call], *, owner: str | None = None, group: str | None = "sales") -> Task:
    return Task(
        id=task_id_for(number, calls[0].id), number=number, missed_calls=[c.id for c in calls],
        first_missed_at=calls[0].started_at, last_missed_at=calls[-1].started_at, owner=owner, group=group,
        line_number="+74950001122",
    )
