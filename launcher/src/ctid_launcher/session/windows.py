"""Windows: a never-shown top-level window on its own thread receives the session notifications
(``WTSRegisterSessionNotification`` → ``WM_WTSSESSION_CHANGE``), end-session and power messages;
the state at start-up comes from ``WTSQuerySessionInformationW(WTSSessionInfoEx)``.

Pure ``ctypes`` (no pywin32), written against a narrow boundary: :class:`Win32` names every
function used; tests drive :class:`MessageWindow` through a fake table with the same names.
The window is top-level (``WS_POPUP``), not message-only: ``WM_ENDSESSION`` and
``WM_POWERBROADCAST`` are broadcasts, which message-only windows never get. Facts and values:
the reference (launcher.md §1.1, §1.2, §1.6).
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable
from ctypes import wintypes

import trio

from ctid_launcher.policy import Event, Kind

log = logging.getLogger(__name__)

WM_DESTROY, WM_CLOSE, WM_QUERYENDSESSION, WM_ENDSESSION = 0x0002, 0x0010, 0x0011, 0x0016
WM_POWERBROADCAST, WM_WTSSESSION_CHANGE = 0x0218, 0x02B1
PBT_APMSUSPEND, PBT_APMRESUMESUSPEND, PBT_APMRESUMEAUTOMATIC = 0x4, 0x7, 0x12
WS_POPUP = 0x80000000
NOTIFY_FOR_THIS_SESSION = 0
WTS_CURRENT_SERVER_HANDLE, WTS_CURRENT_SESSION, WTS_SESSION_INFO_EX = None, 0xFFFFFFFF, 25
WTS_SESSIONSTATE_LOCK, WTS_SESSIONSTATE_UNLOCK, WTS_SESSIONSTATE_UNKNOWN = 0, 1, 0xFFFFFFFF

#: WM_WTSSESSION_CHANGE wParam → event (None: nothing for the policy). CONNECT re-queries the lock
#: state (after fast user switching the user comes back to a lock screen).
WTS_EVENTS: dict[int, Kind | None] = {
    0x1: Kind.CONNECTED,  # WTS_CONSOLE_CONNECT
    0x2: Kind.DISCONNECTED,  # WTS_CONSOLE_DISCONNECT (also: switching users)
    0x3: Kind.CONNECTED,  # WTS_REMOTE_CONNECT
    0x4: Kind.DISCONNECTED,  # WTS_REMOTE_DISCONNECT (closing the RDP client)
    0x5: None,  # WTS_SESSION_LOGON: the launcher starting is the logon it never sees
    0x6: Kind.LOGOFF,  # WTS_SESSION_LOGOFF
    0x7: Kind.LOCKED,  # WTS_SESSION_LOCK
    0x8: Kind.UNLOCKED,  # WTS_SESSION_UNLOCK
    0x9: None,  # WTS_SESSION_REMOTE_CONTROL
    0xA: None,  # WTS_SESSION_CREATE (reserved)
    0xB: None,  # WTS_SESSION_TERMINATE (reserved)
}


def translate(msg: int, wparam: int, lparam: int) -> Kind | None:
    """The policy event of one window message (pure)."""
    if msg == WM_WTSSESSION_CHANGE:
        return WTS_EVENTS.get(wparam)
    if msg == WM_ENDSESSION and wparam:
        return Kind.LOGOFF
    if msg == WM_POWERBROADCAST:
        if wparam == PBT_APMSUSPEND:
            return Kind.SUSPEND
        if wparam in (PBT_APMRESUMESUSPEND, PBT_APMRESUMEAUTOMATIC):
            return Kind.RESUME
    return None


def locked_from_flags(flags: int, version: tuple[int, int]) -> bool | None:
    """``WTSINFOEX_LEVEL1.SessionFlags`` → locked; the two values are swapped on Windows 7 and
    Server 2008 R2 (6.1) by a documented defect; None when unknown."""
    flags &= 0xFFFFFFFF
    if flags not in (WTS_SESSIONSTATE_LOCK, WTS_SESSIONSTATE_UNLOCK):
        return None
    locked = flags == WTS_SESSIONSTATE_LOCK
    return not locked if version == (6, 1) else locked


# --- structures -------------------------------------------------------------------------------------

WNDPROC = getattr(ctypes, "WINFUNCTYPE", ctypes.CFUNCTYPE)(
    ctypes.c_ssize_t, wintypes.HWND, wintypes.UINT, wintypes.WPARAM, wintypes.LPARAM)


class WNDCLASSEXW(ctypes.Structure):
    _fields_ = [("cbSize", wintypes.UINT), ("style", wintypes.UINT), ("lpfnWndProc", WNDPROC),
                ("cbClsExtra", ctypes.c_int), ("cbWndExtra", ctypes.c_int), ("hInstance", wintypes.HINSTANCE),
                ("hIcon", wintypes.HICON), ("hCursor", wintypes.HANDLE), ("hbrBackground", wintypes.HBRUSH),
                ("lpszMenuName", wintypes.LPCWSTR), ("lpszClassName", wintypes.LPCWSTR), ("hIconSm", wintypes.HICON)]


class MSG(ctypes.Structure):
    _fields_ = [("hwnd", wintypes.HWND), ("message", wintypes.UINT), ("wParam", wintypes.WPARAM),
                ("lParam", wintypes.LPARAM), ("time", wintypes.DWORD), ("pt", wintypes.POINT)]


class WTSINFOEX_LEVEL1_W(ctypes.Structure):  # noqa: N801 - the Windows name
    _fields_ = [("SessionId", wintypes.ULONG), ("SessionState", ctypes.c_int), ("SessionFlags", wintypes.LONG),
                ("WinStationName", wintypes.WCHAR * 33), ("UserName", wintypes.WCHAR * 21),
                ("DomainName", wintypes.WCHAR * 18), ("LogonTime", wintypes.LARGE_INTEGER),
                ("ConnectTime", wintypes.LARGE_INTEGER), ("DisconnectTime", wintypes.LARGE_INTEGER),
                ("LastInputTime", wintypes.LARGE_INTEGER), ("CurrentTime", wintypes.LARGE_INTEGER),
                ("IncomingBytes", wintypes.DWORD), ("OutgoingBytes", wintypes.DWORD),
                ("IncomingFrames", wintypes.DWORD), ("OutgoingFrames", wintypes.DWORD),
                ("IncomingCompressedBytes", wintypes.DWORD), ("OutgoingCompressedBytes", wintypes.DWORD)]


class WTSINFOEX_LEVEL_W(ctypes.Union):  # noqa: N801
    _fields_ = [("WTSInfoExLevel1", WTSINFOEX_LEVEL1_W)]


class WTSINFOEXW(ctypes.Structure):
    _fields_ = [("Level", wintypes.DWORD), ("Data", WTSINFOEX_LEVEL_W)]


class OSVERSIONINFOW(ctypes.Structure):
    _fields_ = [("dwOSVersionInfoSize", wintypes.DWORD), ("dwMajorVersion", wintypes.DWORD),
                ("dwMinorVersion", wintypes.DWORD), ("dwBuildNumber", wintypes.DWORD),
                ("dwPlatformId", wintypes.DWORD), ("szCSDVersion", wintypes.WCHAR * 128)]


class Win32:
    """The Win32 functions the watcher uses, loaded on first use (only on Windows)."""

    FUNCTIONS = {
        "user32": ("RegisterClassExW", "UnregisterClassW", "CreateWindowExW", "DefWindowProcW", "GetMessageW",
                   "TranslateMessage", "DispatchMessageW", "PostMessageW", "DestroyWindow", "PostQuitMessage"),
        "wtsapi32": ("WTSRegisterSessionNotification", "WTSUnRegisterSessionNotification",
                     "WTSQuerySessionInformationW", "WTSFreeMemory"),
        "kernel32": ("GetModuleHandleW", "GetLastError"),
        "ntdll": ("RtlGetVersion",),
    }

    def __init__(self) -> None:
        for dll, names in self.FUNCTIONS.items():
            library = ctypes.WinDLL(dll, use_last_error=True)  # type: ignore[attr-defined]
            for name in names:
                setattr(self, name, getattr(library, name))
        self.DefWindowProcW.restype = ctypes.c_ssize_t
        self.DefWindowProcW.argtypes = [wintypes.HWND, wintypes.UINT, wintypes.WPARAM, wintypes.LPARAM]
        self.CreateWindowExW.restype = wintypes.HWND
        self.GetModuleHandleW.restype = wintypes.HMODULE


def windows_version(api) -> tuple[int, int]:
    info = OSVERSIONINFOW()
    info.dwOSVersionInfoSize = ctypes.sizeof(info)
    api.RtlGetVersion(ctypes.byref(info))
    return info.dwMajorVersion, info.dwMinorVersion


def query_locked(api) -> bool | None:
    """Whether this session is locked now (None when Windows cannot say)."""
    buffer, size = ctypes.c_void_p(), wintypes.DWORD()
    if not api.WTSQuerySessionInformationW(WTS_CURRENT_SERVER_HANDLE, WTS_CURRENT_SESSION, WTS_SESSION_INFO_EX,
                                           ctypes.byref(buffer), ctypes.byref(size)):
        return None
    try:
        info = ctypes.cast(buffer, ctypes.POINTER(WTSINFOEXW)).contents
        if info.Level != 1:
            return None
        return locked_from_flags(info.Data.WTSInfoExLevel1.SessionFlags, windows_version(api))
    finally:
        api.WTSFreeMemory(buffer)


class MessageWindow:
    """The hidden window and its message loop; :meth:`run` blocks on the calling thread."""

    CLASS_NAME = "ctid-launcher-session"

    def __init__(self, api, emit: Callable[[Event], None], register_retries: int = 10,
                 sleep: Callable[[float], None] = time.sleep, end_session_wait: float = 5.0):
        self.api, self.emit = api, emit
        self.hwnd = None
        self.registered = False
        #: set once the launcher has signed off (offline, lease ended): WM_ENDSESSION waits for it, at
        #: most ``end_session_wait`` seconds, because Windows may end the process as soon as it returns
        self.signed_off = threading.Event()
        self._end_session_wait = end_session_wait
        self._retries, self._sleep = register_retries, sleep
        self._wndproc = WNDPROC(self._window_proc)  # kept on self: a collected callback crashes the process

    def run(self) -> None:
        api = self.api
        instance = api.GetModuleHandleW(None)
        wc = WNDCLASSEXW(cbSize=ctypes.sizeof(WNDCLASSEXW), lpfnWndProc=self._wndproc, hInstance=instance,
                         lpszClassName=self.CLASS_NAME)
        api.RegisterClassExW(ctypes.byref(wc))
        self.hwnd = api.CreateWindowExW(0, self.CLASS_NAME, "ctid-launcher", WS_POPUP, 0, 0, 0, 0,
                                        None, None, instance, None)
        try:
            # RPC_S_INVALID_BINDING while Remote Desktop Services start (a Run-key launcher starts early)
            for attempt in range(self._retries):
                if api.WTSRegisterSessionNotification(self.hwnd, NOTIFY_FOR_THIS_SESSION):
                    self.registered = True
                    break
                log.warning("WTSRegisterSessionNotification failed (error %s); retrying", api.GetLastError())
                self._sleep(min(30.0, 0.5 * 2 ** attempt))
            msg = MSG()
            while api.GetMessageW(ctypes.byref(msg), None, 0, 0) > 0:
                api.TranslateMessage(ctypes.byref(msg))
                api.DispatchMessageW(ctypes.byref(msg))
        finally:
            if self.registered:
                api.WTSUnRegisterSessionNotification(self.hwnd)
            api.UnregisterClassW(self.CLASS_NAME, instance)

    def _window_proc(self, hwnd, msg, wparam, lparam) -> int:
        if msg == WM_QUERYENDSESSION:
            return 1  # answer at once; the status goes offline at WM_ENDSESSION
        kind = translate(msg, wparam or 0, lparam or 0)
        if kind is not None:
            if kind in (Kind.CONNECTED, Kind.RESUME):
                self.emit(Event(kind, locked=bool(query_locked(self.api))))
            else:
                self.emit(Event(kind))
        if msg == WM_ENDSESSION and wparam:
            self.signed_off.wait(self._end_session_wait)
        if msg in (WM_WTSSESSION_CHANGE, WM_ENDSESSION):
            return 0
        if msg == WM_POWERBROADCAST:
            return 1
        if msg == WM_CLOSE:
            self.api.DestroyWindow(hwnd)
            return 0
        if msg == WM_DESTROY:
            self.api.PostQuitMessage(0)
            return 0
        return self.api.DefWindowProcW(hwnd, msg, wparam, lparam)

    def stop(self) -> None:
        if self.hwnd:
            self.api.PostMessageW(self.hwnd, WM_CLOSE, 0, 0)


class WindowsWatcher:
    description = "WTS session notifications (WM_WTSSESSION_CHANGE)"

    def __init__(self, api=None):
        self._api = api

    @property
    def api(self):
        if self._api is None:
            self._api = Win32()
        return self._api

    async def locked(self) -> bool:
        return bool(await trio.to_thread.run_sync(query_locked, self.api))

    async def watch(self, emit: Callable[[Event], None]) -> None:
        token = trio.lowlevel.current_trio_token()

        def emit_threadsafe(event: Event) -> None:
            try:
                trio.from_thread.run_sync(emit, event, trio_token=token)
            except trio.RunFinishedError:
                pass

        window = MessageWindow(self.api, emit_threadsafe)
        done = trio.Event()
        thread = threading.Thread(target=lambda: (window.run(), token.run_sync_soon(done.set)),
                                  name="ctid-launcher-session", daemon=True)
        thread.start()
        try:
            await done.wait()
        finally:  # cancelled once the launcher has signed off: a WM_ENDSESSION may go ahead
            window.signed_off.set()
            window.stop()


__all__ = ["WindowsWatcher", "MessageWindow", "translate", "locked_from_flags", "query_locked"]
