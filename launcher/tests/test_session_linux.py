"""The Linux session watcher against a REAL private ``dbus-daemon`` (Debian package ``dbus``) with a
fake logind (and a fake ScreenSaver) written with jeepney: the production code only reads the bus
addresses from the environment, exactly as on a desktop."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import trio
from jeepney import DBusAddress, MessageType, new_error, new_method_return, new_signal
from jeepney.bus_messages import message_bus

from ctid_launcher.policy import Event, Kind
from ctid_launcher.session.linux import AUTO_PATH, LinuxWatcher, open_bus

SESSION = "/org/freedesktop/login1/session/_31"
SESSION_IF = "org.freedesktop.login1.Session"


@pytest.fixture
def bus(monkeypatch):
    """A private dbus-daemon serving as both the system and the session bus."""
    daemon = shutil.which("dbus-daemon")
    assert daemon, "dbus-daemon missing: scripts/setup --test installs Debian's dbus package"
    proc = subprocess.Popen([daemon, "--session", "--nofork", "--nopidfile", "--print-address=1"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    address = proc.stdout.readline().strip()
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
    monkeypatch.delenv("XDG_SESSION_ID", raising=False)
    yield address
    proc.terminate()
    proc.wait(5)
    proc.stdout.close()


class FakeLogind:
    """Answers GetSession / GetSessionByPID / Properties.Get(LockedHint); emits what a test asks."""

    def __init__(self, has_hint: bool = True):
        self.has_hint, self.hint = has_hint, False
        self.calls: list[str] = []
        self.ready = trio.Event()
        self.router = None

    async def serve(self, address: str, name: str = "org.freedesktop.login1") -> None:
        async with open_bus(address) as bus:
            self.router = bus.conn
            assert await bus.call(message_bus.RequestName(name)) == (1,)
            self.ready.set()
            while True:
                call = await bus.conn.receive()
                if call.header.message_type is MessageType.method_call:
                    await self._answer(bus.conn, call)

    async def _answer(self, router, call) -> None:
        member = call.header.fields[3]
        self.calls.append(member)
        if member in ("GetSession", "GetSessionByPID"):
            await router.send(new_method_return(call, "o", (SESSION,)))
        elif member == "Get" and call.body == (SESSION_IF, "LockedHint") and self.has_hint:
            await router.send(new_method_return(call, "v", (("b", self.hint),)))
        elif member == "GetActive":
            await router.send(new_method_return(call, "b", (self.hint,)))
        else:
            await router.send(new_error(call, "org.freedesktop.DBus.Error.UnknownProperty", "s", ("no",)))

    async def set_hint(self, value: bool, path: str = SESSION) -> None:
        self.hint = value
        emitter = DBusAddress(path, interface="org.freedesktop.DBus.Properties")
        await self.router.send(new_signal(emitter, "PropertiesChanged", "sa{sv}as",
                                          (SESSION_IF, {"LockedHint": ("b", value)}, [])))

    async def sleep(self, going: bool) -> None:
        emitter = DBusAddress("/org/freedesktop/login1", interface="org.freedesktop.login1.Manager")
        await self.router.send(new_signal(emitter, "PrepareForSleep", "b", (going,)))

    async def screensaver(self, active: bool) -> None:
        self.hint = active
        emitter = DBusAddress("/org/freedesktop/ScreenSaver", interface="org.freedesktop.ScreenSaver")
        await self.router.send(new_signal(emitter, "ActiveChanged", "b", (active,)))


async def _until(events: list[Event], count: int) -> None:
    with trio.fail_after(5):
        while len(events) < count:  # noqa: ASYNC110 - another process / thread
            await trio.sleep(0.01)


async def test_logind_locked_hint_suspend_and_resume(bus):
    logind = FakeLogind()
    events: list[Event] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(logind.serve, bus)
        await logind.ready.wait()
        logind.hint = True
        watcher = LinuxWatcher()
        assert await watcher.locked() is True and watcher.description == "logind LockedHint"
        logind.hint = False
        nursery.start_soon(watcher.watch, events.append)
        with trio.fail_after(5):
            while logind.calls.count("Get") < 2:  # noqa: ASYNC110 - another process / thread
                await trio.sleep(0.01)
        await trio.sleep(0.2)  # the watcher's AddMatch calls
        await logind.set_hint(True, path=AUTO_PATH)  # signals on the alias are not ours: ignored
        await logind.set_hint(True)
        await logind.set_hint(True)  # no change, no event
        await logind.set_hint(False)
        await logind.sleep(True)
        await logind.sleep(False)
        await _until(events, 4)
        assert events == [Event(Kind.LOCKED), Event(Kind.UNLOCKED), Event(Kind.SUSPEND),
                          Event(Kind.RESUME, locked=False)]
        assert "GetSessionByPID" in logind.calls  # the real session path, not the alias
        nursery.cancel_scope.cancel()


async def test_screensaver_fallback_when_logind_has_no_locked_hint(bus):
    logind = FakeLogind(has_hint=False)
    screensaver = FakeLogind()
    events: list[Event] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(logind.serve, bus)
        nursery.start_soon(screensaver.serve, bus, "org.freedesktop.ScreenSaver")
        await logind.ready.wait()
        await screensaver.ready.wait()
        watcher = LinuxWatcher()
        assert await watcher.locked() is False
        assert watcher.description == "org.freedesktop.ScreenSaver ActiveChanged"
        nursery.start_soon(watcher.watch, events.append)
        with trio.fail_after(5):
            while screensaver.calls.count("GetActive") < 2:  # noqa: ASYNC110 - another process / thread
                await trio.sleep(0.01)
        await trio.sleep(0.2)
        await screensaver.screensaver(True)
        await screensaver.screensaver(False)
        await _until(events, 2)
        assert events == [Event(Kind.LOCKED), Event(Kind.UNLOCKED)]
        nursery.cancel_scope.cancel()


async def test_no_bus_at_all_reads_as_unlocked(monkeypatch, tmp_path):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/none")
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/none")
    watcher = LinuxWatcher()
    assert await watcher.locked() is False
    assert watcher.description.startswith("none")
