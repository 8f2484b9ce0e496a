"""REST routes of the desktop launcher: the presence lease, token refresh and one-time sign-in codes.

``PUT /api/agents/{id}/status`` (in :mod:`ctid.web.api`) takes ``source`` and ``lease_seconds``
too; these routes renew or end the lease alone, and hand a session to the browser without a token
in the URL. docs/call-model.md ("Presence and the launcher's lease") and docs/panel.md describe
the behaviour.
"""

from __future__ import annotations

from quart import jsonify, request

from ctid.auth import Principal, bearer
from ctid.commands import MAX_LEASE, MIN_LEASE
from ctid.errors import RequestError
from ctid.web.openapi import document

_AGENT = {"$ref": "#/components/schemas/Agent"}
_LEASE = {"type": "object", "required": ["lease_seconds"],
          "properties": {"lease_seconds": {"type": "integer", "minimum": MIN_LEASE, "maximum": MAX_LEASE}}}
_TOKEN = {"type": "object", "properties": {"access_token": {"type": "string"}, "token_type": {"const": "bearer"},
                                           "expires_in": {"type": "integer"}, "user": {"type": "object"}}}

document(path="/api/agents/{id}/lease", method="POST", tag="agents", response=_AGENT, request=_LEASE,
         summary="Start or renew the desktop launcher's presence lease: unless renewed within lease_seconds, "
                 "an available agent falls back to away (docs/call-model.md)",
         errors={400: "bad lease_seconds", 403: "not your agent", 404: "no such agent"})
document(path="/api/agents/{id}/lease", method="DELETE", tag="agents", response=_AGENT,
         summary="End the launcher's presence lease without a fallback (the launcher signs out or quits)",
         errors={403: "not your agent", 404: "no such agent"})
document(path="/api/auth/refresh", method="POST", tag="auth", response=_TOKEN,
         summary="A fresh access token for the user of this one (the launcher renews its kept token before it "
                 "expires)", errors={400: "API keys do not expire: nothing to refresh"})
document(path="/api/auth/handoff", method="POST", tag="auth",
         summary="A one-time sign-in code (60 s) to open the panel signed in: /panel/#code=<code>",
         response={"type": "object", "properties": {"code": {"type": "string"}, "expires_in": {"type": "integer"},
                                                    "panel_url": {"type": "string"}}},
         errors={400: "an API key cannot hand over a session"})
document(path="/api/auth/handoff/redeem", method="POST", tag="auth", auth=False, response=_TOKEN,
         summary="Exchange a one-time sign-in code for an access token (once)",
         request={"type": "object", "required": ["code"],
                  "properties": {"code": {"type": "string", "minLength": 1, "maxLength": 1000}}},
         errors={400: "malformed body", 401: "wrong, expired or used code"})


def register_presence_api(app, daemon, json_object) -> None:
    commands = daemon.commands

    def principal() -> Principal:
        return daemon.auth.authenticate(bearer(request.headers.get("Authorization")))

    @app.post("/api/agents/<agent_id>/lease")
    async def renew_lease(agent_id: str):
        who = principal()
        data = await json_object()
        return jsonify(await commands.renew_lease(who, agent_id, data.get("lease_seconds")))

    @app.delete("/api/agents/<agent_id>/lease")
    async def end_lease(agent_id: str):
        return jsonify(await commands.end_lease(principal(), agent_id))

    @app.post("/api/auth/refresh")
    async def refresh():
        who = principal()
        if who.subject.startswith("key:"):
            raise RequestError("API keys do not expire: nothing to refresh", error_id="refresh_needs_user")
        token = daemon.auth.issue(who)
        return jsonify({"access_token": token, "token_type": "bearer", "expires_in": daemon.auth.ttl,
                        "user": who.to_json()})

    @app.post("/api/auth/handoff")
    async def handoff():
        code = daemon.handoff.issue(principal())
        return jsonify({"code": code, "expires_in": daemon.handoff.ttl,
                        "panel_url": f"{daemon.public_url}/panel/#code={code}"})

    @app.post("/api/auth/handoff/redeem")
    async def redeem():
        data = await json_object()
        if "code" not in data:
            raise RequestError("code is required", error_id="bad_code_format")
        token, who = await daemon.handoff.redeem(data["code"], daemon.auth)
        return jsonify({"access_token": token, "token_type": "bearer", "expires_in": daemon.auth.ttl,
                        "user": who.to_json()})
