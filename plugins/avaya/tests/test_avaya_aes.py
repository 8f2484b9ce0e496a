"""AES backends against their fakes: TelephonyService through zeep (WSDL, Basic auth, session
header, re-attach, faults), DMCC over its framing (session, keep-alive, resume, SnapshotDevice)."""

from __future__ import annotations

import pytest
import trio

from avaya_kit import start_tws
from ctid.errors import PBXError
from ctid.testing.daemon import eventually, free_port
from ctid_avaya.config import DmccControl, TwsControl
from ctid_avaya.control.dmcc import DmccBackend
from ctid_avaya.control.tws import TwsBackend
from ctid_avaya.testing.fake_dmcc import FakeDmcc
from ctid_avaya.testing.fake_tws import FakeTelephonyService


def tws(url: str, password: str = "pw-1") -> TwsBackend:
    return TwsBackend(TwsControl(backend="aes-tws", wsdl_url=url + "?wsdl", username="ctid@CM1",
                                 password=password), "aura")


async def test_zeep_reads_the_wsdl_attaches_and_sends_the_session_header(nursery):
    fake = FakeTelephonyService("ctid@CM1", "pw-1")
    url = await start_tws(nursery, fake)
    backend = tws(url)
    try:
        call_id = await backend.dial("201", "+79161234567")
        assert call_id is not None and call_id.isdigit()  # the fake's callIdentifier
        await backend.transfer("201", None, "202")
        await backend.hangup("201", None)
        assert [op for op, _ in fake.requests] == ["attach", "makeCall", "transferCall", "dropCall"]
        assert fake.calls("makeCall") == [{"originatingExtension": "201", "originatingNumber": "+79161234567"}]
        assert fake.calls("transferCall") == [{"deviceExtension": "201", "destinationNumber": "202"}]
        # AES forgot the session: one re-attach, one retry
        fake.expire_sessions()
        await backend.hangup("201", None)
        assert [op for op, _ in fake.requests][-3:] == ["dropCall", "attach", "dropCall"]
        # a refusal is the PBX's own words, as a 409
        fake.refuse["transferCall"] = "Destination busy"
        with pytest.raises(PBXError) as refused:
            await backend.transfer("201", None, "203")
        assert refused.value.error_id == "pbx_refused" and refused.value.status == 409
        assert "Destination busy" in str(refused.value)
    finally:
        await backend.aclose()
    assert fake.requests[-1][0] == "release" and fake.sessions == set()


async def test_wrong_credentials_and_unreachable_service_are_clear(nursery):
    fake = FakeTelephonyService("ctid@CM1", "pw-1")
    url = await start_tws(nursery, fake)
    backend = tws(url, password="wrong-pw")
    with pytest.raises(PBXError) as caught:
        await backend.dial("201", "123")
    assert caught.value.error_id == "pbx_unreachable" and "WSDL" in str(caught.value)
    down = tws(f"http://127.0.0.1:{free_port()}/x")
    with pytest.raises(PBXError, match="unreachable"):
        await down.check()


def dmcc_config(port: int, **kw) -> DmccControl:
    base = dict(backend="aes-dmcc", host="127.0.0.1", port=port, tls=False, username="ctid", password="pw-2",
                switch_name="CM1", session_duration=60, timeout=5)
    base.update(kw)
    return DmccControl(**base)


async def test_dmcc_session_keepalive_controls_and_resume(nursery, autojump_clock):
    fake = FakeDmcc("ctid", "pw-2", calls={"201": [["41", "connected", "79161234567"]]})
    port = await nursery.start(fake.serve)
    backend = DmccBackend(dmcc_config(port), "aura")
    nursery.start_soon(backend.run)
    await eventually(lambda: _value(backend._ready.is_set()), within=30)
    await backend.hold("201", "+79161234567")
    assert fake.calls["201"][0][1] == "hold"
    await backend.unhold("201", None)
    assert fake.calls["201"][0][1] == "connected"
    with pytest.raises(PBXError) as caught:  # retrieve a call that is not held: AES refuses
        await backend.unhold("201", None)
    assert (caught.value.error_id, caught.value.status) == ("pbx_refused", 409)  # ctid's own look: no PBX code
    fake.refuse["HoldCall"] = "invalidCallState"  # AES's CSTAErrorCode: its value is a stable suffix
    with pytest.raises(PBXError) as caught:
        await backend.hold("201", None)
    assert (caught.value.error_id, caught.value.status) == ("pbx_refused:invalid_call_state", 409)
    assert "invalidCallState" in str(caught.value)
    del fake.refuse["HoldCall"]
    await trio.sleep(95)  # keep-alive at half the 60 s duration
    assert fake.resets == 3
    # the link breaks: the client reconnects and resumes the same session
    session = backend.session_id
    await fake.drop_connections()
    await trio.sleep(5)
    await eventually(lambda: _value(backend._ready.is_set()), within=30)
    assert backend.session_id == session and backend.resumed == 1
    # AES dropped the session meanwhile: a new one is started
    fake.sessions[session] = False
    await fake.drop_connections()
    await trio.sleep(5)
    await eventually(lambda: _value(backend._ready.is_set()), within=30)
    assert backend.session_id != session and backend.sessions_started == 2
    await backend.transfer("201", None, "202")
    assert "201" in fake.calls and fake.calls["201"] == []
    await backend.dial("201", "79160000000")
    await backend.hangup("201", "79160000000")
    assert fake.requests[-2:] == ["SnapshotDevice", "ClearConnection"]


async def test_dmcc_bad_password_is_refused(nursery, autojump_clock):
    fake = FakeDmcc("ctid", "pw-2")
    port = await nursery.start(fake.serve)
    backend = DmccBackend(dmcc_config(port, password="nope-nope"), "aura")
    nursery.start_soon(backend.run)
    await trio.sleep(10)
    with pytest.raises(PBXError, match="unreachable"):
        await backend.check()
    assert "invalidUserNameOrPassword" in backend.last_error


async def _value(value):
    return value
