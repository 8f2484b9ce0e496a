"""Fixtures of the report tests: the golden history in a migrated database (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from ctid.config.models import ReportsConfig
from ctid.reports.engine import ReportContext
from ctid.store import engine as engines
from ctid.store import migrate

from .history import load, sales_facts

SETTINGS = ReportsConfig(
    timezone="Europe/Moscow", service_level_seconds=20, short_abandon_seconds=5, abandon_treatment="negative",
    short_call_seconds=10, target_talk_seconds=30, callback_sla_minutes=30,
    campaigns=[{"name": "Autumn", "numbers": ["+74950000001"], "spend": 100.0}],
    tariffs=[{"direction": "mobile", "per_minute": 2.0}],
)
NAMES = {"alice": "Alice Smirnova", "bob": "Bob Ivanov"}


@pytest.fixture
def golden(db_url):
    migrate.upgrade(db_url)
    engine = engines.create(db_url)
    load(engine)
    yield ReportContext(engine, SETTINGS, NAMES, sales_facts)
    engine.dispose()
