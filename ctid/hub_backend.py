"""The daemon's side of the hub contract: token checks and the client -> server hub methods."""

from __future__ import annotations

from typing import Any

from ctid.errors import AuthError, RequestError


class DaemonHubBackend:
    """Implements :class:`ctid.hub.interfaces.HubBackend` on top of the daemon's commands."""

    def __init__(self, daemon):
        self.daemon = daemon

    async def authenticate(self, token: str):
        return self.daemon.auth.authenticate(token)

    async def resolve(self, subject: str):
        try:
            return self.daemon.auth.principal_of(subject)
        except AuthError as exc:
            raise AuthError("the connection token's user or API key is no longer configured",
                            error_id="bad_token") from exc

    async def invoke(self, principal, method: str, args: list[Any]) -> Any:
        commands = self.daemon.commands

        def arg(index: int, name: str) -> Any:
            if len(args) <= index:
                raise RequestError(f"{method} needs argument {index + 1} ({name})", error_id="bad_arguments")
            return args[index]

        if method == "SetStatus":
            if principal.agent is None and len(args) < 2:
                raise RequestError("SetStatus(status, agentId) needs an agent id for this user",
                                   error_id="no_agent")
            agent_id = args[1] if len(args) > 1 else principal.agent
            return await commands.set_status(principal, agent_id, arg(0, "status"))
        if method == "Dial":
            return await commands.dial(principal, arg(0, "number"), args[1] if len(args) > 1 else None)
        if method in ("Hold", "Unhold", "Hangup"):
            return await getattr(commands, method.lower())(principal, arg(0, "callId"))
        if method == "Transfer":
            return await commands.transfer(principal, arg(0, "callId"), arg(1, "to"), args[2] if len(args) > 2 else None)
        if method in ("CompleteTransfer", "CancelTransfer"):
            action = "complete" if method == "CompleteTransfer" else "cancel"
            return await commands.finish_transfer(principal, arg(0, "callId"), action)
        if method == "Snapshot":
            return await commands.snapshot(principal)
        raise RequestError(f"unknown hub method {method!r}", error_id="unknown_method")
