"""The daemon's reconciliation timer pulls each history-capable connector's history and recovers
calls whose webhooks were lost, without duplicating anything (Trio MockClock)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import trio
import trio.testing

from ctid import hookimpl
from ctid.config.loader import load_config_dict
from ctid.connector import Connector, ConnectorConfig
from ctid.daemon import Daemon
from ctid.model import CallEvent, Capability, EventKind, Outcome
from ctid.plugins import get_plugin_manager

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


class HistoryConnector(Connector):
    """A PBX whose webhooks were all lost; only its call history knows the calls."""

    plugin_name = "history-only"
    Config = ConnectorConfig
    capabilities = frozenset({Capability.HISTORY})

    def __init__(self, name, config, services):
        super().__init__(name, config, services)
        self.pulls: list[datetime] = []

    async def history(self, since):
        self.pulls.append(since)
        return [
            CallEvent(connector=self.name, pbx_call_id=f"lost-{i}", kind=EventKind.SUMMARY, key=f"hist-{i}",
                      at=T0 + timedelta(minutes=i), direction=None, remote_number="+79161234567",
                      agent_login="101", outcome=Outcome.ANSWERED, wait_seconds=5, talk_seconds=60,
                      total_seconds=65)
            for i in range(3)
        ]


class Plugin:
    @hookimpl
    def ctid_register_connectors(self):
        return [HistoryConnector]


@pytest.fixture
def clock():
    # SQL runs in threads: jump only after a second of real idleness, so the clock never passes a
    # running query even on a loaded machine
    return trio.testing.MockClock(autojump_threshold=1.0)


async def test_reconciliation_recovers_lost_calls_once(tmp_path, clock):
    pm = get_plugin_manager()
    pm.register(Plugin())
    settings = load_config_dict({
        "database": {"url": f"sqlite:///{tmp_path / 'ctid.db'}"},
        "data_dir": str(tmp_path / "var"),
        "agents": {"alice": {"name": "Alice", "extension": "101"}},
        "connectors": {"pbx": {"plugin": "history-only", "reconcile_interval": 60}},
    }, pm)
    daemon = Daemon(settings, pm)
    daemon.clock = lambda: T0 + timedelta(seconds=trio.current_time())
    await daemon.open()
    try:
        connector = daemon.connectors["pbx"]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon._reconcile_loop, connector)
            await trio.sleep(59)
            assert connector.pulls == []
            await trio.sleep(2)
            assert len(connector.pulls) == 1
            calls = await daemon.store.list_calls(limit=10)
            assert sorted((c["pbx_call_id"], c["outcome"], c["talk_seconds"], c["agent"]) for c in calls) == [
                (f"lost-{i}", "answered", 60.0, "alice") for i in range(3)]
            await trio.sleep(120)  # two more passes see the same history: nothing new, nothing doubled
            assert len(connector.pulls) == 3
            # every pull looks back reconcile_lookback (2 h by default) from its own time
            assert connector.pulls == [T0 + timedelta(seconds=60 * n - 7200) for n in (1, 2, 3)]
            assert len(await daemon.store.list_calls(limit=10)) == 3
            assert sum([len(await daemon.store.events_for_call(c["id"])) for c in calls]) == 3
            nursery.cancel_scope.cancel()
    finally:
        await daemon.store.aclose()


class BrokenHistory(HistoryConnector):
    plugin_name = "history-broken"

    async def history(self, since):
        self.pulls.append(since)
        if len(self.pulls) == 4:
            return []
        from ctid.errors import PBXError

        raise PBXError("HTTP 501: history export is disabled for this tenant")


async def test_a_failing_history_warns_once_until_it_changes(tmp_path, clock, caplog):
    class Plugin2:
        @hookimpl
        def ctid_register_connectors(self):
            return [BrokenHistory]

    caplog.set_level(logging.DEBUG, logger="ctid")
    pm = get_plugin_manager()
    pm.register(Plugin2())
    settings = load_config_dict({
        "database": {"url": f"sqlite:///{tmp_path / 'ctid.db'}"},
        "data_dir": str(tmp_path / "var"),
        "connectors": {"pbx": {"plugin": "history-broken", "reconcile_interval": 10}},
    }, pm)
    daemon = Daemon(settings, pm)
    await daemon.open()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon._reconcile_loop, daemon.connectors["pbx"])
            await trio.sleep(45)
            nursery.cancel_scope.cancel()
    finally:
        await daemon.store.aclose()
    records = [(r.levelname, r.getMessage()) for r in caplog.records if "reconciliation of pbx" in r.getMessage()]
    assert [level for level, _ in records] == ["WARNING", "DEBUG", "DEBUG", "INFO"]
    assert "history export is disabled" in records[0][1] and records[-1][1].endswith("works again")
