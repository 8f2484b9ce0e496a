"""Fixtures: the fake Dynamics served over https on a free port, a tiny agent directory, adapter factories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ctid.model import Agent
from ctid.services import Services
from ctid.testing.kit import closing_all
from ctid_dynamics.adapter import DynamicsAdapter
from ctid_dynamics.config import DynamicsConfig
from ctid_dynamics.testing.factories import FakeDirectory
from ctid_dynamics.testing.fake_dynamics import FakeDynamics, serve_fake

MANAGER_ID = "11111111-1111-4111-8111-111111111111"


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
        if isinstance(value, dict) and isinstance(data.get(key), dict) and "type" not in value:
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


@pytest.fixture
async def make_adapter(fake: FakeDynamics, world: World, ca_file: Any) -> AsyncIterator[Callable[..., DynamicsAdapter]]:
    async with closing_all() as keep:

        def make(**overrides: Any) -> DynamicsAdapter:
            config = DynamicsConfig.model_validate(config_dict(fake, ca_file, **overrides))
            return keep(DynamicsAdapter(config, Services(directory=world.directory, default_region="RU")))

        yield make


@pytest.fixture
async def adapter(make_adapter: Callable[..., DynamicsAdapter]) -> DynamicsAdapter:
    return make_adapter()


@pytest.fixture
def crm_config(fake: FakeDynamics, ca_file: Any) -> Callable[..., dict[str, Any]]:
    """The ``crm:`` section pointing at the served fake, with overrides."""
    return lambda **overrides: config_dict(fake, ca_file, **overrides)
