"""A fake tapi32 boundary that follows TAPI's call model (third-party mode, one line per extension).

Asynchronous functions return a request id and complete later with LINE_REPLY; a bad handle is
refused at once with a negative LINEERR; an operation in the wrong call state completes with
LINEERR_INVALCALLSTATE; ``refuse_next`` makes the next request fail like a PBX refusal. State
changes arrive as LINE_CALLSTATE, calls offered to a line as LINE_APPNEWCALL then LINE_CALLSTATE.
"""

from __future__ import annotations

import itertools
import queue
import threading
from dataclasses import dataclass

from ctid_avaya.control import tapi as t

INVALCALLHANDLE = -0x7FFFFFE8  # 0x80000018 as a signed LONG
INVALCALLSTATE = 0x8000001C


@dataclass
class FakeCall:
    handle: int
    line: int
    state: int
    caller: str
    called: str


class FakeTapi:
    def __init__(self, extensions: dict[str, str]):
        self.extensions = extensions  # extension -> user name
        self.lines: dict[str, int] = {}
        self.calls: dict[int, FakeCall] = {}
        self.messages: queue.Queue[t.TapiMessage] = queue.Queue()
        self.log: list[tuple] = []
        self.refuse_next: int | None = None
        self._ids = itertools.count(1)
        self._handles = itertools.count(0x10001)
        self._lock = threading.Lock()
        self.initialized = False

    # -- the boundary ----------------------------------------------------------------------------
    def initialize(self, app_name: str) -> list[t.LineInfo]:
        self.initialized = True
        return [t.LineInfo(i, f"{name} {ext}", ext) for i, (ext, name) in enumerate(self.extensions.items())]

    def open_line(self, device_id: int) -> int:
        ext = list(self.extensions)[device_id]
        handle = next(self._handles)
        self.lines[ext] = handle
        return handle

    def _request(self, name: str, *args, check=None, apply=None) -> int:
        with self._lock:
            self.log.append((name, *args))
            request = next(self._ids)
            if self.refuse_next is not None:
                code, self.refuse_next = self.refuse_next, None
                self.messages.put(t.TapiMessage(t.LINE_REPLY, 0, request, code))
                return request
            if check is not None and not check():
                self.messages.put(t.TapiMessage(t.LINE_REPLY, 0, request, INVALCALLSTATE))
                return request
            self.messages.put(t.TapiMessage(t.LINE_REPLY, 0, request, 0))
            if apply is not None:
                apply()
            return request

    def _set(self, call: FakeCall, state: int) -> None:
        call.state = state
        self.messages.put(t.TapiMessage(t.LINE_CALLSTATE, call.handle, state))
        if state == t.LINECALLSTATE_IDLE:
            self.calls.pop(call.handle, None)

    def make_call(self, line: int, destination: str) -> int:
        if line not in self.lines.values():
            return INVALCALLHANDLE
        ext = next(e for e, h in self.lines.items() if h == line)

        def apply() -> None:
            call = FakeCall(next(self._handles), line, t.LINECALLSTATE_DIALING, ext, destination)
            self.calls[call.handle] = call
            self._set(call, t.LINECALLSTATE_PROCEEDING)

        return self._request("lineMakeCall", ext, destination, apply=apply)

    def _op(self, name: str, handle: int, allowed: int, new_state: int, *extra) -> int:
        call = self.calls.get(handle)
        if call is None:
            return INVALCALLHANDLE
        return self._request(name, handle, *extra, check=lambda: bool(call.state & allowed),
                             apply=lambda: self._set(call, new_state))

    def hold(self, call: int) -> int:
        return self._op("lineHold", call, t.LINECALLSTATE_CONNECTED, t.LINECALLSTATE_ONHOLD)

    def unhold(self, call: int) -> int:
        return self._op("lineUnhold", call, t.LINECALLSTATE_ONHOLD, t.LINECALLSTATE_CONNECTED)

    def blind_transfer(self, call: int, destination: str) -> int:
        return self._op("lineBlindTransfer", call, t.LINECALLSTATE_CONNECTED | t.LINECALLSTATE_ONHOLD,
                        t.LINECALLSTATE_IDLE, destination)

    def drop(self, call: int) -> int:
        return self._op("lineDrop", call, t.LIVE_STATES, t.LINECALLSTATE_IDLE)

    def call_info(self, call: int) -> t.CallInfo:
        found = self.calls.get(call)
        if found is None:
            return t.CallInfo(0, "", "", 0)
        return t.CallInfo(found.line, found.caller, found.called, found.handle)

    def get_message(self, timeout_ms: int) -> t.TapiMessage | None:
        try:
            return self.messages.get(timeout=timeout_ms / 1000)
        except queue.Empty:
            return None

    def shutdown(self) -> None:
        self.initialized = False

    # -- the PBX side: calls arriving at extensions ----------------------------------------------
    def offer(self, extension: str, caller: str, *, answer: bool = True) -> int:
        line = self.lines[extension]
        call = FakeCall(next(self._handles), line, t.LINECALLSTATE_OFFERING, caller, extension)
        self.calls[call.handle] = call
        self.messages.put(t.TapiMessage(t.LINE_APPNEWCALL, line, 0, call.handle, t.LINECALLSTATE_OFFERING))
        self._set(call, t.LINECALLSTATE_OFFERING)
        if answer:
            self._set(call, t.LINECALLSTATE_CONNECTED)
        return call.handle

    def state_of(self, handle: int) -> int | None:
        call = self.calls.get(handle)
        return call.state if call else None
