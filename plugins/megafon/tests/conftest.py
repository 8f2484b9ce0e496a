"""Fixtures for the MegaFon connector tests: the fake tenant and a connector wired to it
(in-process through ``httpx.ASGITransport``), with services built from ``megafon_kit``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ctid.services import Services
from ctid.testing.kit import closing_all
from ctid.testing.memory import MemorySink, MemoryStorage
from ctid_megafon.connector import MegafonConnector
from ctid_megafon.testing.fake_server import FakeMegafon
from megafon_kit import API_KEY, INSTANCE, FakeContacts, FakeDirectory, make_config


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory()


@pytest.fixture
def contacts() -> FakeContacts:
    return FakeContacts()


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def services(tmp_path, directory, contacts, storage, sink) -> Services:
    return Services(
        directory=directory,
        storage_factory=lambda plugin: storage,
        events=sink,
        contacts=contacts,
        public_url="https://ctid.example.com",
        data_dir=tmp_path,
    )


@pytest.fixture
def fake() -> FakeMegafon:
    return FakeMegafon(
        api_key=API_KEY,
        users=[
            {"login": "anna", "name": "Anna A", "ext": "701", "telnum": "74950000701", "status": "online"},
            {"login": "boris", "name": "Boris B", "ext": "702", "telnum": "74950000702"},
            {"login": "vera", "name": "Vera V", "ext": "703"},
            {"login": "admin", "name": "Admin", "ext": "700", "role": "admin"},
        ],
        groups=[
            {"id": "g1", "name": "Sales", "ext": "600", "users": [{"login": "anna"}, {"login": "boris"}]},
            {"id": "g2", "name": "Support", "ext": "601", "users": [{"login": "vera"}]},
        ],
        page_size=3,
    )


@pytest.fixture
async def make_connector(fake, services):
    async with closing_all() as keep:

        def factory(**overrides: Any) -> MegafonConnector:
            return keep(MegafonConnector(INSTANCE, make_config(fake, **overrides), services,
                                         transport=httpx.ASGITransport(app=fake)))

        yield factory


@pytest.fixture
def connector(make_connector) -> MegafonConnector:
    return make_connector()


