"""``ctid check`` beside ``ctid serve``: an instance that is not running answers its health with one
DevLink3 login of its own (accepted, refused with the unit's reason, or unreachable), never with the
"down: connecting" of a link it never opened."""

from __future__ import annotations

from ctid.directory import StaticDirectory
from ctid.services import Services
from ctid.testing.daemon import eventually, free_port
from ctid_avaya.config import AvayaConfig
from ctid_avaya.connector import AvayaConnector
from ctid_avaya.testing.fake_ipo import FakeDevLink3


def instance(port: int, password: str = "s3cret-pass", **extra) -> AvayaConnector:
    raw = {"plugin": "avaya", "host": "127.0.0.1",
           "devlink3": {"transport": "tcp", "port": port, "username": "ctid", "password": password,
                        "connect_timeout": 2},
           "smdr": {"listen": "127.0.0.1:8808"}, **extra}
    return AvayaConnector("ipo", AvayaConfig(**raw), Services(directory=StaticDirectory({})))


async def test_check_logs_in_once_and_names_the_unit(nursery):
    fake = FakeDevLink3({"ctid": "s3cret-pass"})
    port = await nursery.start(fake.serve)
    health = await instance(port).health()
    assert health.ok, health.checks
    assert health.checks["devlink3"] == "login accepted (Avaya IP500v2 11.1.3.0 build 7)"
    assert health.checks["smdr"] == "collected by ctid serve (listening on 127.0.0.1:8808)"
    assert fake.logins == 0  # a login, no EventRequest: the probe never subscribed

    async def hung_up():  # and it hung up, leaving the unit's connection slot free
        return fake.open == 0

    await eventually(hung_up, within=2)


async def test_check_reports_the_units_refusal_and_an_unreachable_unit(nursery):
    fake = FakeDevLink3({"ctid": "s3cret-pass"})
    port = await nursery.start(fake.serve)
    refused = await instance(port, password="wrong-password").health()
    assert not refused.ok and refused.checks["devlink3"] == "login refused: 0x80000041 auth failed"
    down = await instance(free_port()).health()
    assert not down.ok and down.checks["devlink3"].startswith("unreachable: ")


async def test_check_starts_a_dmcc_session_of_its_own(nursery):
    """The daemon's DMCC session lives in ``run()``; ``ctid check`` opens one of its own (AES checks the
    user), instead of reporting "no application session" for a backend it never started."""
    from ctid_avaya.testing.fake_dmcc import FakeDmcc

    fake = FakeDevLink3({"ctid": "s3cret-pass"})
    port = await nursery.start(fake.serve)
    dmcc = FakeDmcc("ctid", "dmcc-pass")
    dmcc_port = await nursery.start(dmcc.serve)
    control = {"backend": "aes-dmcc", "host": "127.0.0.1", "port": dmcc_port, "tls": False, "username": "ctid",
               "switch_name": "CM1", "timeout": 2}
    health = await instance(port, control=[{**control, "password": "dmcc-pass"}]).health()
    assert health.ok, health.checks
    assert health.checks["control:aes-dmcc"].startswith("application session accepted (ctid at 127.0.0.1:")
    refused = await instance(port, control=[{**control, "password": "wrong"}]).health()
    assert not refused.ok and "control:aes-dmcc" in refused.checks
    assert "no application session" not in refused.checks["control:aes-dmcc"]
    gone = await instance(port, control=[{**control, "password": "dmcc-pass", "port": free_port()}]).health()
    assert not gone.ok and "unreachable" in gone.checks["control:aes-dmcc"]
