"""Fixtures for the panel's end-to-end tests: a real ``ctid serve`` subprocess with the generic connector
pointed at a fake PBX command endpoint, the directory CRM, and Debian's Chromium driven by Playwright.

Chromium is never downloaded: the tests use ``/usr/bin/chromium`` (``CTID_CHROMIUM`` overrides). Without
it they skip with the reason, or fail when the ``CI`` environment variable is set.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ctid.builtins.generic import sign
from ctid.testing import services
from ctid.testing.daemon import ServeProcess, free_port

SECRET = "panel-test-webhook-secret"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "super": "super-pw"}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "panel"
CIF_ORIGIN = "https://org.crm.example"
CONTACTS = """
- {id: c-1, name: Anna Kuznetsova, company: Romashka LLC, phones: ["+79161234567"], owner: alice}
- {id: c-2, name: Dmitry Volkov, company: Vector Trade, phones: ["+74957770000"], owner: bob}
- {id: c-3, name: Elena Orlova, company: Vector Trade, phones: ["+74957770000"], owner: bob}
"""


@functools.cache
def _hash(password: str) -> str:
    from werkzeug.security import generate_password_hash

    return generate_password_hash(password, method="pbkdf2:sha256:1000")  # cheap on purpose: tests only


class FakePBX:
    """Receives the generic connector's signed commands (dial, hold, unhold, transfer, hangup)."""

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []
        self.bad_signatures = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("X-Ctid-Signature") != sign(SECRET, body):
                    owner.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                data = json.loads(body)
                owner.commands.append(data)
                answer = json.dumps({"call_id": "pbx-dial-1"} if data.get("command") == "dial" else {}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/commands"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def wait_for(self, command: str, timeout: float = 5) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the command arrives from another process: poll briefly
            for item in self.commands:
                if item.get("command") == command:
                    return item
            time.sleep(0.02)
        raise AssertionError(f"the PBX never received {command!r}; it got {self.commands}")


class Ctid:
    """A running ``ctid serve`` and helpers to make its calls ring."""

    def __init__(self, url: str, server: ServeProcess, pbx: FakePBX) -> None:
        self.url = url
        self.server = server
        self.proc = server.proc
        self.pbx = pbx
        self.http = httpx.Client(base_url=url, timeout=10)
        self._seq = 0

    def events(self, *events: dict[str, Any]) -> None:
        """POST generic-webhook events, signed; each gets a unique id."""
        items = []
        for event in events:
            self._seq += 1
            items.append({"id": f"e{self._seq}-{event['event']}-{event['call_id']}", **event})
        body = json.dumps(items).encode()
        response = self.http.post("/hooks/office", content=body,
                                  headers={"Content-Type": "application/json", "X-Ctid-Signature": sign(SECRET, body)})
        assert response.status_code == 200, response.text

    def ring(self, call_id: str, number: str, agent: str = "101", **extra: Any) -> None:
        self.events({"event": "ring", "call_id": call_id, "direction": "inbound", "from": number,
                     "to": "+74951112233", "agent": agent, **extra})

    def token(self, user: str) -> str:
        response = self.http.post("/api/auth/token", json={"username": user, "password": PASSWORDS[user]})
        response.raise_for_status()
        return response.json()["access_token"]

    def close(self) -> None:
        self.http.close()


def panel_config(tmp_path: Path, port: int, command_url: str | None) -> dict[str, Any]:
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text(CONTACTS)
    return {
        "server": {"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}"},
        "database": {"url": f"sqlite:///{tmp_path / 'ctid.db'}"},
        # Short keep-alive: every test also proves the panel answers pings (the server drops a client
        # silent for client_timeout once it has pinged).
        "hub": {"ping_interval": 0.5, "client_timeout": 2},
        "data_dir": str(tmp_path / "var"),
        "auth": {"users": [
            {"username": name, "password_hash": _hash(PASSWORDS[name]), "role": "agent", "agent": name}
            for name in ("alice", "bob", "carol")
        ] + [{"username": "super", "password_hash": _hash(PASSWORDS["super"]), "role": "supervisor"}]},
        "agents": {
            "alice": {"name": "Alice Smirnova", "extension": "101", "groups": ["sales"]},
            "bob": {"name": "Bob Ivanov", "extension": "102", "groups": ["sales"]},
            "carol": {"name": "Carol Petrova", "extension": "103", "groups": ["sales"]},
        },
        "connectors": {"office": {"plugin": "generic", "secret": SECRET,
                                  **({"command_url": command_url} if command_url else {})}},
        "crm": {"plugin": "directory", "contacts": str(contacts)},
        # the Dynamics organization test_cif.py's ?ucilib= library comes from; it and test_ui.py's CRM
        # page (another origin: localhost) may frame the panel
        "panel": {"cif_origins": [CIF_ORIGIN], "frame_ancestors": [CIF_ORIGIN, f"http://localhost:{port}"]},
    }


@pytest.fixture
def fake_pbx():
    pbx = FakePBX()
    yield pbx
    pbx.close()


def start_ctid(tmp_path: Path, pbx: FakePBX, port: int | None = None, *, commands: bool = True) -> Ctid:
    """Start ``ctid serve`` (again, with the same configuration and database, when ``tmp_path`` has one)."""
    port = port or free_port()
    path = tmp_path / "ctid.yaml"
    if not path.exists():
        path.write_text(yaml.safe_dump(panel_config(tmp_path, port, pbx.url if commands else None)))
    server = ServeProcess(path, port=port, log_path=tmp_path / "serve.log")
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    return Ctid(server.url, server, pbx)


def stop_ctid(ctid: Ctid) -> None:
    ctid.close()
    ctid.server.stop()


@pytest.fixture
def ctid(tmp_path, fake_pbx):
    server = start_ctid(tmp_path, fake_pbx)
    yield server
    stop_ctid(server)


@pytest.fixture(scope="session")
def browser():
    with services.chromium() as browser:
        yield browser


@pytest.fixture
def open_page(browser, ctid):
    """open_page(user=None, width=1100, path="/panel/", init_script=None) -> a Page (signed in when user given)."""
    contexts = []

    def _open(user: str | None = None, *, width: int = 1100, height: int = 900, path: str = "/panel/",
              init_script: str | None = None, locale: str = "en-US"):
        context = browser.new_context(viewport={"width": width, "height": height}, locale=locale)
        contexts.append(context)
        if init_script:
            context.add_init_script(init_script)
        context.on("page", watch_policy)  # popups too
        page = context.new_page()
        page.errors = []  # type: ignore[attr-defined]
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        watch_policy(page)
        page.goto(ctid.url + path)
        if user:
            sign_in(page, user)
        return page

    yield _open
    pages = [page for context in contexts for page in context.pages]
    for context in contexts:
        context.close()
    # Every panel flow runs under the panel's Content-Security-Policy: nothing may violate it.
    assert [v for page in pages for v in page.csp_violations] == []


def watch_policy(page) -> None:
    """Collect Content-Security-Policy violations and 404 answers the page meets in ``page.csp_violations``."""
    if hasattr(page, "csp_violations"):
        return
    page.csp_violations = []  # type: ignore[attr-defined]
    page.on("console", lambda message: page.csp_violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.on("response", lambda response: page.csp_violations.append(f"404 {response.url}")
            if response.status == 404 and "/api/" not in response.url else None)


def sign_in(page, user: str, password: str | None = None) -> None:
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password or PASSWORDS[user])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("html[data-ready=true]", timeout=10000)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
