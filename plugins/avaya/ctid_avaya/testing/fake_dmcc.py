"""A fake AES DMCC server: strict framing, session login / keep-alive / resume, device ids,
SnapshotDevice, and the call-control requests acting on scripted calls per extension."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import trio

from ctid_avaya.control import dmcc_wire as w


@dataclass
class FakeDmcc:
    username: str
    password: str
    switch: str = "CM1"
    calls: dict[str, list[list[str]]] = field(default_factory=dict)  # ext -> [[callID, state, other party]]
    requests: list[str] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # request name -> CSTA error text
    sessions: dict[str, bool] = field(default_factory=dict)  # session id -> alive (resumable)
    resets: int = 0
    bad_frames: int = 0
    _ids = itertools.count(1)
    _streams: list = field(default_factory=list)

    async def serve(self, *, ssl_context=None, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        task_status.started(listeners[0].socket.getsockname()[1])
        if ssl_context is not None:  # TLS 4722
            listeners = [trio.SSLListener(listener, ssl_context, https_compatible=False) for listener in listeners]
        await trio.serve_listeners(self._connection, listeners)

    async def drop_connections(self) -> None:
        for stream in list(self._streams):
            await stream.aclose()

    async def _connection(self, stream) -> None:
        self._streams.append(stream)
        reader = w.Reader()
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                try:
                    messages = reader.feed(data)
                except w.WireError:
                    self.bad_frames += 1
                    return
                for invoke, xml in messages:
                    answer = self._answer(xml)
                    await stream.send_all(w.encode(invoke, answer))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            self._streams.remove(stream)

    def _answer(self, xml: bytes) -> str:
        root = w.parse(xml)
        name = w.local(root)
        self.requests.append(name)
        if name == "StartApplicationSession":
            if w.text(root, "userName") != self.username or w.text(root, "password") != self.password:
                return f'<StartApplicationSessionNegResponse xmlns="{w.SESSION_NS}"><errorCode>' \
                       f"<definedError>invalidUserNameOrPassword</definedError></errorCode>" \
                       f"</StartApplicationSessionNegResponse>"
            old = w.text(root, "sessionID")
            if old is not None and not self.sessions.get(old):
                return f'<StartApplicationSessionNegResponse xmlns="{w.SESSION_NS}"><errorCode>' \
                       f"<definedError>invalidSessionID</definedError></errorCode></StartApplicationSessionNegResponse>"
            session = old or f"DMCC{next(self._ids):06d}"
            self.sessions[session] = True
            return f'<StartApplicationSessionPosResponse xmlns="{w.SESSION_NS}"><sessionID>{session}</sessionID>' \
                   f"<actualProtocolVersion>{w.CSTA_NS}</actualProtocolVersion>" \
                   f"<actualSessionDuration>{w.text(root, 'requestedSessionDuration')}</actualSessionDuration>" \
                   f"</StartApplicationSessionPosResponse>"
        if name == "ResetApplicationSessionTimer":
            self.resets += 1
            return f'<ResetApplicationSessionTimerPosResponse xmlns="{w.SESSION_NS}"/>'
        if name in self.refuse:
            return f'<CSTAErrorCode xmlns="{w.CSTA_NS}"><operation>{self.refuse[name]}</operation></CSTAErrorCode>'
        if name == "GetDeviceId":
            ext = w.text(root, "extension")
            return f'<GetDeviceIdResponse xmlns="{w.AVAYA_NS}"><device typeOfNumber="other" mediaClass="notKnown">' \
                   f"{ext}:{self.switch}:10.0.0.1:0</device></GetDeviceIdResponse>"
        if name == "SnapshotDevice":
            ext = (w.text(root, "snapshotObject") or "").split(":")[0]
            infos = "".join(
                f"<snapshotDeviceResponseInfo><connectionIdentifier><callID>{cid}</callID>"
                f"<deviceID>{ext}</deviceID></connectionIdentifier><localCallState><compoundCallState>"
                f"<localConnectionState>{state}</localConnectionState></compoundCallState></localCallState>"
                f"<otherParty>{party}</otherParty></snapshotDeviceResponseInfo>"
                for cid, state, party in self.calls.get(ext, []))
            return f'<SnapshotDeviceResponse xmlns="{w.CSTA_NS}"><crossRefIDorSnapshotData><snapshotData>{infos}' \
                   f"</snapshotData></crossRefIDorSnapshotData></SnapshotDeviceResponse>"
        if name == "MakeCall":
            ext = (w.text(root, "callingDevice") or "").split(":")[0]
            cid = str(next(self._ids))
            self.calls.setdefault(ext, []).append([cid, "connected", w.text(root, "calledDirectoryNumber") or ""])
            return f'<MakeCallResponse xmlns="{w.CSTA_NS}"><callingDevice><callID>{cid}</callID></callingDevice>' \
                   f"</MakeCallResponse>"
        changes = {"HoldCall": ("connected", "hold"), "RetrieveCall": ("hold", "connected"),
                   "SingleStepTransferCall": (None, None), "ClearConnection": (None, None)}
        if name in changes:
            cid = w.text(root, "callID")
            ext = (w.text(root, "deviceID") or "").split(":")[0]
            for call in self.calls.get(ext, []):
                if call[0] == cid:
                    old, new = changes[name]
                    if old is not None and call[1] != old:
                        return f'<CSTAErrorCode xmlns="{w.CSTA_NS}"><stateIncompatibility>invalidConnectionState' \
                               f"</stateIncompatibility></CSTAErrorCode>"
                    if new is None:
                        self.calls[ext].remove(call)
                    else:
                        call[1] = new
                    return f'<{name}Response xmlns="{w.CSTA_NS}"/>'
            return f'<CSTAErrorCode xmlns="{w.CSTA_NS}"><operation>invalidCallIdentifier</operation></CSTAErrorCode>'
        return f'<CSTAErrorCode xmlns="{w.CSTA_NS}"><operation>notSupported</operation></CSTAErrorCode>'
