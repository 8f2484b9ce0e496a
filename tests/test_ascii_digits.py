"""Numbers from outside are read only from ASCII digits (``ctid.limits.ascii_digits``): ``str.isdigit()``
also holds for superscripts (``"³"``, which ``int()`` refuses with ValueError) and for other scripts'
digits (``"٨"``, which ``int()`` reads), so every ``isdigit()``-then-``int()`` in ctid and the bundled
plugins raised or read a different number than the one written."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
import trio
from ctid_avaya.config import _host_port
from ctid_avaya.simulate import _ipv4
from ctid_avaya.tracker import Tracker
from ctid_comagic.simulate import _Call as ComagicCall
from ctid_dynamics.client import parse_batch_response
from hypothesis import given
from hypothesis import strategies as st

from ctid.builtins.generic_recordings import fetch
from ctid.errors import CRMError
from ctid.limits import ascii_digits

SIGNS = ["³", "¹²", "٣", "１", "1³", "①", "٨٠٨٠"]


@given(st.text(max_size=12))
def test_ascii_digits_is_what_int_reads_as_written(text: str) -> None:
    if ascii_digits(text):
        assert str(int(text)) == text.lstrip("0") or int(text) == 0
    else:
        assert not text or any(ch not in "0123456789" for ch in text)


@pytest.mark.parametrize("sign", SIGNS)
def test_plugin_numbers_from_outside(sign: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        _host_port(f"0.0.0.0:{sign}", "listen")
    assert _ipv4(f"10.0.0.{sign}") == "127.0.0.1"
    assert Tracker._leg(SimpleNamespace(pbx_call_id=f"10.0.0.1-{sign}-x")) is None
    assert ComagicCall.employee(None, sign)["employee_id"] == sign
    batch = httpx.Response(200, headers={"content-type": "multipart/mixed; boundary=b"},
                           content=f"--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 {sign} OK\r\n\r\n{{}}\r\n"
                                   "--b--\r\n".encode())
    with pytest.raises(CRMError):
        parse_batch_response(batch)


def test_a_recording_with_a_digit_sign_content_length_is_read_not_a_crash() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=[(b"content-type", b"audio/wav"), (b"content-length", "³".encode())],
                              content=b"RIFF")

    async def main():
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
            return await fetch(http, "http://pbx.example/rec.wav", max_bytes=100)

    assert trio.run(main) == (b"RIFF", "audio/wav")
