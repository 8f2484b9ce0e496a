"""Fixtures for the CoMagic connector tests: the fake account and a connector wired to it in-process
(``httpx.ASGITransport``), with services built from ``comagic_kit``."""

from __future__ import annotations

from typing import Any

import pytest

from comagic_kit import (
    API_KEY,
    BODY_SECRET,
    INSTANCE,
    PATH_SECRET,
    FakeDirectory,
    employee_rows,
    make_config,
    transport,
)
from ctid.services import Services
from ctid.testing.kit import closing_all
from ctid.testing.memory import MemorySink, MemoryStorage
from ctid_comagic.connector import ComagicConnector
from ctid_comagic.testing.fake_server import FakeComagic


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def services(tmp_path, storage, sink) -> Services:
    return Services(directory=FakeDirectory(), storage_factory=lambda plugin: storage, events=sink,
                    public_url="https://ctid.example.com", data_dir=tmp_path)


@pytest.fixture
def fake() -> FakeComagic:
    return FakeComagic(api_key=API_KEY, instance=INSTANCE, webhook_secret=PATH_SECRET, body_secret=BODY_SECRET,
                       employees=employee_rows())


@pytest.fixture
async def make_connector(fake, services):
    async with closing_all() as keep:

        def factory(*, clock: Any = None, **overrides: Any) -> ComagicConnector:
            return keep(ComagicConnector(INSTANCE, make_config(fake, **overrides), services,
                                         transport=transport(fake), clock=clock))

        yield factory


@pytest.fixture
async def connector(make_connector) -> ComagicConnector:
    connector = make_connector()
    await connector.read_account()
    return connector
