"""*Open panel* from the tray: the panel, opened at ``/panel/#code=<one-time code>`` in a real
Chromium against a real ``ctid serve``, signs in once, drops the code from the address bar, and a
second use of the same code signs nobody in."""

from __future__ import annotations

import httpx
import pytest

from ctid.testing import services
from launcher_support import PASSWORDS


@pytest.fixture
def chromium():
    with services.chromium() as browser:
        yield browser


def test_open_panel_signs_in_with_a_one_time_code(ctid_server, chromium):
    url = ctid_server.url
    token = httpx.post(f"{url}/api/auth/token", json={"username": "alice", "password": PASSWORDS["alice"]}).json()
    handoff = httpx.post(f"{url}/api/auth/handoff",
                         headers={"Authorization": f"Bearer {token['access_token']}"}).json()
    assert token["access_token"] not in handoff["panel_url"]
    page = chromium.new_page()
    page.goto(handoff["panel_url"])
    page.wait_for_selector("html[data-ready=true]", timeout=15_000)
    assert "code=" not in page.url  # gone from the address bar (and so from history and bookmarks)
    assert page.evaluate("sessionStorage.getItem('ctid.token')")
    again = chromium.new_page()
    again.goto(handoff["panel_url"])
    again.get_by_label("Password").wait_for(timeout=15_000)  # used once already: the sign-in form
    assert again.evaluate("sessionStorage.getItem('ctid.token')") is None
