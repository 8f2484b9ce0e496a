"""The REST API under ``/api``: tokens, calls, agents, tasks and call commands.

Authentication is a bearer access token (``POST /api/auth/token``) or an API key. Agents see and
command only their own calls and status; supervisors and admins see everything.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from quart import Response, jsonify, request

from ctid.auth import Principal, bearer
from ctid.errors import AuthError, CapabilityError, NotFoundError, RequestError
from ctid.limits import ascii_digits, loads
from ctid.model import Capability
from ctid.web.deadletters_api import register_dead_letters
from ctid.web.openapi import document

SCHEMAS: dict[str, Any] = {
    "Call": {"type": "object", "description": "See docs/call-model.md", "properties": {
        name: {} for name in ("id", "connector", "pbx_call_id", "direction", "state", "outcome", "remote_number",
                              "line_number", "agent", "group", "started_at", "answered_at", "ended_at",
                              "wait_seconds", "talk_seconds", "hold_seconds", "recording_url", "contact",
                              "transferred_from", "facts")}},
    "Agent": {"type": "object", "properties": {name: {} for name in (
        "id", "name", "extension", "groups", "status", "status_since", "busy", "presence", "current_call",
        "ringing_call", "idle_since", "status_source", "lease_until")}},
    "Task": {"type": "object", "properties": {name: {} for name in (
        "id", "number", "status", "missed_count", "missed_calls", "owner", "closed_by_call")}},
}
_CALL = {"$ref": "#/components/schemas/Call"}
_ITEMS = {"type": "object", "properties": {"items": {"type": "array", "items": _CALL}}}


def _doc(method: str, path: str, summary: str, tag: str, **kwargs: Any) -> None:
    document(path=path, method=method, summary=summary, tag=tag, **kwargs)


_doc("POST", "/api/auth/token", "Exchange username and password for an access token", "auth", auth=False,
     request={"type": "object", "required": ["username", "password"],
              "properties": {"username": {"type": "string"}, "password": {"type": "string"}}},
     response={"type": "object", "properties": {"access_token": {"type": "string"},
                                                "token_type": {"const": "bearer"}, "expires_in": {"type": "integer"}}},
     errors={400: "malformed body", 401: "wrong username or password",
             429: "too many wrong passwords for this username or from this address (Retry-After)"})
_doc("GET", "/api/me", "Who the token belongs to", "auth")
_doc("GET", "/api/calls", "Calls changed since a time, newest changes last", "calls", response=_ITEMS,
     query={"since": {"type": "string", "format": "date-time"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
            "state": {"enum": ["ringing", "talking", "held", "ended"]},
            "agent": {"type": "string", "description": "calls this agent rang on, talked on or transferred away"},
            "order": {"enum": ["asc", "desc"], "description": "by last change; desc gives the newest first"}},
     errors={400: "bad query", 403: "an agent asking for another agent's calls"})
_doc("GET", "/api/calls/{id}", "One call", "calls", response=_CALL, errors={403: "another agent's call",
                                                                            404: "no such call"})
_doc("POST", "/api/calls", "Click-to-call: ring the agent, then the number", "commands",
     request={"type": "object", "required": ["number"],
              "properties": {"number": {"type": "string", "minLength": 1}, "agent": {"type": "string"}}},
     errors={400: "bad number", 403: "not your agent", 404: "no such agent", 409: "no connector can dial",
             502: "PBX refused"})
for _action in ("hold", "unhold", "hangup"):
    _doc("POST", f"/api/calls/{{id}}/{_action}", f"{_action.capitalize()} a call", "commands",
         errors={403: "another agent's call", 404: "no such call", 409: "capability missing or call ended",
                 502: "PBX refused"})
_doc("POST", "/api/calls/{id}/transfer", "Transfer a call to an agent, or to the first free one", "commands",
     request={"type": "object", "required": ["to"], "properties": {
         "to": {"type": "string", "minLength": 1},
         "mode": {"enum": ["blind", "consult"], "default": "blind",
                  "description": "consult: hold the caller and ring the colleague first; then "
                                 "POST .../transfer/complete or .../transfer/cancel"}}},
     errors={400: "bad target or mode", 403: "another agent's call", 404: "no such call or agent",
             409: "capability missing, call ended or no free agent", 502: "PBX refused"})
for _action, _summary in (("complete", "Hand the caller over to the consulted colleague"),
                          ("cancel", "Cancel a consultative transfer: the caller is back with the agent")):
    _doc("POST", f"/api/calls/{{id}}/transfer/{_action}", _summary, "commands",
         errors={403: "another agent's call", 404: "no such call",
                 409: "no consultation in progress, capability missing or call ended", 502: "PBX refused"})
_doc("GET", "/api/calls/{id}/recording", "The call's recording (audio); a bearer token or a signed link",
     "calls", query={"u": {"type": "string"}, "exp": {"type": "integer"}, "sig": {"type": "string",
                     "description": "from POST /api/calls/{id}/recording-link"}},
     media_type="audio/*",
     errors={401: "no token, or a bad or expired link", 403: "another agent's call", 404: "no recording",
             409: "connector has no recordings", 502: "the PBX did not hand the recording over"})
_doc("POST", "/api/calls/{id}/recording-link", "A short-lived signed URL of the call's recording, for players "
     "that cannot send headers (docs/panel.md)", "calls",
     response={"type": "object", "properties": {"url": {"type": "string"}, "path": {"type": "string"},
                                                "expires_in": {"type": "integer"}}},
     errors={403: "another agent's call", 404: "no such call or no recording"})
_doc("GET", "/api/agents", "Agents with live presence", "agents",
     response={"type": "object", "properties": {"items": {"type": "array",
                                                          "items": {"$ref": "#/components/schemas/Agent"}}}})
_doc("PUT", "/api/agents/{id}/status", "Set an agent's presence (by the person, or by the desktop launcher)",
     "agents", response={"$ref": "#/components/schemas/Agent"},
     request={"type": "object", "required": ["status"], "properties": {
         "status": {"enum": ["available", "away", "dnd", "offline"]},
         "source": {"enum": ["user", "launcher"], "default": "user",
                    "description": "launcher: set by the desktop launcher on its own (lock, unlock, logon); "
                                   "refused over an away or DND the person set (docs/call-model.md)"},
         "lease_seconds": {"type": ["integer", "null"], "minimum": 5, "maximum": 3600,
                           "description": "also start or renew the launcher's presence lease (null: no lease)"}}},
     errors={400: "bad status, source or lease_seconds", 403: "not your agent", 404: "no such agent",
             409: "status_set_by_user: the launcher may not change a status the person chose"})
_doc("GET", "/api/tasks", "Callback tasks", "tasks", query={"status": {"enum": ["open", "done"]}},
     errors={400: "bad status"}, response={"type": "object", "properties": {"items": {"type": "array",
                                                          "items": {"$ref": "#/components/schemas/Task"}}}})
_doc("GET", "/api/snapshot", "Current calls, agents and open tasks for this user", "agents")


async def _json_object() -> dict[str, Any]:
    raw = await request.get_data(cache=True)
    if not raw:
        raise RequestError("body must be a JSON object", error_id="bad_json")
    data = loads(raw)  # UTF-8 JSON within ctid's input limits (ctid/limits.py), else 400
    if not isinstance(data, dict):
        raise RequestError("body must be a JSON object", error_id="bad_json")
    return data


def _parse_time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)  # out-of-range offsets near year 1 or 9999 overflow here
    except (ValueError, OverflowError) as exc:
        raise RequestError(f"{name} must be an ISO 8601 time", error_id="bad_query") from exc


def _int(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    if not ascii_digits(value) or len(value) > 18:  # int() also takes " 5", "1_000" and "٥"
        raise RequestError(f"{name} must be an integer", error_id="bad_query")
    number = int(value)
    if not low <= number <= high:
        raise RequestError(f"{name} must be between {low} and {high}", error_id="bad_query")
    return number


def register_api(app, daemon) -> None:
    commands = daemon.commands

    def principal() -> Principal:
        # Never a token from the query string: URLs end up in logs, history and Referer headers.
        return daemon.auth.authenticate(bearer(request.headers.get("Authorization")))

    @app.post("/api/auth/token")
    async def token():
        data = await _json_object()
        username, password = data.get("username"), data.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise RequestError("username and password are required strings", error_id="bad_credentials_format")
        access_token, who = await daemon.auth.login(username, password, request.remote_addr)
        return jsonify({"access_token": access_token, "token_type": "bearer", "expires_in": daemon.auth.ttl,
                        "user": who.to_json()})

    @app.get("/api/me")
    async def me():
        return jsonify(principal().to_json())

    @app.get("/api/calls")
    async def list_calls():
        who = principal()
        since = _parse_time(request.args.get("since"), "since")
        limit = _int(request.args.get("limit"), "limit", 100, 1, 1000)
        state = request.args.get("state") or None
        if state is not None and state not in ("ringing", "talking", "held", "ended"):
            raise RequestError("state must be ringing, talking, held or ended", error_id="bad_query")
        agent = request.args.get("agent") or None
        order = request.args.get("order") or "asc"
        if order not in ("asc", "desc"):
            raise RequestError("order must be asc or desc", error_id="bad_query")
        if not who.is_supervisor:
            if agent not in (None, who.agent):
                raise AuthError("agents can list only their own calls", error_id="forbidden", status=403)
            agent = who.agent or "\x00none"
        # the calls the agent may open (Call.participants): also ones they answered and transferred away
        items = await daemon.store.list_calls(since=since, limit=limit, participant=agent, state=state,
                                              descending=order == "desc")
        return jsonify({"items": [_live(daemon, item) for item in items]})

    @app.get("/api/calls/<call_id>")
    async def get_call(call_id: str):
        call = await commands.call_for(principal(), call_id)
        data = call.to_json()
        data["capabilities"] = commands.capabilities_of(call)
        return jsonify(data)

    @app.post("/api/calls")
    async def dial():
        who = principal()  # authentication before the body: unauthenticated is 401 whatever it sent
        data = await _json_object()
        return jsonify(await commands.dial(who, data.get("number"), data.get("agent")))

    def _call_action(action: str):
        async def handler(call_id: str):
            return jsonify(await getattr(commands, action)(principal(), call_id))

        return handler

    for action in ("hold", "unhold", "hangup"):
        app.add_url_rule(f"/api/calls/<call_id>/{action}", f"call_{action}", _call_action(action), methods=["POST"])

    @app.post("/api/calls/<call_id>/transfer")
    async def transfer(call_id: str):
        who = principal()
        data = await _json_object()
        return jsonify(await commands.transfer(who, call_id, data.get("to"), data.get("mode")))

    def _finish_transfer(action: str):
        async def handler(call_id: str):
            return jsonify(await commands.finish_transfer(principal(), call_id, action))

        return handler

    for action in ("complete", "cancel"):
        app.add_url_rule(f"/api/calls/<call_id>/transfer/{action}", f"transfer_{action}", _finish_transfer(action),
                         methods=["POST"])

    @app.post("/api/calls/<call_id>/recording-link")
    async def recording_link(call_id: str):
        who = principal()
        call = await commands.call_for(who, call_id)  # checks the caller may see this call
        if not call.recording_url:
            raise NotFoundError("no recording for this call", error_id="recording_not_found")
        query = daemon.auth.links.query("recording", call.id, who.subject)
        path = f"/api/calls/{call.id}/recording?{query}"
        return jsonify({"url": daemon.public_url + path, "path": path, "expires_in": daemon.auth.links.ttl})

    @app.get("/api/calls/<call_id>/recording")
    async def recording(call_id: str):
        if "sig" in request.args and "Authorization" not in request.headers:
            subject = daemon.auth.links.check("recording", call_id, dict(request.args.items()))
            who = daemon.auth.principal_of(subject)
        else:
            who = principal()
        call = await commands.call_for(who, call_id)  # checks the caller may see this call
        connector = daemon.connectors.get(call.connector)
        if connector is None or Capability.RECORDINGS not in connector.capabilities:
            raise CapabilityError("this connector has no recordings", error_id="capability_missing:recordings")
        found = await daemon.supervisor.call(connector.name, "recording", connector.recording, call)
        if found is None:
            raise NotFoundError("no recording for this call (yet)", error_id="recording_not_found")
        content, media_type = found
        return Response(content, content_type=media_type, headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/agents")
    async def agents():
        principal()
        sb = daemon.switchboard
        return jsonify({"items": [a.to_json() for a in sorted(sb.agents.values(), key=lambda a: a.id)]})

    @app.put("/api/agents/<agent_id>/status")
    async def set_status(agent_id: str):
        who = principal()
        data = await _json_object()
        return jsonify(await commands.set_status(who, agent_id, data.get("status"), data.get("source", "user"),
                                                 data.get("lease_seconds")))

    @app.get("/api/tasks")
    async def tasks():
        who = principal()
        status = request.args.get("status") or None
        if status not in (None, "open", "done"):
            raise RequestError("status must be open or done", error_id="bad_query")
        owner = None if who.is_supervisor else who.agent
        # A "void" task (a transient miss that a late event turned into an answered call) is not shown.
        items = [t for t in await daemon.store.list_tasks(status=status) if t.missed_calls]
        if not who.is_supervisor:
            items = [t for t in items if t.owner in (None, owner)]
        return jsonify({"items": [t.to_json() for t in items]})

    @app.get("/api/snapshot")
    async def snapshot():
        return jsonify(await commands.snapshot(principal()))

    register_dead_letters(app, daemon)

    from ctid.web.presence_api import register_presence_api

    register_presence_api(app, daemon, _json_object)


def _live(daemon, item: dict[str, Any]) -> dict[str, Any]:
    """Prefer the in-memory state (it may be a few ms ahead of the committed row)."""
    call = daemon.switchboard.calls.get(item["id"])
    return call.to_json() if call is not None else item


__all__ = ["register_api", "SCHEMAS", "Response"]
