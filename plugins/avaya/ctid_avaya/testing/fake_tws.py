"""A fake AES Telephony Web Service: serves its WSDL to zeep, demands HTTP Basic auth and the
sessionID SOAP header from ``attach()``, records requests, answers SOAP faults on refusals."""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass, field
from importlib import resources

from lxml import etree

from ctid.asgi import lifespan, read_body, respond

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
TNS = "http://xml.avaya.com/ws/TelephonyService"
SES = "http://xml.avaya.com/ws/session"


@dataclass
class FakeTelephonyService:
    username: str
    password: str
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    sessions: set[str] = field(default_factory=set)
    refuse: dict[str, str] = field(default_factory=dict)  # operation -> fault string
    _ids = itertools.count(1)

    def wsdl(self, location: str) -> bytes:
        text = resources.files("ctid_avaya.testing").joinpath("telephony_service.wsdl").read_text()
        return text.replace("__LOCATION__", location).encode()

    def expire_sessions(self) -> None:
        self.sessions.clear()

    def calls(self, name: str) -> list[dict[str, str]]:
        return [params for op, params in self.requests if op == name]

    # -- ASGI ------------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        status, content_type, data = self.handle(scope, await read_body(receive))
        await respond(send, status, {"content-type": content_type}, data)

    def handle(self, scope, body: bytes) -> tuple[int, str, bytes]:
        headers = dict(scope.get("headers") or [])
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if headers.get(b"authorization", b"").decode() != f"Basic {expected}":
            return 401, "text/plain", b"Unauthorized"
        host = headers.get(b"host", b"localhost").decode()
        location = f"http://{host}{scope['path']}"
        if scope["method"] == "GET":
            return 200, "text/xml", self.wsdl(location)
        try:
            envelope = etree.fromstring(body)
        except etree.XMLSyntaxError:
            return 500, "text/xml", _fault("Client", "malformed XML")
        operation = envelope.find(f"{{{SOAP}}}Body/*")
        if operation is None:
            return 500, "text/xml", _fault("Client", "no operation in the body")
        name = etree.QName(operation).localname
        params = {etree.QName(child).localname: (child.text or "") for child in operation}
        if name == "attach":
            session = f"S{next(self._ids):08d}"
            self.sessions.add(session)
            self.requests.append((name, params))
            return 200, "text/xml", _envelope(f"<ses:sessionID xmlns:ses='{SES}'>{session}</ses:sessionID>",
                                              f"<tns:attachResponse xmlns:tns='{TNS}'/>")
        session = envelope.findtext(f"{{{SOAP}}}Header/{{{SES}}}sessionID")
        if session not in self.sessions:
            return 500, "text/xml", _fault("Server", "Invalid session: attach first")
        self.requests.append((name, params))
        if name in self.refuse:
            return 500, "text/xml", _fault("Server", self.refuse[name])
        if name == "makeCall":
            return 200, "text/xml", _envelope("", f"<tns:makeCallResponse xmlns:tns='{TNS}'>"
                                                  f"<tns:callIdentifier>{next(self._ids)}</tns:callIdentifier>"
                                                  f"</tns:makeCallResponse>")
        if name in ("transferCall", "dropCall", "release"):
            if name == "release":
                self.sessions.discard(session)
            return 200, "text/xml", _envelope("", f"<tns:{name}Response xmlns:tns='{TNS}'/>")
        return 500, "text/xml", _fault("Client", f"no operation {name}")


def _envelope(header: str, body: str) -> bytes:
    return (f"<soapenv:Envelope xmlns:soapenv='{SOAP}'><soapenv:Header>{header}</soapenv:Header>"
            f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>").encode()


def _fault(code: str, text: str) -> bytes:
    return _envelope("", f"<soapenv:Fault><faultcode>soapenv:{code}</faultcode>"
                         f"<faultstring>{text}</faultstring></soapenv:Fault>")
