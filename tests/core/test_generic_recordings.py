"""Recordings the generic connector's PBX names with ``recording_url`` play from ctid's URL (they
answered 409 before), for the call's own users only, also through signed links."""

from __future__ import annotations

import json

import hypercorn.config
import hypercorn.trio
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from quart import Response, request
from quart_trio import QuartTrio

from ctid.auth_links import LinkSigner
from ctid.builtins.generic import sign
from ctid.errors import AuthError
from ctid.testing.daemon import free_port, running_daemon

from .conftest import PASSWORDS, SECRET, make_config

AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(200)


class RecordingServer:
    """The PBX's file server: /rec/<name> answers as told by ``files`` (name -> (status, type, body))."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, str, bytes]] = {}
        self.requests: list[str] = []
        self.url = ""

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        app = QuartTrio("recordings")

        @app.get("/rec/<name>")
        async def rec(name: str):
            self.requests.append(request.path)
            status, media, body = self.files.get(name, (404, "text/plain", b"no such file"))
            if status in (301, 302, 307):  # a redirect: the body is where to
                return Response(b"", status=status, headers={"Location": body.decode()})
            return Response(body, status=status, content_type=media)

        port = free_port()
        config = hypercorn.config.Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = None
        self.url = f"http://127.0.0.1:{port}"
        await hypercorn.trio.serve(app, config, task_status=task_status)


@pytest.fixture
async def pbx_files(nursery) -> RecordingServer:
    server = RecordingServer()
    await nursery.start(server.serve)
    return server


async def answered_call(app, call_id: str, recording_url: str) -> str:
    events = [
        {"event": "ring", "id": f"{call_id}-1", "call_id": call_id, "from": "+79161234567", "agent": "101"},
        {"event": "answer", "id": f"{call_id}-2", "call_id": call_id, "agent": "101"},
        {"event": "end", "id": f"{call_id}-3", "call_id": call_id, "agent": "101", "recording_url": recording_url},
    ]
    body = json.dumps(events).encode()
    response = await app.client.post("/hooks/office", content=body, headers={"X-Ctid-Signature": sign(SECRET, body)})
    assert response.status_code == 200, response.text
    items = (await app.client.get("/api/calls", headers=app.api_key_headers)).json()["items"]
    [call] = [item for item in items if item["pbx_call_id"] == call_id]
    assert call["recording_url"] == f"{app.daemon.public_url}/api/calls/{call['id']}/recording"
    return call["id"]


async def test_generic_recordings_play_from_ctid(tmp_path, fake_pbx, pbx_files):
    pbx_files.files["a.wav"] = (200, "audio/wav", AUDIO)
    pbx_files.files["page.html"] = (200, "text/html", b"<script>alert(1)</script>")
    async with running_daemon(make_config(tmp_path, command_url=fake_pbx.url)) as app:
        alice = await app.headers_for("alice", PASSWORDS["alice"])
        call_id = await answered_call(app, "rec-1", f"{pbx_files.url}/rec/a.wav")
        response = await app.client.get(f"/api/calls/{call_id}/recording", headers=alice)
        assert response.status_code == 200 and response.content == AUDIO
        assert response.headers["content-type"] == "audio/wav" and pbx_files.requests == ["/rec/a.wav"]
        # Only the call's users: Bob never took part.
        bob = await app.headers_for("bob", PASSWORDS["bob"])
        assert (await app.client.get(f"/api/calls/{call_id}/recording", headers=bob)).status_code == 403

        # The PBX has no file (yet): 404 with a stable id; the PBX serving something else is never
        # handed to a browser as a page of ctid's origin.
        missing = await answered_call(app, "rec-2", f"{pbx_files.url}/rec/gone.wav")
        response = await app.client.get(f"/api/calls/{missing}/recording", headers=alice)
        assert response.status_code == 404 and response.json()["error"] == "recording_not_found"
        html = await answered_call(app, "rec-3", f"{pbx_files.url}/rec/page.html")
        response = await app.client.get(f"/api/calls/{html}/recording", headers=alice)
        assert response.status_code == 200 and response.headers["content-type"] == "audio/mpeg"
        # An unreachable PBX: 502, not a 500.
        dead = await answered_call(app, "rec-4", f"http://127.0.0.1:{free_port()}/rec/a.wav")
        response = await app.client.get(f"/api/calls/{dead}/recording", headers=alice)
        assert response.status_code == 502 and response.json()["error"] == "pbx_recording_failed"


async def test_a_recording_url_that_is_not_http_is_refused(tmp_path, fake_pbx):
    async with running_daemon(make_config(tmp_path, command_url=fake_pbx.url)) as app:
        body = json.dumps({"event": "end", "id": "x-1", "call_id": "x", "recording_url": "file:///etc/passwd"}).encode()
        response = await app.client.post("/hooks/office", content=body,
                                          headers={"X-Ctid-Signature": sign(SECRET, body)})
        assert response.status_code == 400 and response.json()["error"] == "bad_event"


async def test_recording_hosts_bound_what_a_pbx_can_make_ctid_fetch(tmp_path, fake_pbx, pbx_files):
    """With ``recording_hosts`` a signed PBX cannot point ctid at another host (loopback services,
    the cloud's metadata address), neither in ``recording_url`` nor through a redirect."""
    pbx_files.files["a.wav"] = (200, "audio/wav", AUDIO)
    port = pbx_files.url.rsplit(":", 1)[1]
    pbx_files.files["elsewhere.wav"] = (302, "", f"http://localhost:{port}/rec/a.wav".encode())
    config = make_config(tmp_path, command_url=fake_pbx.url)
    config["connectors"]["office"]["recording_hosts"] = ["127.0.0.1"]
    async with running_daemon(config) as app:
        alice = await app.headers_for("alice", PASSWORDS["alice"])
        call_id = await answered_call(app, "hosts-1", f"{pbx_files.url}/rec/a.wav")
        assert (await app.client.get(f"/api/calls/{call_id}/recording", headers=alice)).content == AUDIO
        body = json.dumps({"event": "end", "id": "h-2", "call_id": "hosts-2",
                           "recording_url": f"http://localhost:{port}/rec/a.wav"}).encode()
        refused = await app.client.post("/hooks/office", content=body, headers={"X-Ctid-Signature": sign(SECRET, body)})
        assert refused.status_code == 400 and "recording_hosts" in refused.json()["message"]
        redirected = await answered_call(app, "hosts-3", f"{pbx_files.url}/rec/elsewhere.wav")
        response = await app.client.get(f"/api/calls/{redirected}/recording", headers=alice)
        assert response.status_code == 502 and response.json()["error"] == "recording_host_refused"
        assert pbx_files.requests == ["/rec/a.wav", "/rec/elsewhere.wav"]  # the redirect was not followed


async def test_signed_links_grant_one_call_to_one_user_for_a_while(tmp_path, fake_pbx, pbx_files):
    pbx_files.files["a.wav"] = (200, "audio/wav", AUDIO)
    async with running_daemon(make_config(tmp_path, command_url=fake_pbx.url)) as app:
        alice = await app.headers_for("alice", PASSWORDS["alice"])
        call_id = await answered_call(app, "link-1", f"{pbx_files.url}/rec/a.wav")
        other = await answered_call(app, "link-2", f"{pbx_files.url}/rec/a.wav")
        answer = (await app.client.post(f"/api/calls/{call_id}/recording-link", headers=alice)).json()
        assert answer["url"] == app.daemon.public_url + answer["path"] and answer["expires_in"] == 300
        assert "token" not in answer["path"]
        response = await app.client.get(answer["path"])  # no header: the link is the credential
        assert response.status_code == 200 and response.content == AUDIO
        query = answer["path"].split("?", 1)[1]
        for path in (f"/api/calls/{other}/recording?{query}",  # bound to the call
                     answer["path"].replace("u=alice", "u=super"),  # bound to the user
                     answer["path"][:-1] + ("0" if answer["path"][-1] != "0" else "1")):  # tampered
            response = await app.client.get(path)
            assert response.status_code == 401 and response.json()["error"] == "bad_link", path
        bob = await app.headers_for("bob", PASSWORDS["bob"])
        assert (await app.client.post(f"/api/calls/{call_id}/recording-link", headers=bob)).status_code == 403


def test_links_expire():
    signer = LinkSigner("secret", ttl=300)
    args = dict(part.split("=") for part in signer.query("recording", "c1", "alice", now=1000).split("&"))
    assert signer.check("recording", "c1", args, now=1299) == "alice"
    with pytest.raises(Exception, match="expired") as info:
        signer.check("recording", "c1", args, now=1301)
    assert info.value.error_id == "link_expired"
    with pytest.raises(Exception, match="signature") as info:
        signer.check("transcript", "c1", args, now=1000)  # bound to the resource
    assert LinkSigner("other", 300).query("recording", "c1", "alice", now=1000) != signer.query(
        "recording", "c1", "alice", now=1000)


@given(args=st.dictionaries(st.sampled_from(["u", "exp", "sig", "x"]), st.text(max_size=30)),
       call_id=st.text(max_size=40))
def test_any_link_query_is_refused_with_a_401_and_never_crashes(args, call_id):
    signer = LinkSigner("secret", ttl=300)
    with pytest.raises(AuthError) as info:
        signer.check("recording", call_id, args)
    assert info.value.status == 401 and info.value.error_id in ("bad_link", "link_expired")


@pytest.mark.parametrize("host", ["http://pbx.local", "pbx.local/rec", "user@pbx", "pbx local", ""])
def test_recording_hosts_are_host_names_only(host):
    from pydantic import ValidationError

    from ctid.builtins.generic import GenericConfig

    assert GenericConfig(secret=SECRET, recording_hosts=["PBX.local", "[::1]"]).recording_hosts == ["pbx.local", "::1"]
    with pytest.raises(ValidationError, match="not a host name"):
        GenericConfig(secret=SECRET, recording_hosts=[host])
