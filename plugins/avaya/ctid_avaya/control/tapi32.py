"""The real TAPI boundary: ctypes over tapi32.dll (Windows only; never imported elsewhere).

Thin on purpose: each method is one lineXxx call with its structures, no policy. It is the only
code of the TAPI backend that the test suite cannot run (there is no tapi32 on Linux) [untested
against a live IP Office TAPI driver]. TAPI 2.2, the "event" notification mechanism with
lineGetMessage, unicode (W) functions, third-party lines as IP Office's TSP presents them (one per
user; the line name carries the extension number [guess]: see ``_extension``).
"""

from __future__ import annotations

import ctypes
import re
import sys
from ctypes import wintypes

from ctid_avaya.control.tapi import CallInfo, LineInfo, TapiMessage

API_VERSION = 0x00020002  # TAPI 2.2
LINEINITIALIZEEXOPTION_USEEVENT = 0x00000002
LINECALLPRIVILEGE_OWNER = 0x00000004
LINECALLPRIVILEGE_MONITOR = 0x00000002
LINEMEDIAMODE_INTERACTIVEVOICE = 0x00000004


class LINEINITIALIZEEXPARAMS(ctypes.Structure):
    _fields_ = [("dwTotalSize", wintypes.DWORD), ("dwNeededSize", wintypes.DWORD), ("dwUsedSize", wintypes.DWORD),
                ("dwOptions", wintypes.DWORD), ("hEvent", wintypes.HANDLE), ("dwCompletionKey", wintypes.DWORD)]


class LINEEXTENSIONID(ctypes.Structure):
    _fields_ = [("dwExtensionID0", wintypes.DWORD), ("dwExtensionID1", wintypes.DWORD),
                ("dwExtensionID2", wintypes.DWORD), ("dwExtensionID3", wintypes.DWORD)]


class LINEMESSAGE(ctypes.Structure):
    _fields_ = [("hDevice", wintypes.DWORD), ("dwMessageID", wintypes.DWORD), ("dwCallbackInstance", ctypes.c_size_t),
                ("dwParam1", ctypes.c_size_t), ("dwParam2", ctypes.c_size_t), ("dwParam3", ctypes.c_size_t)]


# Variable-size structures: fixed header read by offset from a large buffer.
LINEDEVCAPS_LINENAME = (52, 56)  # dwLineNameSize, dwLineNameOffset
LINECALLINFO_FIELDS = {"hLine": 12, "dwCallID": 4 * 43, "caller_size": 4 * 27, "caller_off": 4 * 28,
                       "called_size": 4 * 31, "called_off": 4 * 32}  # offsets per tapi.h LINECALLINFO [guess]


class Tapi32:
    def __init__(self) -> None:
        if sys.platform != "win32":
            raise OSError("TAPI exists only on Windows: run `ctid avaya tapi-bridge` there and use mode: bridge")
        self.dll = ctypes.WinDLL("tapi32.dll")
        self.app = wintypes.DWORD()
        self._calls: dict[int, wintypes.DWORD] = {}  # request id -> the hCall TAPI fills in on LINE_REPLY

    def _check(self, result: int, what: str) -> int:
        if result < 0:
            raise OSError(f"{what} failed: 0x{result & 0xFFFFFFFF:08X}")
        return result

    def initialize(self, app_name: str) -> list[LineInfo]:
        params = LINEINITIALIZEEXPARAMS(dwTotalSize=ctypes.sizeof(LINEINITIALIZEEXPARAMS),
                                        dwOptions=LINEINITIALIZEEXOPTION_USEEVENT)
        count = wintypes.DWORD()
        version = wintypes.DWORD(API_VERSION)
        self._check(self.dll.lineInitializeExW(ctypes.byref(self.app), None, None, app_name, ctypes.byref(count),
                                               ctypes.byref(version), ctypes.byref(params)), "lineInitializeEx")
        lines = []
        for device in range(count.value):
            negotiated = wintypes.DWORD()
            ext_id = LINEEXTENSIONID()
            if self.dll.lineNegotiateAPIVersion(self.app, device, API_VERSION, API_VERSION,
                                                ctypes.byref(negotiated), ctypes.byref(ext_id)) < 0:
                continue
            buffer = ctypes.create_string_buffer(4096)
            ctypes.memmove(buffer, ctypes.byref(wintypes.DWORD(4096)), 4)
            if self.dll.lineGetDevCapsW(self.app, device, negotiated, 0, buffer) < 0:
                continue
            size = int.from_bytes(buffer.raw[LINEDEVCAPS_LINENAME[0]:LINEDEVCAPS_LINENAME[0] + 4], "little")
            offset = int.from_bytes(buffer.raw[LINEDEVCAPS_LINENAME[1]:LINEDEVCAPS_LINENAME[1] + 4], "little")
            name = buffer.raw[offset:offset + size].decode("utf-16-le", errors="replace").rstrip("\x00")
            extension = _extension(name)
            if extension:
                lines.append(LineInfo(device, name, extension))
        return lines

    def open_line(self, device_id: int) -> int:
        handle = wintypes.DWORD()
        self._check(self.dll.lineOpenW(self.app, device_id, ctypes.byref(handle), API_VERSION, 0, 0,
                                       LINECALLPRIVILEGE_OWNER | LINECALLPRIVILEGE_MONITOR,
                                       LINEMEDIAMODE_INTERACTIVEVOICE, None), "lineOpen")
        return handle.value

    def make_call(self, line: int, destination: str) -> int:
        call = wintypes.DWORD()  # TAPI writes the hCall when the request completes: keep it alive
        request = self.dll.lineMakeCallW(line, ctypes.byref(call), destination, 0, None)
        if request > 0:
            self._calls[request] = call
            while len(self._calls) > 256:  # completed long ago
                self._calls.pop(next(iter(self._calls)))
        return request

    def hold(self, call: int) -> int:
        return self.dll.lineHold(call)

    def unhold(self, call: int) -> int:
        return self.dll.lineUnhold(call)

    def blind_transfer(self, call: int, destination: str) -> int:
        return self.dll.lineBlindTransferW(call, destination, 0)

    def drop(self, call: int) -> int:
        return self.dll.lineDrop(call, None, 0)

    def call_info(self, call: int) -> CallInfo:
        buffer = ctypes.create_string_buffer(8192)
        ctypes.memmove(buffer, ctypes.byref(wintypes.DWORD(8192)), 4)
        self._check(self.dll.lineGetCallInfoW(call, buffer), "lineGetCallInfo")
        raw = buffer.raw

        def dword(offset: int) -> int:
            return int.from_bytes(raw[offset:offset + 4], "little")

        def text(size_at: int, offset_at: int) -> str:
            size, offset = dword(size_at), dword(offset_at)
            return raw[offset:offset + size].decode("utf-16-le", errors="replace").rstrip("\x00") if size else ""

        f = LINECALLINFO_FIELDS
        return CallInfo(line=dword(f["hLine"]), caller=text(f["caller_size"], f["caller_off"]),
                        called=text(f["called_size"], f["called_off"]), call_id=dword(f["dwCallID"]))

    def get_message(self, timeout_ms: int) -> TapiMessage | None:
        message = LINEMESSAGE()
        if self.dll.lineGetMessage(self.app, ctypes.byref(message), timeout_ms) < 0:
            return None  # LINEERR_OPERATIONFAILED on timeout
        return TapiMessage(message.dwMessageID, message.hDevice, message.dwParam1, message.dwParam2, message.dwParam3)

    def shutdown(self) -> None:
        self.dll.lineShutdown(self.app)


def _extension(line_name: str) -> str | None:
    """IP Office's TSP names third-party lines after the user, with the extension in it [guess]:
    the last run of digits (e.g. ``"Anna 201"`` / ``"IP Office Phone: 201"``)."""
    found = re.findall(r"\d{2,}", line_name)
    return found[-1] if found else None
