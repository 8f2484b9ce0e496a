"""``backend: aes-tws``: Avaya Aura AES Telephony Web Service (SOAP) through zeep.

Flow (reference §3.3): ``attach()``; read ``sessionID`` from the response's SOAP header
(namespace ``http://xml.avaya.com/ws/session``); send it as a header on every later call. The
service keeps no call state and cannot monitor, so it offers click-to-call, transfer and hang up
only. The WSDL is loaded once (zeep loads it synchronously: in a worker thread); a fault that
names the session makes one re-attach and one retry. A SOAP fault is the PBX's refusal.
"""

from __future__ import annotations

import logging

import httpx
import trio

from ctid.errors import PBXError
from ctid.model import Capability
from ctid_avaya.control.base import ControlBackend, refused, unreachable

log = logging.getLogger(__name__)

SESSION_NS = "http://xml.avaya.com/ws/session"


class TwsBackend(ControlBackend):
    name = "aes-tws"
    capabilities = frozenset({Capability.DIAL, Capability.TRANSFER, Capability.HANGUP})

    def __init__(self, config, instance: str):
        self.config = config
        self.instance = instance
        self._client = None
        self._session: str | None = None
        self._lock = trio.Lock()

    async def _zeep(self):
        if self._client is None:
            import zeep
            from zeep.transports import AsyncTransport

            auth = (self.config.username, self.config.password.get_secret_value())
            verify = self.config.tls_verify
            timeout = self.config.timeout

            transport = AsyncTransport(
                client=httpx.AsyncClient(auth=auth, verify=verify, timeout=timeout),
                wsdl_client=httpx.Client(auth=auth, verify=verify, timeout=timeout),
            )

            def load():
                return zeep.AsyncClient(self.config.wsdl_url, transport=transport)

            try:
                self._client = await trio.to_thread.run_sync(load)
            except BaseException as exc:
                await transport.aclose()
                transport.wsdl_client.close()
                if isinstance(exc, httpx.HTTPError | OSError):
                    raise unreachable("the AES Telephony Web Service", f"WSDL not loaded: {exc}") from exc
                if isinstance(exc, Exception):  # zeep's own parse errors (an unexpected WSDL style)
                    raise unreachable("the AES Telephony Web Service", f"WSDL not usable by zeep: {exc}") from exc
                raise
        return self._client

    async def _attach(self) -> str:
        client = await self._zeep()
        result = await self._invoke(client.service.attach)
        header = getattr(result, "header", None)
        session = getattr(header, "sessionID", None) if header is not None else None
        if not session:
            raise PBXError("AES attach() answered without a sessionID header", error_id="pbx_bad_answer")
        self._session = str(session)
        return self._session

    async def _invoke(self, operation, *args, **kwargs):
        from zeep.exceptions import Fault, TransportError

        try:
            return await operation(*args, **kwargs)
        except Fault as exc:
            raise refused(operation.__name__ if hasattr(operation, "__name__") else "the request",
                          exc.message or "SOAP fault") from exc
        except TransportError as exc:
            if exc.status_code == 401:
                raise PBXError("AES refused the credentials (HTTP 401)", error_id="pbx_unauthorized") from exc
            raise unreachable("the AES Telephony Web Service", f"HTTP {exc.status_code}") from exc
        except httpx.HTTPError as exc:
            raise unreachable("the AES Telephony Web Service", f"{type(exc).__name__}: {exc}") from exc

    async def _call(self, name: str, **params):
        async with self._lock:
            session = self._session or await self._attach()
        client = await self._zeep()
        try:
            return await self._invoke(getattr(client.service, name), **params, _soapheaders={"sessionID": session})
        except PBXError as exc:
            if exc.error_id != "pbx_refused" or "session" not in str(exc).lower():
                raise
        async with self._lock:  # the session expired on AES: attach again, once
            self._session = None
            session = await self._attach()
        return await self._invoke(getattr(client.service, name), **params, _soapheaders={"sessionID": session})

    async def dial(self, extension: str, number: str) -> str | None:
        result = await self._call("makeCall", originatingExtension=extension, originatingNumber=number)
        return str(result) if isinstance(result, str) and result else None

    async def transfer(self, extension: str, remote: str | None, target: str) -> None:
        await self._call("transferCall", deviceExtension=extension, destinationNumber=target)

    async def hangup(self, extension: str, remote: str | None) -> None:
        await self._call("dropCall", deviceExtension=extension)

    async def check(self) -> str:
        async with self._lock:
            session = self._session or await self._attach()
        return f"session {session[:6]}…"

    async def aclose(self) -> None:
        if self._client is not None:
            if self._session:  # release the AES session (best effort: ctid is stopping)
                with trio.move_on_after(2):
                    try:
                        await self._client.service.release(_soapheaders={"sessionID": self._session})
                    except Exception as exc:  # zeep / httpx errors alike: nothing to do about them now
                        log.info("%s: AES session not released: %s", self.instance, exc)
                self._session = None
            transport = self._client.transport
            await transport.aclose()
            transport.wsdl_client.close()
