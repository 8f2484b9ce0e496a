"""The TAPI engine over the fake boundary, served by ``ctid avaya tapi-bridge`` over HTTP."""

from __future__ import annotations

import pytest
import trio
from typer.testing import CliRunner

from avaya_kit import knows
from ctid.errors import PBXError
from ctid.testing.daemon import free_port
from ctid_avaya.config import TapiControl
from ctid_avaya.control import tapi as t
from ctid_avaya.control.tapi import TapiBackend, TapiEngine
from ctid_avaya.control.tapi_bridge import serve
from ctid_avaya.testing.fake_tapi import FakeTapi

TOKEN = "bridge-token-0123456789"


async def test_the_bridge_serves_all_five_controls_and_refusals(nursery):
    fake = FakeTapi({"201": "Anna", "202": "Boris"})
    port = free_port()
    engine = TapiEngine(fake)
    await nursery.start(serve, engine, "127.0.0.1", port, TOKEN)
    backend = TapiBackend(TapiControl(backend="tapi", mode="bridge", bridge_url=f"http://127.0.0.1:{port}",
                                      bridge_token=TOKEN), "ipo")
    try:
        assert await backend.check() == "bridge: 2 lines"
        await backend.dial("201", "+79161234567")
        assert fake.log[-1] == ("lineMakeCall", "201", "+79161234567")
        call = fake.offer("202", "79160001122")
        await knows(engine, "202", call)  # the bridge's engine pumps LINE_APPNEWCALL / LINE_CALLSTATE
        await backend.hold("202", "+79160001122")
        assert fake.state_of(call) == t.LINECALLSTATE_ONHOLD
        with pytest.raises(PBXError) as refused:  # holding a held call: LINE_REPLY with LINEERR_INVALCALLSTATE
            await backend.hold("202", None)
        assert refused.value.error_id == "pbx_refused" and "no call in that state" in str(refused.value)
        await backend.unhold("202", None)
        await backend.transfer("202", None, "201")
        assert fake.log[-1] == ("lineBlindTransfer", call, "201") and fake.state_of(call) is None
        fake.refuse_next = 0x80000048
        with pytest.raises(PBXError) as refused:
            await backend.dial("201", "123")
        assert refused.value.status == 409 and "LINEERR_OPERATIONFAILED" in str(refused.value)
        other = fake.offer("201", "79165550000")
        await knows(engine, "201", other)
        await backend.hangup("201", "+79165550000")  # 201 also has the call it dialled: the remote picks
        assert fake.log[-1] == ("lineDrop", other)
        with pytest.raises(PBXError, match="no TAPI line"):
            await backend.dial("299", "123")
    finally:
        await backend.aclose()
    wrong = TapiBackend(TapiControl(backend="tapi", mode="bridge", bridge_url=f"http://127.0.0.1:{port}",
                                    bridge_token="wrong-token-0123456789"), "ipo")
    with pytest.raises(PBXError) as denied:
        await wrong.dial("201", "1")
    assert denied.value.error_id == "pbx_unreachable" and "401" in str(denied.value)
    await wrong.aclose()


async def test_engine_picks_the_call_with_the_remote_party():
    fake = FakeTapi({"201": "Anna"})
    engine = TapiEngine(fake)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        first = fake.offer("201", "79160000001")
        second = fake.offer("201", "79160000002")
        await knows(engine, "201", second)
        await engine.hold("201", "+7 916 000-00-02")
        assert fake.state_of(second) == t.LINECALLSTATE_ONHOLD and fake.state_of(first) == t.LINECALLSTATE_CONNECTED
        nursery.cancel_scope.cancel()


def test_tapi_bridge_command_says_it_needs_windows():
    from ctid_avaya.__main__ import app

    result = CliRunner().invoke(app, ["tapi-bridge", "--token", TOKEN])
    assert result.exit_code == 3 and "only on Windows" in result.output
    short = CliRunner().invoke(app, ["tapi-bridge", "--token", "short"])
    assert short.exit_code == 2 and "at least 16" in short.output
