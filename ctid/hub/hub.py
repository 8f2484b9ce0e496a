"""The realtime hub: SignalR negotiate + WebSocket endpoints on the quart-trio app, the groups of
local connections, and publishing ``callUpdated`` / ``agentUpdated`` / ``taskUpdated`` through
the backplane so every instance delivers to its own connections."""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import trio
from quart import Response, request, websocket

from ctid.errors import AuthError, CtidError, NotFoundError
from ctid.hub import protocol as p
from ctid.hub.backplane import MemoryBackplane, sender_prefix
from ctid.hub.connection import HubConnection, KeepAlive, Socket
from ctid.hub.interfaces import Backplane, HubBackend, Principal
from ctid.hub.tokens import ConnectionClaims, ConnectionTokens, new_connection_id, role_name

log = logging.getLogger("ctid.hub")

SUPERVISORS = "supervisors"
AGENTS = "agents"


def agent_group(agent_id: str) -> str:
    return f"agent:{agent_id}"


def groups_for(principal: Principal) -> set[str]:
    """Groups a connection joins: its agent's group (and ``agents``) when it acts as an agent,
    ``supervisors`` for the supervisor and admin roles."""
    groups: set[str] = set()
    if principal.agent:
        groups |= {agent_group(principal.agent), AGENTS}
    if principal.role in ("supervisor", "admin"):
        groups.add(SUPERVISORS)
    return groups


@dataclass
class HubSettings:
    ping_interval: float = 15.0
    client_timeout: float = 30.0
    handshake_timeout: float = 15.0
    max_message_bytes: int = 65_536
    send_queue: int = 1000


class Hub:
    def __init__(
        self,
        backend: HubBackend,
        backplane: Backplane | None = None,
        *,
        ping_interval: float = 15,
        client_timeout: float = 30,
        handshake_timeout: float = 15,
        max_message_bytes: int = 65_536,
        instance_id: str | None = None,
        connection_secret: bytes | None = None,
        connection_token_ttl: float = 60,
        channel: str = "ctid:hub:all",
    ):
        self.backend = backend
        self.backplane: Backplane = backplane if backplane is not None else MemoryBackplane()
        self.settings = HubSettings(ping_interval, client_timeout, handshake_timeout, max_message_bytes)
        self.instance_id = instance_id or uuid.uuid4().hex
        # how this hub's own envelopes begin (publish writes "o" first): its echoes are skipped unparsed
        self._own_envelope = sender_prefix(self.instance_id)
        self.tokens = ConnectionTokens(connection_secret, ttl=connection_token_ttl)
        self.channel = channel
        self.keepalive = KeepAlive()
        self.path: str | None = None  # where mount() put the WebSocket
        self.connections: dict[str, HubConnection] = {}
        # connection ids admitted here, until their token expires: a token opens one WebSocket only
        self._used: dict[str, int] = {}
        self._groups: dict[str, set[HubConnection]] = {}
        self._shutting_down = False
        self._cors_origins: set[str] = set()
        self._changed = trio.Event()
        self.sent = 0

    # -- HTTP / WebSocket endpoints ---------------------------------------------------------

    def mount(self, app: Any, prefix: str = "/hub", *, cors_origins: list[str] | None = None) -> None:
        """Register ``POST {prefix}/negotiate`` and the WebSocket ``{prefix}`` on a quart app.

        ``cors_origins`` lets browser panels served from those origins negotiate (``"*"``: any
        origin; credentials are allowed, as the JS client sends them). The WebSocket itself is
        not subject to CORS. :class:`ctid.hub.asgi.HubFastPath` in front of the app serves the
        same WebSocket without Quart's per-connection machinery (``ctid serve`` does).
        """
        name = prefix.strip("/").replace("/", "_") or "root"
        self.path = prefix
        self._cors_origins = set(cors_origins or ())
        app.add_url_rule(
            f"{prefix}/negotiate", f"hub_negotiate_{name}", self._negotiate, methods=["POST", "OPTIONS"],
            provide_automatic_options=False,
        )
        app.add_websocket(prefix, f"hub_websocket_{name}", self._websocket)

    @staticmethod
    def _access_token(headers: Any, args: Any) -> str | None:
        header = headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            return header[7:].strip() or args.get("access_token") or None
        return args.get("access_token") or None

    async def _authenticate(self, headers: Any, args: Any) -> Principal:
        token = self._access_token(headers, args)
        if not token:
            raise AuthError("missing access token (Authorization: Bearer or access_token)")
        return await self.backend.authenticate(token)

    async def _identify(self, headers: Any, args: Any) -> tuple[Principal, ConnectionClaims | None]:
        """Who opens a WebSocket, and what its ``id`` says (None: skipNegotiation).

        The connection token alone is enough: it names the principal under its MAC, and the
        subject is resolved again now, so a user or API key removed (or whose role or agent
        changed) since negotiate is refused. An access token, when also given (the official
        SignalR clients send one), is checked as before and must name the same subject."""
        token = self._access_token(headers, args)
        principal = await self.backend.authenticate(token) if token else None
        raw_id = args.get("id")
        if raw_id is None:
            if principal is None:
                raise AuthError("missing access token (Authorization: Bearer or access_token) "
                                "or connection token (id)")
            return principal, None
        claims = self.tokens.verify(raw_id)
        if claims is None:
            raise NotFoundError("unknown or expired connection id", error_id="not_found")
        if principal is not None:
            if principal.subject != claims.subject:
                raise NotFoundError("the connection id was issued to another user", error_id="not_found")
            return principal, claims
        principal = await self.backend.resolve(claims.subject)  # AuthError: removed since negotiate
        if role_name(principal.role) != claims.role or principal.agent != claims.agent:
            raise AuthError("the user's role or agent changed since negotiate; negotiate again",
                            error_id="bad_token")
        return principal, claims

    def _json(self, body: dict[str, Any], status: int = 200) -> Response:
        response = Response(json.dumps(body), status=status, content_type="application/json")
        origin = request.headers.get("Origin")
        if origin and ("*" in self._cors_origins or origin in self._cors_origins):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Vary"] = "Origin"
            if request.method == "OPTIONS":
                response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
                response.headers["Access-Control-Allow-Headers"] = (
                    "authorization, content-type, x-requested-with, x-signalr-user-agent"
                )
                response.headers["Access-Control-Max-Age"] = "600"
        return response

    async def _negotiate(self) -> Response:
        if request.method == "OPTIONS":  # CORS preflight
            response = self._json({})
            response.status_code = 204
            return response
        try:
            principal = await self._authenticate(request.headers, request.args)
        except CtidError as exc:  # AuthError -> 401; a failing token store -> its own status
            return self._json({"error": exc.error_id, "message": str(exc)}, exc.status)
        raw = request.args.get("negotiateVersion")
        version = 0
        if raw is not None:
            try:
                version = int(raw)
            except ValueError:
                return self._json({"error": "The client requested a non-integer protocol version."})
            if version < 0:
                return self._json(
                    {"error": f"The client requested version '{version}', but the server does not support this version."}
                )
            version = min(version, 1)
        connection_id = new_connection_id()
        token = self.tokens.issue(connection_id, principal)
        body: dict[str, Any] = {
            "negotiateVersion": version,
            "connectionId": connection_id if version > 0 else token,
            "availableTransports": [{"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}],
        }
        if version > 0:
            body["connectionToken"] = token
        return self._json(body)

    async def _websocket(self) -> Any:
        socket = websocket._get_current_object()  # type: ignore[attr-defined]  # skip the proxy per send
        admitted = await self.admit(websocket.headers, websocket.args, socket)
        if not isinstance(admitted, HubConnection):
            return admitted
        await self.serve_connection(admitted, socket.accept)
        return None

    async def admit(self, headers: Any, args: Any, socket: Socket) -> HubConnection | tuple[dict[str, str], int]:
        """Check a WebSocket upgrade (``headers`` and query ``args`` answer ``.get(name)``): the
        new connection, registered, or the JSON body and HTTP status that refuse it."""
        try:
            principal, claims = await self._identify(headers, args)
        except CtidError as exc:
            return {"error": exc.error_id, "message": str(exc)}, exc.status
        if self._shutting_down:
            return {"error": "shutting_down", "message": "the server is restarting"}, 503
        if claims is None:
            connection_id = new_connection_id()  # skipNegotiation: create the connection on the spot
        else:
            connection_id = claims.connection_id
            if connection_id in self.connections:
                return {"error": "conflict", "message": "connection already has a WebSocket"}, 409
            if connection_id in self._used:
                return {"error": "not_found", "message": "the connection id was used already; negotiate again"}, 404
            self._remember(connection_id, claims.expiry)
        conn = HubConnection(socket, principal, connection_id, self.backend, self.settings,
                             keepalive=self.keepalive, on_ready=self._join)
        self.connections[connection_id] = conn  # before the first await: a racing duplicate gets 409
        return conn

    def _remember(self, connection_id: str, expiry: int) -> None:
        """Note an admitted connection id until its token expires (then ``verify`` refuses it
        anyway). Only this instance knows: see docs/hub-protocol.md on why the TTL bounds the rest."""
        now = time.time()
        while self._used:  # in admission order: drop expired ones up to the first live one
            oldest = next(iter(self._used))
            if self._used[oldest] >= now:
                break
            del self._used[oldest]
        self._used[connection_id] = expiry

    async def serve_connection(self, conn: HubConnection, accept: Any) -> None:
        """Accept the WebSocket (``await accept()``) and serve an admitted connection until it ends."""
        try:
            await accept()
            await conn.serve()
        finally:
            self._leave(conn)

    # -- groups ------------------------------------------------------------------------------

    def _join(self, conn: HubConnection) -> None:
        for group in groups_for(conn.principal):
            self._groups.setdefault(group, set()).add(conn)

    def _leave(self, conn: HubConnection) -> None:
        self.connections.pop(conn.connection_id, None)
        for group in groups_for(conn.principal):
            members = self._groups.get(group)
            if members is not None:
                members.discard(conn)
                if not members:
                    del self._groups[group]
        self._changed.set()

    def _deliver_local(self, groups: list[str] | set[str], text: str) -> int:
        targets: set[HubConnection] = set()
        for group in groups:
            targets |= self._groups.get(group, set())
        for conn in targets:
            if conn.send_record(text):
                self.sent += 1
        return len(targets)

    # -- publishing --------------------------------------------------------------------------

    def publish(self, target: str, payload: Any, groups: set[str]) -> None:
        """Invoke ``target(payload)`` on every connection in ``groups``, on every instance:
        queued for local connections first (no dependency on the backplane), then for the
        backplane; nothing waits, so messages published in a row leave in that order."""
        text = p.record(p.invocation(target, [payload]))
        self._deliver_local(groups, text)
        if isinstance(self.backplane, MemoryBackplane) and self.backplane.subscribers(self.channel) <= 1:
            return  # the only subscriber is this hub's own relay, which skips its own messages
        envelope = {"o": self.instance_id, "g": sorted(groups), "m": text}
        try:
            self.backplane.publish_nowait(self.channel, p.dumps(envelope).encode())
        except Exception:  # a backplane must not break the caller (the event pipeline)
            log.exception("hub: backplane %s failed to publish %s", self.backplane.kind, target)

    def publish_call(self, call_json: dict[str, Any], audience: set[str]) -> None:
        """``callUpdated``: to the agents in ``audience`` (``Call.participants()``) and supervisors."""
        self.publish("callUpdated", call_json, {agent_group(a) for a in audience} | {SUPERVISORS})

    def publish_agent(self, agent_json: dict[str, Any]) -> None:
        """``agentUpdated``: to that agent and supervisors."""
        self.publish("agentUpdated", agent_json, {agent_group(agent_json["id"]), SUPERVISORS})

    def publish_task(self, task_json: dict[str, Any], owner: str | None) -> None:
        """``taskUpdated``: to the owner and supervisors; an unowned task is the shared callback
        queue, so it goes to every agent."""
        groups = {agent_group(owner) if owner else AGENTS, SUPERVISORS}
        self.publish("taskUpdated", task_json, groups)

    # -- background work and shutdown ----------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Keep-alive clock, backplane connection and subscription; run in the daemon's nursery."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.keepalive.run)
            await nursery.start(self.backplane.run)
            await nursery.start(self._relay)
            task_status.started()

    async def _relay(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with self.backplane.subscribe(self.channel) as messages:
            task_status.started()
            async for data in messages:
                if data.startswith(self._own_envelope):
                    continue  # this hub's own message, echoed by the backplane
                try:
                    envelope = json.loads(data)
                    if envelope["o"] == self.instance_id:
                        continue
                    groups, text = envelope["g"], envelope["m"]
                    if not (isinstance(groups, list) and isinstance(text, str) and text.endswith(p.RS)):
                        raise TypeError("bad envelope")
                    self._deliver_local([g for g in groups if isinstance(g, str)], text)
                except (ValueError, KeyError, TypeError):
                    log.warning("hub: ignoring a malformed backplane message (%d bytes)", len(data))

    async def close_all(self, allow_reconnect: bool = True, *, grace: float = 5.0, refuse_new: bool = True) -> None:
        """Graceful shutdown: send Close (``allowReconnect`` so clients come back to another
        instance or after the restart), refuse new connections (503) unless ``refuse_new`` is
        false, and wait up to ``grace`` seconds for the connections to end."""
        self._shutting_down = refuse_new
        closing = list(self.connections.values())
        for conn in closing:
            conn.close("Server is restarting." if allow_reconnect else "Server is shutting down.",
                       allow_reconnect=allow_reconnect)
        with trio.move_on_after(grace):
            while any(conn.connection_id in self.connections for conn in closing):
                self._changed = trio.Event()
                await self._changed.wait()

    def health(self) -> dict[str, Any]:
        return {
            "connections": len(self.connections),
            "groups": len(self._groups),
            "sent": self.sent,
            "backplane": self.backplane.health(),
        }
