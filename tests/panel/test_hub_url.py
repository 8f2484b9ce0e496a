"""The panel opens the hub without its access token in any URL (docs/security.md, "No token in any URL").

Chromium against a real ``ctid serve``: every WebSocket and HTTP request the page makes is recorded,
and none carries the bearer token; the WebSocket opened with the connection token alone delivers the
agent's screen pop, and a supervisor's socket joins the supervisors' audience.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import expect

from .conftest import sign_in


def recorded(page) -> tuple[list[str], list[str]]:
    sockets: list[str] = []
    requests: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.on("request", lambda request: requests.append(request.url))
    return sockets, requests


def test_the_hub_websocket_carries_no_access_token(open_page, ctid):
    alice = open_page()
    sockets, requests = recorded(alice)
    sign_in(alice, "alice")
    expect(alice.locator("#connection")).to_have_attribute("data-state", "connected")
    ctid.ring("url-1", "+79161234567", agent="101")
    expect(alice.locator("article.card", has_text="+7 916 123-45-67")).to_be_visible()  # events arrive
    alice.reload()  # a second connection: negotiate again, a fresh connection token
    expect(alice.locator("#connection")).to_have_attribute("data-state", "connected")
    token = alice.evaluate("sessionStorage.getItem('ctid.token') || localStorage.getItem('ctid.token')")
    assert token

    supervisor = open_page()
    super_sockets, super_requests = recorded(supervisor)
    sign_in(supervisor, "super")
    expect(supervisor.locator("#connection")).to_have_attribute("data-state", "connected")
    ctid.ring("url-2", "+74957770000", agent="102")  # bob's call: the supervisor sees it, alice does not
    expect(supervisor.locator("body")).to_contain_text("+7 495 777-00-00")
    expect(alice.locator("article.card", has_text="+7 495 777-00-00")).to_have_count(0)
    super_token = supervisor.evaluate("sessionStorage.getItem('ctid.token') || localStorage.getItem('ctid.token')")

    assert len(sockets) >= 2 and super_sockets, (sockets, super_sockets)
    ids = []
    for url in sockets + super_sockets:
        query = parse_qs(urlsplit(url).query)
        assert urlsplit(url).path == "/hub" and set(query) == {"id"}, url  # no access_token
        ids.append(query["id"][0])
    assert len(set(ids)) == len(ids)  # one connection token per WebSocket
    for url in sockets + requests + super_sockets + super_requests:
        assert token not in url and super_token not in url and "access_token" not in url, url
    log = ctid.server.log()
    assert token not in log and super_token not in log
