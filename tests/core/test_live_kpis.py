"""Live KPIs from the switchboard: today's figures with the reports' formulas, "now" from live state,
seeded from the store after a restart, pushed to supervisors only and throttled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import trio

from ctid.config.models import ReportsConfig
from ctid.kpi_live import LiveKPIs
from ctid.model import Agent, Call, CallState, Direction, Outcome, Presence
from ctid.testing.daemon import eventually, running_daemon

from .conftest import post_events

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _call(cid, *, minutes_ago, state=CallState.ENDED, wait=10.0, talk=None, direction=Direction.INBOUND,
          group="sales"):
    start = NOW - timedelta(minutes=minutes_ago)
    answered = talk is not None or state in (CallState.TALKING, CallState.HELD)
    return Call(id=cid, connector="o", pbx_call_id=cid, direction=direction, state=state,
                outcome=(Outcome.ANSWERED if answered else Outcome.MISSED) if state is CallState.ENDED else None,
                started_at=start, answered_at=start + timedelta(seconds=wait) if answered else None,
                wait_seconds=wait if state is not CallState.RINGING else None, talk_seconds=talk, group=group)


def test_today_and_now():
    live = [_call("r", minutes_ago=1, state=CallState.RINGING), _call("t", minutes_ago=3, state=CallState.TALKING,
                                                                       wait=30)]
    agents = {"a": Agent("a", "A", status=Presence.AVAILABLE), "b": Agent("b", "B", status=Presence.AWAY,
                                                                         current_call="t")}
    sb = SimpleNamespace(calls={c.id: c for c in live}, agents=agents)
    kpis = LiveKPIs(sb, ReportsConfig(timezone="Europe/Moscow"), clock=lambda: NOW)
    kpis.seed([
        _call("a1", minutes_ago=30, wait=10, talk=60), _call("m1", minutes_ago=20, wait=40),
        _call("s1", minutes_ago=10, wait=2),  # a short abandon
        _call("y", minutes_ago=60 * 16, wait=5, talk=10),  # yesterday in Moscow (20:00 the day before)
        _call("o", minutes_ago=5, wait=3, talk=20, direction=Direction.OUTBOUND),
        *live,
    ])
    data = kpis.snapshot()
    today = data["today"]
    assert (today["offered"], today["answered"], today["missed"], today["short_abandons"]) == (3, 2, 1, 1)
    assert today["answer_rate"] == 2 / 3 and today["service_level"] == 1 / 3  # a1 within 20 s; t waited 30
    assert today["asa"] == 20.0 and today["avg_talk"] == 40.0 and today["outbound"] == 1
    now = data["now"]
    assert (now["ringing"], now["talking"], now["agents"]["busy"], now["agents"]["available"]) == (1, 1, 1, 1)
    assert now["queues"]["sales"]["ringing"] == 1 and now["oldest_ringing_since"] == "2026-03-02T11:59:00.000Z"


async def test_throttled_at_most_one_push_per_interval(autojump_clock):
    sb = SimpleNamespace(calls={}, agents={})
    kpis = LiveKPIs(sb, ReportsConfig(live_interval=5), clock=lambda: NOW)
    pushed: list[float] = []
    changed = SimpleNamespace(calls=[_call("x", minutes_ago=1)], agents=[])
    async with trio.open_nursery() as nursery:
        await nursery.start(kpis.run, lambda payload: pushed.append(trio.current_time()))
        start = trio.current_time()
        for _ in range(10):  # a burst: the first change at once, the rest in one push 5 s later
            kpis.observe(changed)
            await trio.sleep(0.1)
        await trio.sleep(10)
        assert [round(t - start, 1) for t in pushed] == [0.0, 5.0]
        kpis.observe(SimpleNamespace(calls=[], agents=[]))  # nothing shown changed: no push
        await trio.sleep(10)
        assert len(pushed) == 2
        nursery.cancel_scope.cancel()


async def test_pushed_to_supervisors_only(config):
    config["reports"] = {"live_interval": 0.1}
    async with running_daemon(config) as app:
        sent = []
        app.daemon.hub.publish = lambda target, payload, groups: sent.append((target, groups, payload))
        snapshot = await app.daemon.commands.snapshot(SimpleNamespace(is_supervisor=True, agent=None,
                                                                      to_json=lambda: {}))
        assert snapshot["kpis"]["now"]["ringing"] == 0
        await post_events(app, [{"id": "k1", "event": "ring", "call_id": "k1", "from": "+79161234567",
                                 "agent": "101"}])
        async def pushed_ringing():
            return any(s[0] == "kpisUpdated" and s[2]["now"]["ringing"] == 1 for s in sent)

        await eventually(pushed_ringing)
        assert all(groups == {"supervisors"} for target, groups, _ in sent if target == "kpisUpdated")
        agent_view = await app.daemon.commands.snapshot(SimpleNamespace(is_supervisor=False, agent="alice",
                                                                        to_json=lambda: {}))
        assert agent_view["kpis"] is None
