"""ctid.supervise: plugin failures become PluginError, are logged once, counted, shown until the
plugin works again; a failing task is restarted with capped exponential backoff (MockClock)."""

from __future__ import annotations

import functools
import logging

import pytest
import trio
import trio.testing

from ctid.errors import PBXError, PluginError
from ctid.metrics import Metrics
from ctid.supervise import Backoff, Supervisor


async def test_call_turns_a_foreign_exception_into_a_recorded_plugin_error(caplog):
    caplog.set_level(logging.DEBUG, logger="ctid")
    metrics = Metrics()
    supervisor = Supervisor(metrics)

    async def broken(phone):
        raise KeyError(phone)

    for phone in ("+7914", "+7915", "+7916"):  # the same failure, each naming other data
        with pytest.raises(PluginError, match="KeyError") as info:
            await supervisor.call("crm", "lookup", broken, phone)
        assert isinstance(info.value.__cause__, KeyError) and info.value.status == 502
    assert supervisor.health() == {"crm": {"ok": False, "failures": [
        {"where": "lookup", "error": "KeyError: '+7916'", "count": 3}]}}
    assert metrics.plugin_errors.labels(plugin="crm", where="lookup")._value.get() == 3
    assert len([r for r in caplog.records if r.exc_info]) == 1  # the traceback once, not per failure

    async def works(phone):
        return [phone]

    assert await supervisor.call("crm", "lookup", works, "+7916") == ["+7916"]
    assert supervisor.health() == {}


async def test_call_passes_ctid_errors_through_unrecorded():
    supervisor = Supervisor(Metrics())

    async def refused():
        raise PBXError("HTTP 503")

    with pytest.raises(PBXError):
        await supervisor.call("pbx", "dial", refused)
    assert supervisor.health() == {}


def test_backoff_doubles_up_to_its_cap_and_resets_after_a_healthy_run():
    backoff = Backoff(first=1, cap=8, healthy=60)
    assert [backoff.delay(0.1) for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    assert backoff.delay(61) == 1
    assert backoff.delay(0) == 2


async def test_keep_running_restarts_with_backoff_and_starts_once(autojump_clock):
    supervisor = Supervisor(Metrics())
    starts: list[float] = []
    fail_until = 5

    async def task(*, task_status=trio.TASK_STATUS_IGNORED):
        starts.append(trio.current_time())
        if len(starts) == 2:
            task_status.started("up")  # started once; later restarts do not start again
        if len(starts) <= fail_until:
            await trio.sleep(0.5)
            raise ConnectionResetError("PBX closed the stream")
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        run = functools.partial(supervisor.keep_running, backoff=Backoff(first=1, cap=4, healthy=60))
        value = await nursery.start(run, "avaya", "run", task)
        assert value is None  # the first run failed before it started: start-up went on at once
        await trio.sleep(60)
        # runs at 0, then 0.5+1, then +0.5+2, +0.5+4, +0.5+4 (capped), then it stays up
        assert [round(t, 1) for t in starts] == [0.0, 1.5, 4.0, 8.5, 13.0, 17.5]
        assert supervisor.restarts == {"avaya": 5}
        health = supervisor.health()
        assert health["avaya"]["failures"][0]["error"] == "ConnectionResetError: PBX closed the stream"
        await trio.sleep(60)  # the last restart has run as long as a healthy run: green again
        assert supervisor.health() == {}
        nursery.cancel_scope.cancel()


async def test_keep_running_passes_started_through(autojump_clock):
    supervisor = Supervisor()

    async def task(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started(42)
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        assert await nursery.start(supervisor.keep_running, "x", "run", task) == 42
        nursery.cancel_scope.cancel()
