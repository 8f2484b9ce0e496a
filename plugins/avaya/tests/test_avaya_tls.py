"""DevLink3 over TLS (port 50796: the PLAIN challenge is answered only here) and DMCC over TLS,
with a throw-away CA: verified against the CA file, and refused when the certificate is not trusted."""

from __future__ import annotations

import ssl
from functools import partial

import pytest
import trustme

from ctid.testing.daemon import eventually
from ctid_avaya.client import DevLink3Client
from ctid_avaya.config import DevLink3Config, DmccControl
from ctid_avaya.control.dmcc import DmccBackend
from ctid_avaya.stats import Stats
from ctid_avaya.testing.fake_dmcc import FakeDmcc
from ctid_avaya.testing.fake_ipo import FakeDevLink3


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def server_context(ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
def ca_file(ca, tmp_path):
    path = tmp_path / "ipo-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


async def _true(value):
    return value


@pytest.mark.parametrize("verify", [True, False])
async def test_devlink3_over_tls_with_the_plain_challenge(nursery, server_context, ca_file, verify):
    unit = FakeDevLink3({"ctid": "s3cret-pass"}, plain=True)
    port = await nursery.start(partial(unit.serve, ssl_context=server_context))
    received = []

    async def on_texts(texts):
        received.extend(texts)

    async def nothing():
        return None

    config = DevLink3Config(transport="tls", port=port, username="ctid", password="s3cret-pass",
                            tls_verify=verify, ca_file=ca_file if verify else None)
    client = DevLink3Client("ipo", "127.0.0.1", config, on_texts=on_texts, on_subscribed=nothing, stats=Stats("ipo"))
    nursery.start_soon(client.run)
    session = await unit.wait_subscribed()
    await session.send_delta3("<CallLost>7f000001,7f00000100000001,1,16</CallLost>")
    await eventually(lambda: _true(received))
    assert client.subscribed and unit.logins == 1


async def test_an_untrusted_certificate_is_refused_when_verifying(nursery, server_context, tmp_path):
    unit = FakeDevLink3({"ctid": "s3cret-pass"})
    port = await nursery.start(partial(unit.serve, ssl_context=server_context))
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))

    async def nothing(*args):
        return None

    config = DevLink3Config(transport="tls", port=port, username="ctid", password="s3cret-pass", tls_verify=True,
                            ca_file=other, backoff_initial=0.05, backoff_max=0.1)
    client = DevLink3Client("ipo", "127.0.0.1", config, on_texts=nothing, on_subscribed=nothing, stats=Stats("ipo"))
    nursery.start_soon(client.run)
    await eventually(lambda: _true(client.last_error and "CERTIFICATE_VERIFY_FAILED" in client.last_error))
    assert unit.logins == 0


async def test_dmcc_over_tls(nursery, server_context, ca_file):
    fake = FakeDmcc("ctid", "pw-2", calls={"201": [["5", "connected", "79161234567"]]})
    port = await nursery.start(partial(fake.serve, ssl_context=server_context))
    backend = DmccBackend(DmccControl(backend="aes-dmcc", host="127.0.0.1", port=port, tls=True, tls_verify=True,
                                      ca_file=ca_file, username="ctid", password="pw-2", switch_name="CM1"), "aura")
    nursery.start_soon(backend.run)
    await eventually(lambda: _true(backend._ready.is_set()))
    await backend.hold("201", None)
    assert fake.calls["201"][0][1] == "hold"
