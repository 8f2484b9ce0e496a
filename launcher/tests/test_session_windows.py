"""The Windows session watcher on Linux CI: the message translation (every WTS wParam pinned to
the documented table), the start-up state with the Windows 7 / 2008 R2 inversion, and the window
procedure and message loop driven through a fake ctypes function table (the same names as
``Win32``), including real ctypes callbacks and structures."""

from __future__ import annotations

import ctypes
from collections import deque

import pytest
import trio

from ctid_launcher.policy import Event, Kind
from ctid_launcher.session import windows as w

# wParam of WM_WTSSESSION_CHANGE (learn.microsoft.com, wm-wtssession-change)
DOCUMENTED = {0x1: "CONSOLE_CONNECT", 0x2: "CONSOLE_DISCONNECT", 0x3: "REMOTE_CONNECT", 0x4: "REMOTE_DISCONNECT",
              0x5: "SESSION_LOGON", 0x6: "SESSION_LOGOFF", 0x7: "SESSION_LOCK", 0x8: "SESSION_UNLOCK",
              0x9: "SESSION_REMOTE_CONTROL", 0xA: "SESSION_CREATE", 0xB: "SESSION_TERMINATE"}


@pytest.mark.parametrize(("wparam", "kind"), [
    (0x1, Kind.CONNECTED), (0x2, Kind.DISCONNECTED), (0x3, Kind.CONNECTED), (0x4, Kind.DISCONNECTED),
    (0x5, None), (0x6, Kind.LOGOFF), (0x7, Kind.LOCKED), (0x8, Kind.UNLOCKED), (0x9, None), (0xA, None),
    (0xB, None),
])
def test_every_wts_code(wparam, kind):
    assert wparam in DOCUMENTED
    assert w.translate(0x02B1, wparam, 1) is kind


def test_constants_and_other_messages():
    assert (w.WM_WTSSESSION_CHANGE, w.WM_ENDSESSION, w.WM_POWERBROADCAST) == (0x02B1, 0x0016, 0x0218)
    assert set(w.WTS_EVENTS) == set(DOCUMENTED)
    assert w.translate(w.WM_ENDSESSION, 1, 0) is Kind.LOGOFF
    assert w.translate(w.WM_ENDSESSION, 0, 0) is None  # the end-session was cancelled
    assert w.translate(w.WM_POWERBROADCAST, 0x4, 0) is Kind.SUSPEND
    assert w.translate(w.WM_POWERBROADCAST, 0x7, 0) is Kind.RESUME
    assert w.translate(w.WM_POWERBROADCAST, 0x12, 0) is Kind.RESUME
    assert w.translate(w.WM_POWERBROADCAST, 0xA, 0) is None  # PBT_APMPOWERSTATUSCHANGE
    assert w.translate(0x0001, 0, 0) is None  # WM_CREATE


@pytest.mark.parametrize(("flags", "version", "locked"), [
    (0, (10, 0), True), (1, (10, 0), False), (0, (6, 2), True), (1, (6, 3), False),
    (0, (6, 1), False), (1, (6, 1), True),  # Windows 7 / Server 2008 R2: reversed
    (0xFFFFFFFF, (10, 0), None), (-1, (6, 1), None),
])
def test_start_up_state(flags, version, locked):
    assert w.locked_from_flags(flags, version) is locked


class FakeWin32:
    """The Win32 boundary in Python: a message queue, one window, WTS registration, a session."""

    def __init__(self, flags=1, version=(10, 0), register_failures=0):
        self.queue: deque[tuple[int, int, int]] = deque()
        self.calls: list[str] = []
        self.wndproc = None
        self.flags, self.version = flags, version
        self.register_failures = register_failures
        self.freed = 0
        self._info = None

    def _log(self, name):
        self.calls.append(name)

    def GetModuleHandleW(self, name):  # noqa: N802 - the Win32 names
        return 0x400000

    def RegisterClassExW(self, wc):  # noqa: N802
        self._log("RegisterClassExW")
        cls = wc._obj
        assert cls.cbSize == ctypes.sizeof(w.WNDCLASSEXW) and cls.lpszClassName == "ctid-launcher-session"
        self.wndproc = cls.lpfnWndProc
        return 1

    def UnregisterClassW(self, name, instance):  # noqa: N802
        self._log("UnregisterClassW")
        return 1

    def CreateWindowExW(self, ex, cls, title, style, x, y, cx, cy, parent, menu, instance, param):  # noqa: N802
        assert style == w.WS_POPUP and parent is None  # top-level, not HWND_MESSAGE: broadcasts reach it
        self._log("CreateWindowExW")
        return 0x1234

    def WTSRegisterSessionNotification(self, hwnd, flags):  # noqa: N802
        self._log("WTSRegisterSessionNotification")
        assert (hwnd, flags) == (0x1234, 0)
        if self.register_failures:
            self.register_failures -= 1
            return 0
        return 1

    def WTSUnRegisterSessionNotification(self, hwnd):  # noqa: N802
        self._log("WTSUnRegisterSessionNotification")
        return 1

    def GetLastError(self):  # noqa: N802
        return 1702  # RPC_S_INVALID_BINDING

    def GetMessageW(self, msg, hwnd, low, high):  # noqa: N802
        if not self.queue:
            return 0  # WM_QUIT
        message, wparam, lparam = self.queue.popleft()
        target = msg._obj
        target.hwnd, target.message, target.wParam, target.lParam = 0x1234, message, wparam, lparam
        return 1

    def TranslateMessage(self, msg):  # noqa: N802
        return 0

    def DispatchMessageW(self, msg):  # noqa: N802
        m = msg._obj
        self.calls.append(f"result {m.message:#x}={self.wndproc(m.hwnd, m.message, m.wParam, m.lParam)}")

    def DefWindowProcW(self, hwnd, msg, wparam, lparam):  # noqa: N802
        return 0

    def PostMessageW(self, hwnd, msg, wparam, lparam):  # noqa: N802
        self.queue.append((msg, wparam, lparam))
        return 1

    def DestroyWindow(self, hwnd):  # noqa: N802
        self._log("DestroyWindow")
        self.queue.append((w.WM_DESTROY, 0, 0))
        return 1

    def PostQuitMessage(self, code):  # noqa: N802
        self._log("PostQuitMessage")
        self.queue.clear()

    def WTSQuerySessionInformationW(self, server, session, info_class, buffer, size):  # noqa: N802
        assert (server, session, info_class) == (None, 0xFFFFFFFF, 25)
        self._info = w.WTSINFOEXW(Level=1)
        self._info.Data.WTSInfoExLevel1.SessionFlags = self.flags
        buffer._obj.value = ctypes.addressof(self._info)
        size._obj.value = ctypes.sizeof(self._info)
        return 1

    def WTSFreeMemory(self, pointer):  # noqa: N802
        self.freed += 1

    def RtlGetVersion(self, info):  # noqa: N802
        info._obj.dwMajorVersion, info._obj.dwMinorVersion = self.version
        return 0


def test_window_procedure_and_message_loop():
    api = FakeWin32(flags=0)  # locked when the session reconnects
    events: list[Event] = []
    window = w.MessageWindow(api, events.append, end_session_wait=0.05)
    api.queue.extend([(0x02B1, 0x7, 1), (0x02B1, 0x8, 1), (0x02B1, 0x5, 1), (0x02B1, 0x2, 1), (0x02B1, 0x1, 1),
                      (w.WM_POWERBROADCAST, 0x4, 0), (w.WM_QUERYENDSESSION, 0, 0), (w.WM_ENDSESSION, 1, 0),
                      (w.WM_CLOSE, 0, 0)])
    window.run()
    assert events == [Event(Kind.LOCKED), Event(Kind.UNLOCKED), Event(Kind.DISCONNECTED),
                      Event(Kind.CONNECTED, locked=True), Event(Kind.SUSPEND), Event(Kind.LOGOFF)]
    assert "result 0x11=1" in api.calls  # WM_QUERYENDSESSION answered TRUE at once
    assert api.calls.index("DestroyWindow") < api.calls.index("PostQuitMessage")
    assert api.calls[-2:] == ["WTSUnRegisterSessionNotification", "UnregisterClassW"]
    assert api.freed == 1


def test_end_session_waits_for_the_sign_off():
    api = FakeWin32()
    waits: list[float] = []
    window = w.MessageWindow(api, lambda event: None, end_session_wait=30)
    window.signed_off.wait = lambda timeout: waits.append(timeout) or window.signed_off.is_set()
    api.queue.extend([(w.WM_ENDSESSION, 1, 0), (w.WM_ENDSESSION, 0, 0), (w.WM_CLOSE, 0, 0)])
    window.run()
    assert waits == [30]  # only a real end of session (wParam TRUE) waits, at most end_session_wait
    assert api.calls.count("result 0x16=0") == 2


def test_registration_is_retried_while_remote_desktop_services_start():
    api = FakeWin32(register_failures=2)
    slept: list[float] = []
    window = w.MessageWindow(api, lambda e: None, sleep=slept.append)
    window.run()
    assert api.calls.count("WTSRegisterSessionNotification") == 3 and slept == [0.5, 1.0]
    assert window.registered


@pytest.mark.parametrize(("flags", "version", "locked"), [(0, (10, 0), True), (0, (6, 1), False)])
async def test_watcher_start_up_state_and_events_reach_trio(flags, version, locked):
    api = FakeWin32(flags=flags, version=version)
    watcher = w.WindowsWatcher(api)
    assert await watcher.locked() is locked
    api.queue.extend([(0x02B1, 0x7, 1), (0x02B1, 0x8, 1)])
    events: list[Event] = []
    with trio.fail_after(5):
        await watcher.watch(events.append)  # the fake loop ends when its queue is empty (WM_QUIT)
        while len(events) < 2:  # noqa: ASYNC110 - another process / thread
            await trio.sleep(0.01)
    assert events == [Event(Kind.LOCKED), Event(Kind.UNLOCKED)]
