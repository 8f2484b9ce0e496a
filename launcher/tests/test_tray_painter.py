"""PystrayTray's contract with the launcher, against a pystray stand-in with pystray's threading:
the caller never waits on the desktop, a wedged tray call is logged once and left behind, the latest
state wins, and nothing of pystray's keeps the process from exiting. (The real pystray under a real
tray manager: test_tray_xvfb.py.)"""

from __future__ import annotations

import logging
import sys
import threading
import types

import pytest

from ctid_launcher.tray.pystray_tray import PystrayTray


class FakeIcon:
    """pystray.Icon's surface and threads: ``run(setup)`` starts ``setup`` in a non-daemon thread and
    blocks until ``stop``; every setter can be wedged by clearing ``gate``."""

    HAS_NOTIFICATION = True
    made: list[FakeIcon] = []

    def __init__(self, name, icon, title, menu=None) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.stuck = threading.Event()  # a call is waiting at the closed gate
        self.applied: list[tuple[str, object]] = []
        self.setup_thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._icon, self._title, self._visible = icon, title, False
        self.fail_next: Exception | None = None
        FakeIcon.made.append(self)

    def _through(self, what: str, value: object) -> None:
        if not self.gate.is_set():
            self.stuck.set()
        self.gate.wait()
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        self.applied.append((what, value))

    def run(self, setup=None) -> None:
        self.setup_thread = threading.Thread(target=setup, args=(self,))  # pystray's: not a daemon
        self.setup_thread.start()
        self._stopped.wait()

    def stop(self) -> None:
        self._through("stop", None)
        self._stopped.set()

    @property
    def visible(self) -> bool:
        return self._visible

    @visible.setter
    def visible(self, value: bool) -> None:
        self._through("visible", value)
        self._visible = value

    @property
    def icon(self):
        return self._icon

    @icon.setter
    def icon(self, value) -> None:
        self._through("icon", value)
        self._icon = value

    @property
    def title(self) -> str:
        return self._title

    @title.setter
    def title(self, value: str) -> None:
        self._through("title", value)
        self._title = value

    def update_menu(self) -> None:
        raise NotImplementedError  # as pystray's xorg backend

    def notify(self, message: str, title: str | None = None) -> None:
        self._through("notify", (title, message))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake_pystray(monkeypatch):
    module = types.ModuleType("pystray")
    module.Icon = FakeIcon
    module.MenuItem = lambda *args, **kwargs: (args, kwargs)

    class Menu(tuple):
        SEPARATOR = "---"

        def __new__(cls, *items):
            return super().__new__(cls, items)

    module.Menu = Menu
    monkeypatch.setitem(sys.modules, "pystray", module)
    FakeIcon.made.clear()
    return module


def titles(icon: FakeIcon) -> list[object]:
    return [value for what, value in icon.applied if what == "title"]


def test_show_never_waits_on_a_wedged_tray_and_the_latest_state_wins(fake_pystray, caplog) -> None:
    clock = FakeClock()
    tray = PystrayTray(stall_after=10, stop_within=1, clock=clock)
    tray.start(lambda action: None)
    assert tray.visible.wait(5)
    icon = FakeIcon.made[0]
    icon.setup_thread.join(5)
    assert not icon.setup_thread.is_alive()  # pystray's non-daemon setup thread is already gone

    icon.gate.clear()  # the tray manager stops answering
    tray.show("available", "ctid: available")
    assert icon.stuck.wait(5)  # the painter is in pystray with "available"
    assert not tray.settle(0.05)
    for status in ("dnd", "away"):  # the caller goes on at once
        tray.show(status, f"ctid: {status}")
    assert tray.status == "away"

    caplog.set_level(logging.WARNING, "ctid_launcher.tray.pystray_tray")
    assert not tray.check_stall()  # not yet stuck for stall_after
    clock.now += 10
    tray.check_stall()  # the watchdog thread may have been first: either way, one warning per stall
    tray.check_stall()
    assert [r.getMessage() for r in caplog.records] == [
        "tray: the tray icon has not answered for 10 s (the desktop's tray manager may be stuck); "
        "the launcher goes on without it"
    ]

    icon.gate.set()
    assert tray.settle(5)
    assert titles(icon) == ["ctid: available", "ctid: away"]  # "dnd" was overtaken while wedged
    assert icon.title == "ctid: away"
    tray.stop()
    assert ("stop", None) in icon.applied


def test_stop_is_bounded_when_pystray_is_wedged(fake_pystray, caplog) -> None:
    tray = PystrayTray(stop_within=0.2)
    tray.start(lambda action: None)
    assert tray.visible.wait(5)
    icon = FakeIcon.made[0]
    icon.gate.clear()
    tray.show("available", "ctid: available")
    assert icon.stuck.wait(5)
    caplog.set_level(logging.WARNING, "ctid_launcher.tray.pystray_tray")
    tray.stop()  # returns although the painter and pystray's loop are stuck
    left = sorted(r.getMessage() for r in caplog.records)
    assert left == [
        "tray: thread ctid-tray did not end within 0.2 s of stop; leaving it",
        "tray: thread ctid-tray-paint did not end within 0.2 s of stop; leaving it",
    ]
    alive = [t for t in threading.enumerate() if t.name.startswith("ctid-tray")]
    assert alive and all(t.daemon for t in alive)  # nothing of the tray holds the process at exit
    icon.gate.set()


def test_a_failing_pystray_call_is_logged_and_painting_goes_on(fake_pystray, caplog) -> None:
    tray = PystrayTray()
    tray.start(lambda action: None)
    assert tray.visible.wait(5)
    icon = FakeIcon.made[0]
    icon.fail_next = OSError("BadWindow")
    caplog.set_level(logging.ERROR, "ctid_launcher.tray.pystray_tray")
    tray.show("available", "ctid: available")
    assert tray.settle(5)
    assert [r.getMessage() for r in caplog.records] == ["tray: pystray failed"]
    tray.show("dnd", "ctid: dnd")
    assert tray.settle(5)
    assert icon.title == "ctid: dnd"
    tray.notify("Incoming call", "+7 495 123-45-67 — Romashka LLC")
    tray.stop()
    assert ("notify", ("Incoming call", "+7 495 123-45-67 — Romashka LLC")) in icon.applied
    assert icon.applied[-1] == ("stop", None)


class LostWakeUpDisplay:
    """python-xlib's display as the lost wake-up leaves it: pystray's loop waits until some other
    thread's ``send_and_recv`` (a flush) releases it."""

    def __init__(self, icon: FakeIcon) -> None:
        self.icon, self.flushes = icon, 0

    def flush(self) -> None:
        self.flushes += 1
        self.icon.gate.set()


def test_the_watchdog_nudges_a_lost_x_wake_up_before_it_becomes_a_stall(fake_pystray, caplog) -> None:
    clock = FakeClock()
    tray = PystrayTray(stall_after=10, nudge_after=1, clock=clock)
    tray.start(lambda action: None)
    assert tray.visible.wait(5)
    icon = FakeIcon.made[0]
    icon._display = display = LostWakeUpDisplay(icon)
    icon.gate.clear()
    tray.show("available", "ctid: available")
    assert icon.stuck.wait(5)
    clock.now += 0.5
    assert not tray.check_stall()
    assert display.flushes == 0  # a call that is merely slow is left alone
    clock.now += 0.5
    caplog.set_level(logging.WARNING, "ctid_launcher.tray.pystray_tray")
    assert not tray.check_stall()  # nudged, not reported
    assert display.flushes >= 1
    assert tray.settle(5)
    assert icon.title == "ctid: available"
    assert caplog.records == []
    tray.stop()


def test_the_icon_is_set_again_after_it_became_visible_and_then_periodically(fake_pystray) -> None:
    tray = PystrayTray(first_refresh=0.01, refresh_every=0.01)
    tray.start(lambda action: None)
    assert tray.visible.wait(5)
    icon = FakeIcon.made[0]
    tray.show("away", "ctid: away")
    assert tray.settle(5)
    sets = threading.Semaphore(0)
    real = FakeIcon._through

    def counting(self, what, value):
        real(self, what, value)
        if what == "icon":
            sets.release()

    icon._through = types.MethodType(counting, icon)
    for _ in range(3):  # no show: the painter sets the current picture again by itself
        assert sets.acquire(timeout=5)
    assert icon.icon is icon.applied[-1][1] and icon.title == "ctid: away"
    tray.stop()
