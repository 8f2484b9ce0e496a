"""The connector as ctid sees it: entry point, configuration, health, simulation, user import."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from ctid.connector import SimulationContext
from ctid.errors import RequestError
from ctid.model import Capability, EventKind, Outcome, utcnow
from ctid.plugins import get_plugin_manager
from ctid_megafon.__main__ import _import, app
from ctid_megafon.connector import MegafonConnector
from ctid_megafon.testing.fake_server import serve
from megafon_kit import API_KEY, TOKEN, make_config, request

START = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_entry_point_registers_the_connector():
    pm = get_plugin_manager()
    assert pm.connector_classes()["megafon"] is MegafonConnector
    assert MegafonConnector.capabilities == frozenset(
        {Capability.DIAL, Capability.DND, Capability.RECORDINGS, Capability.HISTORY})
    assert MegafonConnector.accepts_webhooks


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"crm_token": "short"}, "at least 8"),
        ({"api_url": "vats100.megapbx.ru"}, "http(s) URL"),
        ({"api_url": "https://x.megapbx.ru/sys/crm_api.wcgp"}, "api_generation: legacy"),
        ({"api_generation": "legacy", "api_url": "https://x.megapbx.ru/crmapi/v1"}, "api_generation: rest"),
        ({"api_generation": "soap"}, "rest"),
        ({"allowed_networks": ["not-a-network"]}, "allowed_networks"),
        ({"reconcile_interval": 1}, "reconcile_interval"),
        ({"contact_budget": 0}, "contact_budget"),
        ({"unknown_key": 1}, "unknown_key"),
    ],
)
def test_config_errors(overrides, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_config(**overrides)


def test_config_endpoints_and_secrets():
    rest = make_config(api_url="https://vats1.megapbx.ru/")
    assert rest.endpoint() == "https://vats1.megapbx.ru/crmapi/v1"
    assert make_config(api_url="https://x.vpbx.kcell.kz/crmapi/v1").endpoint() == "https://x.vpbx.kcell.kz/crmapi/v1"
    legacy = make_config(api_generation="legacy", api_url="https://vats1.megapbx.ru")
    assert legacy.endpoint() == "https://vats1.megapbx.ru/sys/crm_api.wcgp"
    assert TOKEN not in repr(rest) and API_KEY not in repr(rest)  # secrets never printed
    assert rest.reconcile_interval == 300 and rest.settle_seconds == 20


# -- health -----------------------------------------------------------------------------------------


async def test_health_ok_reports_users_and_mapping(connector):
    health = await connector.health()
    assert health.ok, health.checks
    assert "4 users readable" in health.checks["api"]
    assert health.checks["history"].startswith("history pull works")
    # directory: anna, boris, vera mapped; `admin` is a PBX user without an agent
    assert health.checks["agents"].startswith("3 agents mapped; PBX users without an agent: admin")
    assert "crm_token configured" in health.checks["webhook"]


async def test_health_bad_key_is_not_ok(make_connector):
    health = await make_connector(api_key="wrong-key").health()
    assert not health.ok and "HTTP 401" in health.checks["api"] and "history" not in health.checks


async def test_health_history_disabled_is_reported_not_fatal(connector, fake):
    fake.history_enabled = False
    health = await connector.health()
    assert health.ok and "disabled" in health.detail
    assert "501" in health.checks["history"]


async def test_health_legacy_api(make_connector):
    health = await make_connector(api_generation="legacy").health()
    assert health.ok and "(legacy); 4 users readable" in health.checks["api"]


async def test_health_unreachable_pbx(make_connector, fake):
    fake.throttle(10)  # keeps answering 429
    health = await make_connector().health()
    assert not health.ok and "429" in health.checks["api"]


# -- simulation -------------------------------------------------------------------------------------


def _pushes(requests):
    return [dict(parse_qsl(r.body.decode())) for r in requests]


async def test_simulated_group_call_is_native_form_posts(connector):
    ctx = SimulationContext(caller="+79161234567", agent="anna", others=["boris", "vera"], line="+74950000001",
                            group="sales", start=START)
    requests = connector.simulate("group", ctx)
    assert all(r.path == "/hooks/mf" and r.method == "POST" for r in requests)
    assert all(r.headers == {"content-type": "application/x-www-form-urlencoded"} for r in requests)
    pushes = _pushes(requests)
    assert all(p["crm_token"] == TOKEN for p in pushes)
    assert [(p["cmd"], p.get("type"), p.get("user")) for p in pushes] == [
        ("contact", None, None),
        ("event", "INCOMING", "anna"), ("event", "INCOMING", "boris"), ("event", "INCOMING", "vera"),
        ("event", "ACCEPTED", "anna"), ("event", "CANCELLED", "boris"), ("event", "CANCELLED", "vera"),
        ("event", "COMPLETED", "anna"), ("history", "in", "anna"),
    ]
    history = pushes[-1]
    assert history["phone"] == "79161234567" and history["diversion"] == "74950000001"  # digits, no '+'
    assert history["start"] == "20261125T095825Z" and history["status"] == "Success"  # 95 s before START
    assert history["link"].startswith("https://vats100.megapbx.ru/api/v2/call-records/record/2026-11-25/")
    assert len({p["callid"] for p in pushes}) == 1


async def test_simulated_transfer_and_outbound(connector):
    ctx = SimulationContext(caller="+79161234567", agent="anna", others=["boris"], start=START)
    transfer = _pushes(connector.simulate("transfer", ctx))
    transferred = next(p for p in transfer if p.get("type") == "TRANSFERRED")
    assert transferred["user"] == "anna" and transferred["second_callid"]
    legs = {p["callid"] for p in transfer if p.get("user") == "boris" and p["cmd"] == "event"}
    assert legs == {transferred["second_callid"]} and transferred["second_callid"] != transferred["callid"]
    order = [(p.get("type"), p.get("user")) for p in transfer]
    assert order.index(("INCOMING", "boris")) < order.index(("TRANSFERRED", "anna"))  # the leg overtakes
    outbound = _pushes(connector.simulate("outbound_no_answer", ctx))
    assert [(p["type"], p.get("direction")) for p in outbound] == [("OUTGOING", "out"), ("CANCELLED", "out"),
                                                                    ("out", None)]
    assert outbound[-1]["status"] == "NotAvailable" and "link" not in outbound[-1]
    with pytest.raises(RequestError, match="second agent"):
        connector.simulate("transfer", SimulationContext(caller="1", agent="anna", start=START))
    with pytest.raises(RequestError, match="unknown scenario"):
        connector.simulate("conference", ctx)


@pytest.mark.parametrize("scenario", ["answered", "missed", "group", "transfer", "hold", "outbound_no_answer"])
async def test_simulated_calls_end_no_later_than_they_are_sent(connector, scenario):
    ctx = SimulationContext(caller="+79161234567", agent="anna", others=["boris"])  # start: now
    (history,) = [p for p in _pushes(connector.simulate(scenario, ctx)) if p["cmd"] == "history"]
    started = datetime.strptime(history["start"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert started + timedelta(seconds=int(history["duration"])) <= ctx.start <= utcnow()


async def test_simulated_hold_says_it_is_an_answered_call(connector):
    requests = connector.simulate("hold", SimulationContext(caller="+79161234567", agent="anna", start=START))
    assert "no hold" in requests[-1].description
    assert set(connector.scenarios) == {"answered", "missed", "group", "transfer", "hold", "outbound_no_answer"}


@pytest.mark.parametrize("scenario", ["answered", "missed", "group", "transfer", "hold", "outbound_no_answer"])
async def test_every_simulated_scenario_is_accepted_by_the_connector(connector, scenario):
    ctx = SimulationContext(caller="+79161234567", agent="anna", others=["boris"], start=START)
    events = []
    for req in connector.simulate(scenario, ctx):
        result = await connector.handle_webhook(request(dict(parse_qsl(req.body.decode())), token=None))
        assert result.status == 200, result.body
        events += result.events
    summary = events[-1]
    assert summary.kind is EventKind.SUMMARY
    expected = {"missed": Outcome.MISSED, "outbound_no_answer": Outcome.NO_ANSWER}.get(scenario, Outcome.ANSWERED)
    assert summary.outcome is expected


# -- user import ------------------------------------------------------------------------------------


async def test_import_users_command_core(tmp_path, fake, nursery):
    url = await nursery.start(serve, fake)
    config = tmp_path / "ctid.yaml"
    config.write_text(f"""
data_dir: {tmp_path}
agents:
  a1: {{name: Anna, extension: "701", pbx: {{mf: anna}}}}
connectors:
  mf: {{plugin: megafon, crm_token: "{TOKEN}", api_url: "{url}", api_key: "{API_KEY}"}}
""")
    data = await _import(config, None)
    assert [u["login"] for u in data["users"]] == ["anna", "boris", "vera", "admin"]
    assert data["agents"]["boris"] == {"name": "Boris B", "pbx": {"mf": "boris"}, "extension": "702",
                                       "groups": ["Sales"]}
    with pytest.raises(RequestError, match="not a megafon connector instance"):
        await _import(config, "office")


def test_import_users_cli_reports_errors_in_one_line(tmp_path):
    config = tmp_path / "ctid.yaml"
    config.write_text("agents: {}\n")
    result = CliRunner().invoke(app, ["import-users", "--config", str(config)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "ctid-megafon: error: name the instance with --connector (megafon instances: none)"]
