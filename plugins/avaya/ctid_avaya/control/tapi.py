"""IP Office TAPI (third-party mode) above a narrow boundary: the engine and the ``tapi`` backend.

Everything TAPI-specific that is not a tapi32.dll call lives here and is tested on any OS against
``ctid_avaya.testing.fake_tapi.FakeTapi``, which follows TAPI's call model: one line per extension
(third-party mode), asynchronous functions that return a request id and complete with a LINE_REPLY
message, call state changes as LINE_CALLSTATE messages, new calls as LINE_APPNEWCALL. The real
boundary, :class:`ctid_avaya.control.tapi32.Tapi32`, is ctypes over tapi32.dll (Windows only).

The backend runs the engine in-process (``mode: local``, ctid on Windows) or talks to
``ctid avaya tapi-bridge`` on a Windows host (``mode: bridge``) over HTTP with a bearer token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

import httpx
import trio

from ctid.errors import PBXError
from ctid.model import Capability
from ctid_avaya.control.base import ControlBackend, refused, same_party, unreachable

log = logging.getLogger(__name__)

# TAPI 2.x message ids and call states (tapi.h)
LINE_CALLINFO = 1
LINE_CALLSTATE = 2
LINE_CLOSE = 3
LINE_REPLY = 12
LINE_APPNEWCALL = 23

LINECALLSTATE_IDLE = 0x00000001
LINECALLSTATE_OFFERING = 0x00000002
LINECALLSTATE_ACCEPTED = 0x00000004
LINECALLSTATE_DIALTONE = 0x00000008
LINECALLSTATE_DIALING = 0x00000010
LINECALLSTATE_RINGBACK = 0x00000020
LINECALLSTATE_BUSY = 0x00000040
LINECALLSTATE_CONNECTED = 0x00000100
LINECALLSTATE_PROCEEDING = 0x00000200
LINECALLSTATE_ONHOLD = 0x00000400
LINECALLSTATE_DISCONNECTED = 0x00004000

ACTIVE = LINECALLSTATE_CONNECTED
LIVE_STATES = (LINECALLSTATE_CONNECTED | LINECALLSTATE_ONHOLD | LINECALLSTATE_RINGBACK | LINECALLSTATE_PROCEEDING
               | LINECALLSTATE_DIALING | LINECALLSTATE_OFFERING | LINECALLSTATE_ACCEPTED)

LINEERR = {
    0x80000005: "LINEERR_CALLUNAVAIL",
    0x80000007: "LINEERR_INUSE",
    0x80000018: "LINEERR_INVALCALLHANDLE",
    0x8000001C: "LINEERR_INVALCALLSTATE",
    0x80000023: "LINEERR_INVALDESTADDRESS",
    0x80000048: "LINEERR_OPERATIONFAILED",
    0x80000049: "LINEERR_OPERATIONUNAVAIL",
    0x8000004B: "LINEERR_RESOURCEUNAVAIL",
    0x80000050: "LINEERR_NOTOWNER",
}


def lineerr(code: int) -> str:
    code &= 0xFFFFFFFF
    return f"{LINEERR.get(code, 'LINEERR')} (0x{code:08X})"


@dataclass(frozen=True, slots=True)
class LineInfo:
    device_id: int
    name: str
    extension: str


@dataclass(frozen=True, slots=True)
class TapiMessage:
    message: int
    device: int  # hLine or hCall, as TAPI says for the message
    param1: int = 0
    param2: int = 0
    param3: int = 0


@dataclass(frozen=True, slots=True)
class CallInfo:
    line: int  # hLine
    caller: str
    called: str
    call_id: int


class TapiBoundary(Protocol):
    """The tapi32 functions the engine uses (lineXxx), with TAPI's own semantics: asynchronous
    functions return a positive request id, or a negative LINEERR code when refused at once."""

    def initialize(self, app_name: str) -> list[LineInfo]: ...

    def open_line(self, device_id: int) -> int: ...

    def make_call(self, line: int, destination: str) -> int: ...

    def hold(self, call: int) -> int: ...

    def unhold(self, call: int) -> int: ...

    def blind_transfer(self, call: int, destination: str) -> int: ...

    def drop(self, call: int) -> int: ...

    def call_info(self, call: int) -> CallInfo: ...

    def get_message(self, timeout_ms: int) -> TapiMessage | None: ...

    def shutdown(self) -> None: ...


@dataclass(slots=True)
class _Line:
    info: LineInfo
    handle: int
    calls: dict[int, int] = field(default_factory=dict)  # hCall -> LINECALLSTATE


class TapiEngine:
    """Lines per extension, live calls per line from TAPI's messages, commands awaited to LINE_REPLY."""

    def __init__(self, boundary: TapiBoundary, *, app_name: str = "ctid", reply_timeout: float = 10):
        self.boundary = boundary
        self.app_name = app_name
        self.reply_timeout = reply_timeout
        self.lines: dict[str, _Line] = {}
        self._by_handle: dict[int, _Line] = {}
        self._call_line: dict[int, _Line] = {}
        self._info: dict[int, CallInfo] = {}
        self._replies: dict[int, trio.Event] = {}
        self._results: dict[int, int] = {}
        self.started = trio.Event()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Initialize, open every extension's line, then pump TAPI's messages until cancelled."""
        infos = await trio.to_thread.run_sync(self.boundary.initialize, self.app_name)
        for info in infos:
            handle = await trio.to_thread.run_sync(self.boundary.open_line, info.device_id)
            line = _Line(info, handle)
            self.lines[info.extension] = line
            self._by_handle[handle] = line
        self.started.set()
        task_status.started()
        try:
            while True:
                message = await trio.to_thread.run_sync(self.boundary.get_message, 200, abandon_on_cancel=True)
                if message is not None:
                    await self._handle(message)
        finally:
            self.boundary.shutdown()

    async def _handle(self, message: TapiMessage) -> None:
        if message.message == LINE_REPLY:
            self._results[message.param1] = message.param2
            waiter = self._replies.pop(message.param1, None)
            if waiter is not None:
                waiter.set()
        elif message.message == LINE_APPNEWCALL:
            line = self._by_handle.get(message.device)
            if line is not None:  # param2 = hCall of the new call, our privilege in param3
                line.calls[message.param2] = 0
                self._call_line[message.param2] = line
        elif message.message == LINE_CALLSTATE:
            line = self._call_line.get(message.device)
            if line is None:  # a call we made ourselves: LINECALLINFO.hLine names its line
                info = await trio.to_thread.run_sync(self.boundary.call_info, message.device)
                line = self._by_handle.get(info.line)
                if line is None:
                    return
                self._call_line[message.device] = line
            if message.param1 in (LINECALLSTATE_IDLE, LINECALLSTATE_DISCONNECTED):
                line.calls.pop(message.device, None)
                self._call_line.pop(message.device, None)
                self._info.pop(message.device, None)
            else:
                line.calls[message.device] = message.param1

    async def _await(self, what: str, request: int) -> None:
        if request < 0:
            raise refused(what, lineerr(request))
        waiter = self._replies.setdefault(request, trio.Event())
        if request not in self._results:
            with trio.move_on_after(self.reply_timeout):
                await waiter.wait()
        self._replies.pop(request, None)
        if request not in self._results:
            raise PBXError(f"TAPI did not complete {what} within {self.reply_timeout:g} s", error_id="pbx_timeout")
        result = self._results.pop(request)
        if result != 0:
            raise refused(what, lineerr(result))

    def _line(self, extension: str) -> _Line:
        line = self.lines.get(extension)
        if line is None:
            raise refused("the command", f"extension {extension} has no TAPI line (third-party mode, all users?)")
        return line

    async def _call(self, extension: str, remote: str | None, states: int) -> int:
        line = self._line(extension)
        candidates = [h for h, state in line.calls.items() if state & states]
        if remote and len(candidates) > 1:
            for handle in candidates:
                info = self._info.get(handle)
                if info is None:
                    info = self._info[handle] = await trio.to_thread.run_sync(self.boundary.call_info, handle)
                if same_party(info.caller, remote) or same_party(info.called, remote):
                    return handle
        if not candidates:
            raise refused("the command", f"extension {extension} has no call in that state")
        return candidates[0]

    # -- the five controls -----------------------------------------------------------------------
    async def dial(self, extension: str, number: str) -> None:
        line = self._line(extension)
        await self._await("the call", self.boundary.make_call(line.handle, number))

    def _completed(self, extension: str, call: int, state: int | None) -> None:
        """A request completed (LINE_REPLY 0): the call is in its new state even if the LINE_CALLSTATE
        saying so is still queued, so the next command sees it (None: the call left this line)."""
        line = self.lines[extension]
        if state is None:
            line.calls.pop(call, None)
        elif call in line.calls:
            line.calls[call] = state

    async def hold(self, extension: str, remote: str | None) -> None:
        call = await self._call(extension, remote, LINECALLSTATE_CONNECTED)
        await self._await("hold", self.boundary.hold(call))
        self._completed(extension, call, LINECALLSTATE_ONHOLD)

    async def unhold(self, extension: str, remote: str | None) -> None:
        call = await self._call(extension, remote, LINECALLSTATE_ONHOLD)
        await self._await("retrieve", self.boundary.unhold(call))
        self._completed(extension, call, LINECALLSTATE_CONNECTED)

    async def transfer(self, extension: str, remote: str | None, target: str) -> None:
        call = await self._call(extension, remote, LINECALLSTATE_CONNECTED | LINECALLSTATE_ONHOLD)
        await self._await("the transfer", self.boundary.blind_transfer(call, target))
        self._completed(extension, call, None)

    async def hangup(self, extension: str, remote: str | None) -> None:
        call = await self._call(extension, remote, LIVE_STATES)
        await self._await("hang-up", self.boundary.drop(call))
        self._completed(extension, call, None)


class TapiBackend(ControlBackend):
    """``backend: tapi``: the engine in this process (Windows) or behind ``ctid avaya tapi-bridge``."""

    name = "tapi"
    capabilities = frozenset({Capability.DIAL, Capability.HOLD, Capability.TRANSFER, Capability.HANGUP})

    def __init__(self, config, instance: str, *, boundary: TapiBoundary | None = None,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        self.instance = instance
        self.engine: TapiEngine | None = None
        self._boundary = boundary
        self._http: httpx.AsyncClient | None = None
        if config.mode == "bridge":
            self._http = httpx.AsyncClient(
                base_url=config.bridge_url.rstrip("/"), timeout=config.timeout, transport=transport,
                headers={"Authorization": f"Bearer {config.bridge_token.get_secret_value()}"},
            )

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        if self.config.mode == "bridge":
            task_status.started()
            return
        if self._boundary is None:
            from ctid_avaya.control.tapi32 import Tapi32

            self._boundary = Tapi32()
        self.engine = TapiEngine(self._boundary)
        await self.engine.run(task_status=task_status)

    async def _bridge(self, command: str, **payload) -> dict:
        assert self._http is not None
        try:
            response = await self._http.post(f"/v1/{command}", json=payload)
        except httpx.HTTPError as exc:
            raise unreachable("the TAPI bridge", f"{type(exc).__name__}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code == 409:
            raise PBXError(body.get("message", "the PBX refused"), error_id="pbx_refused",
                           retryable=False)
        if response.status_code >= 400:
            raise unreachable("the TAPI bridge", f"HTTP {response.status_code} {body.get('message', '')}".strip())
        return body

    async def _engine(self) -> TapiEngine:
        if self.engine is None or not self.engine.started.is_set():
            raise unreachable("TAPI", "the TAPI engine is not started")
        return self.engine

    async def dial(self, extension: str, number: str) -> str | None:
        if self._http is not None:
            await self._bridge("dial", extension=extension, number=number)
        else:
            await (await self._engine()).dial(extension, number)
        return None

    async def hold(self, extension: str, remote: str | None) -> None:
        if self._http is not None:
            await self._bridge("hold", extension=extension, remote=remote)
        else:
            await (await self._engine()).hold(extension, remote)

    async def unhold(self, extension: str, remote: str | None) -> None:
        if self._http is not None:
            await self._bridge("unhold", extension=extension, remote=remote)
        else:
            await (await self._engine()).unhold(extension, remote)

    async def transfer(self, extension: str, remote: str | None, target: str) -> None:
        if self._http is not None:
            await self._bridge("transfer", extension=extension, remote=remote, target=target)
        else:
            await (await self._engine()).transfer(extension, remote, target)

    async def hangup(self, extension: str, remote: str | None) -> None:
        if self._http is not None:
            await self._bridge("hangup", extension=extension, remote=remote)
        else:
            await (await self._engine()).hangup(extension, remote)

    async def check(self) -> str:
        if self._http is not None:
            try:
                response = await self._http.get("/v1/health")
            except httpx.HTTPError as exc:
                raise unreachable("the TAPI bridge", str(exc)) from exc
            if response.status_code != 200:
                raise unreachable("the TAPI bridge", f"HTTP {response.status_code}")
            return f"bridge: {response.json().get('lines', 0)} lines"
        engine = await self._engine()
        return f"{len(engine.lines)} lines"

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
