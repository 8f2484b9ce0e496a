"""``backend: aes-dmcc``: Avaya Aura AES DMCC XML over TLS 4722 (reference §3.3).

One application session per connector instance: ``StartApplicationSession`` (user, password,
requested protocol and duration), kept alive with ``ResetApplicationSessionTimer`` at half the
duration. After a broken link the client resumes by sending ``StartApplicationSession`` with the
old sessionID; if AES refuses, it starts a new session (this backend holds no monitors, so there
is nothing to move with TransferMonitorObjects). Calls are found with ``SnapshotDevice`` on the
agent's device [guess: ECMA-323 service, not seen in the public DMCC samples]; commands are
MakeCall, HoldCall, RetrieveCall, SingleStepTransferCall, ClearConnection. A ``CSTAErrorCode``
answer is the PBX's refusal.
"""

from __future__ import annotations

import itertools
import logging
import random
import ssl

import trio

from ctid.errors import PBXError
from ctid.limits import ascii_digits
from ctid.model import Capability
from ctid_avaya.client import unwrap
from ctid_avaya.control import dmcc_wire as w
from ctid_avaya.control.base import ControlBackend, refused, same_party, unreachable

log = logging.getLogger(__name__)


class DmccBackend(ControlBackend):
    name = "aes-dmcc"
    capabilities = frozenset({Capability.DIAL, Capability.HOLD, Capability.TRANSFER, Capability.HANGUP})

    def __init__(self, config, instance: str):
        self.config = config
        self.instance = instance
        self.session_id: str | None = None
        self.sessions_started = 0
        self.resumed = 0
        self.last_error: str | None = None
        self._stream: trio.abc.Stream | None = None
        self._send_lock = trio.Lock()
        self._waiters: dict[int, trio.MemorySendChannel] = {}
        self._invokes = itertools.cycle(range(1, 9999))
        self._devices: dict[str, str] = {}
        self._ready = trio.Event()
        self._running = False  # run() started: the daemon's session, not a probe's

    # -- the session -----------------------------------------------------------------------------
    async def _connect(self) -> trio.abc.Stream:
        cfg = self.config
        if not cfg.tls:
            return await trio.open_tcp_stream(cfg.host, cfg.port)
        from ctid_avaya.client import tls_context  # noqa: I001

        return await trio.open_ssl_over_tcp_stream(cfg.host, cfg.port,
                                                   ssl_context=tls_context(cfg.tls_verify, cfg.ca_file))

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self._running = True
        task_status.started()
        delay = 1.0
        while True:
            try:
                try:
                    with trio.fail_after(self.config.timeout):
                        stream = await self._connect()
                    async with stream, trio.open_nursery() as nursery:
                        self._stream = stream
                        nursery.start_soon(self._reader, stream)
                        await self._start_session()
                        delay = 1.0
                        self._ready.set()
                        await self._keepalive()
                except BaseExceptionGroup as group:
                    raise unwrap(group) from None
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, ssl.SSLError,
                    w.WireError, PBXError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("%s: DMCC link down: %s (reconnecting)", self.instance, self.last_error)
            except Exception as exc:  # our bug: logged, retried; the connector keeps running
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("%s: DMCC session failed", self.instance)
            finally:
                self._stream = None
                self._ready = trio.Event()
                self._devices.clear()
                for channel in self._waiters.values():
                    channel.close()
                self._waiters.clear()
            await trio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 60)

    async def _reader(self, stream: trio.abc.Stream) -> None:
        reader = w.Reader()
        while True:
            data = await stream.receive_some(65536)
            if not data:
                raise trio.BrokenResourceError("AES closed the DMCC link")
            for invoke, xml in reader.feed(data):
                if invoke == w.EVENT_INVOKE:
                    continue  # events: this backend holds no monitors
                channel = self._waiters.pop(invoke, None)
                if channel is not None:
                    channel.send_nowait(xml)

    async def _request(self, xml: str) -> object:
        if self._stream is None:
            raise unreachable("AES DMCC", self.last_error or "not connected")
        invoke = next(self._invokes)
        send, receive = trio.open_memory_channel(1)
        self._waiters[invoke] = send
        async with self._send_lock:
            await self._stream.send_all(w.encode(invoke, xml))
        with trio.move_on_after(self.config.timeout):
            try:
                answer = await receive.receive()
            except trio.EndOfChannel:
                raise unreachable("AES DMCC", "the link broke during the request") from None
            root = w.parse(answer)
            if w.local(root) == "CSTAErrorCode" or w.local(root).endswith("NegResponse"):
                texts = [e.text.strip() for e in root.iter() if isinstance(e.tag, str) and e.text and e.text.strip()]
                code = texts[0] if w.local(root) == "CSTAErrorCode" and len(texts) == 1 else None
                raise refused(w.local(root), " ".join(texts) or w.local(root), code)
            return root
        self._waiters.pop(invoke, None)
        raise PBXError(f"AES DMCC did not answer within {self.config.timeout:g} s", error_id="pbx_timeout")

    async def _start_session(self) -> None:
        cfg = self.config
        resume = f"<sessionID>{w.esc(self.session_id)}</sessionID>" if self.session_id else ""
        xml = (f'<StartApplicationSession xmlns="{w.SESSION_NS}">'
               f"<applicationInfo><applicationID>ctid</applicationID><applicationSpecificInfo>"
               f'<SessionLoginInfo xmlns="{w.AVAYA_NS}"><userName>{w.esc(cfg.username)}</userName>'
               f"<password>{w.esc(cfg.password.get_secret_value())}</password>"
               f"<sessionCleanupDelay>{cfg.cleanup_delay}</sessionCleanupDelay></SessionLoginInfo>"
               f"</applicationSpecificInfo></applicationInfo>"
               f"<requestedProtocolVersions><protocolVersion>{w.esc(cfg.protocol)}</protocolVersion>"
               f"</requestedProtocolVersions><requestedSessionDuration>{cfg.session_duration}"
               f"</requestedSessionDuration>{resume}</StartApplicationSession>")
        try:
            root = await self._request(xml)
        except PBXError:
            if not self.session_id:
                raise
            log.info("%s: AES refused to resume DMCC session; starting a new one", self.instance)
            self.session_id = None
            return await self._start_session()
        session = w.text(root, "sessionID")
        if not session:
            raise PBXError("StartApplicationSession answered without a sessionID", error_id="pbx_bad_answer")
        if session == self.session_id:
            self.resumed += 1
        else:
            self.sessions_started += 1
        self.session_id = session
        duration = w.text(root, "actualSessionDuration")
        self._duration = int(duration) if duration and ascii_digits(duration) and len(duration) <= 9 else cfg.session_duration
        self.last_error = None

    async def _keepalive(self) -> None:
        while True:
            await trio.sleep(max(self._duration / 2, 1))
            await self._request(f'<ResetApplicationSessionTimer xmlns="{w.SESSION_NS}">'
                                f"<sessionID>{w.esc(self.session_id or '')}</sessionID>"
                                f"<requestedSessionDuration>{self.config.session_duration}"
                                f"</requestedSessionDuration></ResetApplicationSessionTimer>")

    # -- devices and calls -----------------------------------------------------------------------
    async def _device(self, extension: str) -> str:
        if extension not in self._devices:
            root = await self._request(f'<GetDeviceId xmlns="{w.AVAYA_NS}"><switchName>{w.esc(self.config.switch_name)}'
                                       f"</switchName><extension>{w.esc(extension)}</extension></GetDeviceId>")
            device = w.text(root, "device")
            if not device:
                raise refused("GetDeviceId", f"no device for extension {extension}")
            self._devices[extension] = device
        return self._devices[extension]

    async def _call(self, device: str, remote: str | None, states: tuple[str, ...]) -> str:
        root = await self._request(f'<SnapshotDevice xmlns="{w.CSTA_NS}"><snapshotObject typeOfNumber="other" '
                                   f'mediaClass="notKnown">{w.esc(device)}</snapshotObject></SnapshotDevice>')
        calls = []
        for info in (e for e in root.iter() if isinstance(e.tag, str) and w.local(e) == "snapshotDeviceResponseInfo"):
            call_id = w.text(info, "callID")
            state = w.text(info, "localConnectionState") or ""
            party = w.text(info, "otherParty") or ""
            if call_id and state in states:
                calls.append((call_id, party))
        if not calls:
            raise refused("the command", f"no call in state {'/'.join(states)} at {device.split(':')[0]}")
        for call_id, party in calls:
            if remote and same_party(party, remote):
                return call_id
        return calls[0][0]

    def _conn(self, tag: str, call_id: str, device: str) -> str:
        return f"<{tag}><callID>{w.esc(call_id)}</callID><deviceID>{w.esc(device)}</deviceID></{tag}>"

    async def _ready_or_fail(self) -> None:
        if not self._ready.is_set():
            raise unreachable("AES DMCC", self.last_error or "no application session")

    async def dial(self, extension: str, number: str) -> str | None:
        await self._ready_or_fail()
        device = await self._device(extension)
        root = await self._request(f'<MakeCall xmlns="{w.CSTA_NS}"><callingDevice>{w.esc(device)}</callingDevice>'
                                   f"<calledDirectoryNumber>{w.esc(number)}</calledDirectoryNumber>"
                                   f"<autoOriginate>doNotPrompt</autoOriginate></MakeCall>")
        return w.text(root, "callID")

    async def hold(self, extension: str, remote: str | None) -> None:
        await self._ready_or_fail()
        device = await self._device(extension)
        call = await self._call(device, remote, ("connected",))
        await self._request(f'<HoldCall xmlns="{w.CSTA_NS}">{self._conn("callToBeHeld", call, device)}</HoldCall>')

    async def unhold(self, extension: str, remote: str | None) -> None:
        await self._ready_or_fail()
        device = await self._device(extension)
        call = await self._call(device, remote, ("hold",))
        await self._request(f'<RetrieveCall xmlns="{w.CSTA_NS}">{self._conn("callToBeRetrieved", call, device)}'
                            f"</RetrieveCall>")

    async def transfer(self, extension: str, remote: str | None, target: str) -> None:
        await self._ready_or_fail()
        device = await self._device(extension)
        call = await self._call(device, remote, ("connected", "hold"))
        await self._request(f'<SingleStepTransferCall xmlns="{w.CSTA_NS}">{self._conn("activeCall", call, device)}'
                            f"<transferredTo>{w.esc(target)}</transferredTo></SingleStepTransferCall>")

    async def hangup(self, extension: str, remote: str | None) -> None:
        await self._ready_or_fail()
        device = await self._device(extension)
        call = await self._call(device, remote, ("connected", "hold", "alerting", "initiated"))
        await self._request(f'<ClearConnection xmlns="{w.CSTA_NS}">'
                            f'{self._conn("connectionToBeCleared", call, device)}</ClearConnection>')

    async def check(self) -> str:
        if not self._running:  # ``ctid check`` beside ``ctid serve``: a session of its own, then hang up
            return await self._probe()
        await self._ready_or_fail()
        return f"session {str(self.session_id)[:8]}… ({self.sessions_started} started, {self.resumed} resumed)"

    async def _probe(self) -> str:
        """Connect, start an application session (AES checks the user and password), hang up; AES
        drops the session after ``cleanup_delay``."""
        try:
            with trio.fail_after(self.config.timeout):
                stream = await self._connect()
            async with stream, trio.open_nursery() as nursery:
                self._stream = stream
                nursery.start_soon(self._reader, stream)
                await self._start_session()
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise _unreachable(unwrap(group)) from None
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, ssl.SSLError,
                w.WireError) as exc:
            raise _unreachable(exc) from None
        finally:
            self._stream = None
            self._waiters.clear()
        return f"application session accepted ({self.config.username} at {self.config.host}:{self.config.port})"


def _unreachable(exc: BaseException) -> BaseException:
    if isinstance(exc, PBXError):
        return exc
    return unreachable("AES DMCC", f"{type(exc).__name__}: {exc}")
