"""The launcher's smaller parts: token storage (keyring and the file fallback), settings, autostart
per OS, single instance, the CRM pop-up decision, the fake session source, texts, the macOS poller,
token renewal (Trio MockClock)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import keyring
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keyring.backend import KeyringBackend

from ctid_launcher import config
from ctid_launcher.autostart import AutostartStatus
from ctid_launcher.autostart.linux import LinuxAutostart
from ctid_launcher.autostart.macos import MacAutostart
from ctid_launcher.autostart.windows import APPROVED, RUN, WindowsAutostart
from ctid_launcher.browser import Pop, Popper, decide
from ctid_launcher.credentials import Token, TokenStore
from ctid_launcher.i18n import TEXTS, detect, set_language, t
from ctid_launcher.policy import Event, Kind
from ctid_launcher.session.fake import parse
from ctid_launcher.session.macos import MacWatcher
from ctid_launcher.single_instance import AlreadyRunning, SingleInstance

# --- tokens ---------------------------------------------------------------------------------------


class MemoryKeyring(KeyringBackend):
    priority = 10

    def __init__(self, broken: bool = False):
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}
        self.broken = broken

    def get_password(self, service, username):
        return self.items.get((service, username))

    def set_password(self, service, username, password):
        if self.broken:
            raise keyring.errors.PasswordSetError("locked")
        self.items[(service, username)] = password

    def delete_password(self, service, username):
        self.items.pop((service, username), None)


@pytest.fixture
def memory_keyring():
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_token_in_the_keyring(memory_keyring):
    store = TokenStore("https://ctid.example", "alice")
    store.save(Token("secret-token", 1000.0))
    assert memory_keyring.items[("ctid-launcher", "alice@https://ctid.example")]
    assert not store.file.exists() and "MemoryKeyring" in store.where
    assert store.load() == Token("secret-token", 1000.0)
    store.delete()
    assert store.load() is None


def test_a_broken_keyring_falls_back_to_a_private_file(memory_keyring):
    memory_keyring.broken = True
    store = TokenStore("https://ctid.example", "alice")
    store.save(Token("secret-token", None))
    assert stat.S_IMODE(os.stat(store.file).st_mode) == 0o600
    memory_keyring.broken = False
    assert store.load() is None  # the keyring works again and has nothing; the file is the fallback only


def test_the_file_fallback_when_no_keyring(monkeypatch):
    monkeypatch.setenv("CTID_LAUNCHER_KEYRING", "file")
    store = TokenStore("https://ctid.example", "alice")
    assert store.where.startswith("file ")
    store.save(Token("t1", 5.0))
    assert store.load() == Token("t1", 5.0)
    assert stat.S_IMODE(os.stat(store.file).st_mode) == 0o600
    store.delete()
    assert store.load() is None and not store.file.exists()


def test_token_refresh_is_due_before_expiry():
    token = Token("x", expires_at=100_000.0)
    assert not token.due_for_refresh(100_000.0 - 43_200 * 0.2 - 1)
    assert token.due_for_refresh(100_000.0 - 43_200 * 0.2 + 1)
    assert not Token("api-key", None).due_for_refresh(1e12)


# --- settings -------------------------------------------------------------------------------------


def test_settings_round_trip_and_errors_name_the_key():
    assert config.load() == config.Settings()
    config.save(config.Settings(server="https://ctid.example/", username="alice", agent="alice").validate())
    assert config.load().server == "https://ctid.example"
    path = config.settings_path()
    for data, key in (({"open_on": "always"}, "open_on"), ({"lease_seconds": 2}, "lease_seconds"),
                      ({"server": "ctid.example"}, "server"), ({"colour": "red"}, "colour")):
        path.write_text(json.dumps(data))
        with pytest.raises(config.SettingsError, match=key):
            config.load()
    path.write_text("{not json")
    with pytest.raises(config.SettingsError, match="settings.json"):
        config.load()


# --- autostart ------------------------------------------------------------------------------------


def test_xdg_autostart(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    auto = LinuxAutostart()
    assert auto.status() == AutostartStatus(False, False, str(tmp_path / "xdg/autostart/ctid-launcher.desktop"))
    status = auto.enable(["/opt/ctid launcher/bin/ctid-launcher", "run", "--autostart"])
    assert status.registered and status.enabled
    text = auto.path.read_text()
    assert "Exec='/opt/ctid launcher/bin/ctid-launcher' run --autostart\n" in text
    assert text.startswith("[Desktop Entry]\nType=Application\n")
    auto.path.write_text(text + "Hidden=true\n")  # the desktop's settings turned it off
    assert auto.status() == AutostartStatus(True, False, str(auto.path))
    assert auto.disable().registered is False


class DictRegistry:
    def __init__(self):
        self.values: dict[tuple[str, str], object] = {}

    def get(self, key, name):
        return self.values.get((key, name))

    def set(self, key, name, value):
        self.values[(key, name)] = value

    def delete(self, key, name):
        self.values.pop((key, name), None)


def test_windows_run_key_honours_startup_approved():
    registry = DictRegistry()
    auto = WindowsAutostart(registry)
    status = auto.enable([r"C:\Program Files\ctid\ctid-launcher.exe", "run", "--autostart"])
    assert registry.values[(RUN, "ctid-launcher")] == r'"C:\Program Files\ctid\ctid-launcher.exe" run --autostart'
    assert status.enabled
    registry.set(APPROVED, "ctid-launcher", bytes([3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))  # disabled in Task Manager
    assert auto.status() == AutostartStatus(True, False, rf"HKCU\{RUN}\ctid-launcher")
    auto.enable([r"C:\ctid\ctid-launcher.exe", "run"])  # enabling again does not touch the user's choice
    assert registry.get(APPROVED, "ctid-launcher")[0] == 3
    registry.set(APPROVED, "ctid-launcher", bytes([2] + [0] * 11))
    assert auto.status().enabled
    with pytest.raises(ValueError, match="260"):
        auto.enable(["C:\\" + "x" * 300])
    assert not auto.disable().registered


def test_macos_launch_agent(tmp_path):
    auto = MacAutostart(home=tmp_path)
    assert auto.enable(["/usr/local/bin/ctid-launcher", "run"]).enabled
    assert auto.path.name == "org.ctid.launcher.plist" and b"RunAtLoad" in auto.path.read_bytes()
    assert not auto.disable().registered


# --- single instance ------------------------------------------------------------------------------


def test_one_launcher_per_user(tmp_path):
    first = SingleInstance(lock_dir=tmp_path)
    first.acquire()
    with pytest.raises(AlreadyRunning):
        SingleInstance(lock_dir=tmp_path).acquire()
    first.release()
    with SingleInstance(lock_dir=tmp_path):
        pass


# --- the CRM pop-up -------------------------------------------------------------------------------

CONTACT = {"status": "found", "matches": [{"id": "c-1", "name": "Anna", "company": "Romashka",
                                          "url": "https://crm/c-1"}], "new_contact_url": None}


def _call(**changes):
    call = {"id": "k1", "direction": "inbound", "state": "ringing", "ringing_agents": ["alice"], "agent": None,
            "remote_number": "+79161234567", "contact": CONTACT}
    call.update(changes)
    return call


@pytest.mark.parametrize(("call", "open_on", "url"), [
    (_call(), "ring", "https://crm/c-1"),
    (_call(contact={"status": "pending", "matches": []}), "ring", None),
    (_call(contact={"status": "unknown", "matches": [], "new_contact_url": "https://crm/new?p=1"}), "ring",
     "https://crm/new?p=1"),
    (_call(ringing_agents=["bob"]), "ring", None),
    (_call(direction="outbound"), "ring", None),
    (_call(), "answer", None),
    (_call(state="talking", agent="alice", ringing_agents=[]), "answer", "https://crm/c-1"),
    (_call(state="talking", agent="bob", ringing_agents=[]), "ring", None),
    (_call(), "never", None),
])
def test_what_opens(call, open_on, url):
    pop = decide(call, "alice", open_on)
    assert (pop.url if pop else None) == url


def test_unknown_number_without_a_new_contact_url_notifies_but_opens_nothing():
    pop = decide(_call(contact={"status": "unknown", "matches": [], "new_contact_url": None}), "alice", "ring")
    assert pop == Pop("k1", None, "+79161234567", None)


def test_each_call_opens_once():
    opened, notes = [], []
    popper = Popper("alice", "ring", opened.append, notes.append)
    for call in (_call(contact={"status": "pending"}), _call(), _call(), _call(state="talking", agent="alice"),
                 _call(id="k2")):
        popper.call_updated(call)
    assert opened == ["https://crm/c-1", "https://crm/c-1"]  # k1 once, k2 once
    assert [n.contact for n in notes] == ["Anna (Romashka)", "Anna (Romashka)"]


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=10)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "direction", "state", "ringing_agents", "agent", "contact",
                                        "remote_number"]), _json))
def test_any_call_json_is_handled(call):
    popper = Popper("alice", "ring", lambda url: None, lambda pop: None)
    popper.call_updated(call)  # never raises, whatever ctid (or a proxy) sends


# --- session sources, texts -------------------------------------------------------------------------


def test_fake_session_lines():
    assert parse("lock") == Event(Kind.LOCKED)
    assert parse("resume locked") == Event(Kind.RESUME, locked=True)
    assert parse("connect") == Event(Kind.CONNECTED, locked=False)
    assert parse("nonsense") is None and parse("") is None


def test_texts_in_russian_and_english(monkeypatch):
    assert set(TEXTS["ru"]) == set(TEXTS["en"])
    monkeypatch.delenv("CTID_LAUNCHER_LANG")
    monkeypatch.setenv("LANG", "ru_RU.UTF-8")
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    assert detect() == "ru" and t("away") == "Отошёл"
    set_language("en")
    assert t("away") == "Away"
    set_language(None)


async def test_macos_poller(autojump_clock):
    states = iter([False, False, True, True, False])
    watcher = MacWatcher(probe=lambda: next(states))
    events: list[Event] = []
    with trio.move_on_after(9):
        await watcher.watch(events.append)
    assert events == [Event(Kind.LOCKED), Event(Kind.UNLOCKED)]


@pytest.fixture
def autojump_clock():
    return trio.testing.MockClock(autojump_threshold=0)


# --- token renewal (MockClock) --------------------------------------------------------------------


async def test_the_token_is_renewed_before_it_expires(autojump_clock, monkeypatch):
    monkeypatch.setenv("CTID_LAUNCHER_KEYRING", "file")
    from ctid_launcher.app import Launcher
    from ctid_launcher.session.fake import FileWatcher

    settings = config.Settings(server="https://ctid.example", username="alice", agent="alice")
    tokens = TokenStore(settings.server, "alice")
    launcher = Launcher(settings, tokens, FileWatcher(Path("/nonexistent")), clock=trio.current_time)

    class FakeApi:
        token = "old"
        refreshed = 0

        async def refresh(self):
            self.refreshed += 1
            return {"access_token": f"new-{self.refreshed}", "expires_in": 43_200}

    launcher.api = FakeApi()
    launcher.token = Token("old", expires_at=trio.current_time() + 43_200)
    with trio.move_on_after(43_200 * 0.8 - 700):
        await launcher._token_loop()
    assert launcher.api.refreshed == 0  # not yet due
    with trio.move_on_after(800):  # due at 80 % of its 12 h; checked every minute
        await launcher._token_loop()
    assert launcher.api.refreshed == 1 and launcher.api.token == "new-1"
    assert tokens.load().value == "new-1"


# --- fuzzing the inputs: settings file, session lines, hub frames, ctid's agent JSON ----------------


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_json)
def test_any_settings_file_loads_or_names_the_problem(data):
    path = config.settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    try:
        config.load()
    except config.SettingsError:
        pass


@given(st.text())
def test_any_session_line(line):
    event = parse(line)
    assert event is None or isinstance(event, Event)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.binary(max_size=40) | st.text(max_size=40).map(lambda s: s + "\x1e"), max_size=5))
def test_any_hub_frame_is_parsed_or_refused(frames):
    from ctid_launcher.hub import Hub, HubDown

    async def check():
        send, _receive = trio.open_memory_channel(0)
        hub = Hub(send, 15, 30)  # only the parsing is used: no socket I/O happens here
        for frame in frames:
            try:
                for message in hub._records(frame):
                    hub._dispatch(message)
            except HubDown:
                return

    trio.run(check)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(st.sampled_from(["status", "status_source", "busy", "id"]), _json))
def test_any_agent_json_from_ctid_goes_through_the_policy(agent):
    from ctid_launcher.app import Launcher
    from ctid_launcher.policy import step
    from ctid_launcher.session.fake import FileWatcher

    launcher = Launcher(config.Settings(server="http://x", agent="alice"), TokenStore("http://x", "alice"),
                        FileWatcher(Path("/nonexistent")))
    launcher._told(agent)
    state = launcher.state
    while True:
        try:
            event = launcher._events.receive_nowait()
        except trio.WouldBlock:
            break
        state, _commands = step(state, event)
