"""Call and presence commands, shared by the REST API and the hub, with their authorization rules.

Every command checks who asks (an agent acts only on its own calls and status), finds the
connector that owns the call or the agent's line, checks the capability, and translates the
connector's failure into a clear error.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from ctid.auth import Principal, require_agent_access, require_call_access
from ctid.errors import CapabilityError, CtidError, NotFoundError, PluginError, RequestError
from ctid.model import Call, CallState, Capability, Presence, PresenceSource, utcnow
from ctid.phone import normalize
from ctid.supervise import describe
from ctid.switchboard import launcher_may_set

log = logging.getLogger(__name__)

#: Transfer modes of ``Commands.transfer`` (a connector lists the ones it offers in ``transfer_modes``).
TRANSFER_MODES = ("blind", "consult")
MIN_LEASE, MAX_LEASE = 5, 3600  # seconds a launcher's presence lease may be given


def _text(value: Any, name: str) -> str:
    """A required string argument (hub and REST pass JSON values straight through)."""
    if not isinstance(value, str) or not value:
        raise RequestError(f"{name} must be a non-empty string", error_id="bad_arguments")
    return value


class Commands:
    def __init__(self, daemon):
        self.daemon = daemon

    # -- lookups ---------------------------------------------------------------------------------
    async def call_for(self, principal: Principal, call_id: str) -> Call:
        call = await self.daemon.get_call(_text(call_id, "callId"))
        if call is None:
            raise NotFoundError(f"no call {call_id!r}", error_id="call_not_found")
        require_call_access(principal, call.participants())
        return call

    def _acting_agent(self, principal: Principal, call: Call | None = None) -> str:
        if principal.agent:
            return principal.agent
        if call is not None and call.agent:
            return call.agent
        raise RequestError("this user is not linked to an agent", error_id="no_agent")

    def _login(self, connector_name: str, agent_id: str) -> str:
        login = self.daemon.directory.login_for_agent(connector_name, agent_id)
        if login is None:
            raise RequestError(
                f"agent {agent_id!r} has no login on connector {connector_name!r}", error_id="no_pbx_login"
            )
        return login

    def _connector(self, name: str):
        connector = self.daemon.connectors.get(name)
        if connector is None:
            raise CapabilityError(f"connector {name!r} is not running", error_id="connector_unavailable")
        return connector

    async def _run(self, command: str, coro) -> Any:
        """Await a connector's command (plugin code): a CtidError is its answer; anything else is a
        plugin bug, recorded by the daemon's supervisor (ctid/supervise.py) and answered as a
        PluginError (502 ``plugin_failed``, the exception named)."""
        # the connector whose method made the coroutine (its frame holds the bound ``self``)
        owner = getattr(getattr(coro, "cr_frame", None), "f_locals", {}).get("self")
        plugin = getattr(owner, "name", None) or "connector"
        try:
            result = await coro
        except CtidError:
            self.daemon.metrics.commands.labels(command=command, result="error").inc()
            raise
        except Exception as exc:
            self.daemon.metrics.commands.labels(command=command, result="error").inc()
            self.daemon.supervisor.failed(plugin, command, exc)
            raise PluginError(f"connector {plugin} failed in {command}: {describe(exc)}", status=502) from exc
        self.daemon.metrics.commands.labels(command=command, result="ok").inc()
        return result

    # -- commands --------------------------------------------------------------------------------
    async def dial(self, principal: Principal, number: str, agent_id: str | None = None) -> dict[str, Any]:
        if not isinstance(number, str) or not number.strip():
            raise RequestError("number is required", error_id="bad_number")
        agent_id = agent_id or principal.agent
        if agent_id is None:
            raise RequestError("this user is not linked to an agent; give 'agent'", error_id="no_agent")
        agent_id = _text(agent_id, "agent")
        require_agent_access(principal, agent_id)  # before existence: agents cannot probe ids
        if self.daemon.directory.get(agent_id) is None:
            raise NotFoundError(f"no agent {agent_id!r}", error_id="agent_not_found")
        e164 = normalize(number, self.daemon.settings.core.phone.default_region)
        if e164 is None or sum(ch.isdigit() for ch in e164) < 3:
            raise RequestError(f"{number!r} is not a phone number", error_id="bad_number")
        for name, connector in self.daemon.connectors.items():
            if Capability.DIAL not in connector.capabilities:
                continue
            login = self.daemon.directory.login_for_agent(name, agent_id)
            if login is None:
                continue
            pbx_call_id = await self._run("dial", connector.dial(login, e164))
            return {"status": "dialing", "connector": name, "agent": agent_id, "number": e164,
                    "pbx_call_id": pbx_call_id}
        raise CapabilityError(f"no connector can dial for agent {agent_id!r}", error_id="capability_missing:dial")

    async def _call_command(self, principal: Principal, call_id: str, capability: Capability, name: str):
        call = await self.call_for(principal, call_id)
        if call.state is CallState.ENDED:
            raise CapabilityError("the call has ended", error_id="call_ended")
        connector = self._connector(call.connector)
        connector.require(capability)
        agent = self._acting_agent(principal, call)
        return call, connector, self._login(call.connector, agent)

    async def hold(self, principal: Principal, call_id: str) -> dict[str, Any]:
        call, connector, login = await self._call_command(principal, call_id, Capability.HOLD, "hold")
        await self._run("hold", connector.hold(call, login))
        return {"status": "ok", "call_id": call.id}

    async def unhold(self, principal: Principal, call_id: str) -> dict[str, Any]:
        call, connector, login = await self._call_command(principal, call_id, Capability.HOLD, "unhold")
        await self._run("unhold", connector.unhold(call, login))
        return {"status": "ok", "call_id": call.id}

    async def hangup(self, principal: Principal, call_id: str) -> dict[str, Any]:
        call, connector, login = await self._call_command(principal, call_id, Capability.HANGUP, "hangup")
        await self._run("hangup", connector.hangup(call, login))
        return {"status": "ok", "call_id": call.id}

    async def transfer(self, principal: Principal, call_id: str, to: Any, mode: Any = None) -> dict[str, Any]:
        """Transfer to an agent or ``"free"``. ``mode`` "blind" (default) hands the call over at once;
        "consult" (connectors whose ``transfer_modes`` offer it) puts the caller on hold and rings the
        colleague, and :meth:`finish_transfer` then completes or cancels it."""
        mode = "blind" if mode is None else mode
        if mode not in TRANSFER_MODES:
            raise RequestError("mode must be \"blind\" or \"consult\"", error_id="bad_transfer_mode")
        if not isinstance(to, str) or not to:
            raise RequestError("'to' must be an agent id or \"free\"", error_id="bad_transfer_target")
        call, connector, login = await self._call_command(principal, call_id, Capability.TRANSFER, "transfer")
        if mode == "consult":
            self._require_consult(connector)
        if to == "free":
            target = self.daemon.switchboard.free_agent(call.group, exclude={a for a in (call.agent,) if a})
            if target is None:
                raise CapabilityError("no free agent to transfer to", error_id="no_free_agent")
            target_id = target.id
        else:
            if self.daemon.directory.get(to) is None:
                raise NotFoundError(f"no agent {to!r}", error_id="agent_not_found")
            target_id = to
        if target_id == call.agent:
            raise RequestError("the call is already with that agent", error_id="bad_transfer_target")
        target_login = self._login(call.connector, target_id)
        if mode == "consult":
            await self._run("transfer", connector.transfer(call, login, target_login, mode="consult"))
            return {"status": "consulting", "call_id": call.id, "to": target_id}
        await self._run("transfer", connector.transfer(call, login, target_login))
        return {"status": "ok", "call_id": call.id, "to": target_id}

    @staticmethod
    def _require_consult(connector) -> None:
        if "consult" not in getattr(connector, "transfer_modes", ("blind",)):
            raise CapabilityError(f"connector {connector.name!r} cannot make consultative transfers",
                                  error_id="capability_missing:consult_transfer")

    async def finish_transfer(self, principal: Principal, call_id: str, action: str) -> dict[str, Any]:
        """Complete (``action`` "complete": the caller goes to the colleague) or cancel ("cancel": the
        caller is back with the agent) the consultative transfer in progress on a call."""
        if action not in ("complete", "cancel"):
            raise RequestError("action must be complete or cancel", error_id="bad_arguments")
        call, connector, login = await self._call_command(principal, call_id, Capability.TRANSFER, "transfer")
        self._require_consult(connector)
        finish = connector.complete_transfer if action == "complete" else connector.cancel_transfer
        target_login = await self._run(f"transfer_{action}", finish(call, login))
        target = (self.daemon.directory.agent_for_login(call.connector, target_login)
                  if isinstance(target_login, str) else None)
        return {"status": "ok" if action == "complete" else "cancelled", "call_id": call.id, "to": target}

    async def set_status(
        self,
        principal: Principal,
        agent_id: str,
        status: Any,
        source: Any = "user",
        lease_seconds: Any = None,
    ) -> dict[str, Any]:
        """Set an agent's presence. ``source`` "launcher" is the desktop launcher acting on its own
        (lock, unlock, logon): refused with ``status_set_by_user`` (409) over an away or DND the
        person chose. ``lease_seconds`` also starts or renews the launcher's presence lease."""
        agent_id = self._agent_id(principal, agent_id)
        try:
            presence = Presence(status)
        except ValueError as exc:
            choices = ", ".join(p.value for p in Presence)
            raise RequestError(f"status must be one of {choices}", error_id="bad_status") from exc
        if source not in ("user", "launcher"):
            raise RequestError("source must be user or launcher", error_id="bad_source")
        source = PresenceSource(source)
        lease = None if lease_seconds is None else self._lease_seconds(lease_seconds)
        sb = self.daemon.switchboard
        await self._end_lapsed_lease(agent_id)
        if source is PresenceSource.LAUNCHER and not launcher_may_set(sb.agents[agent_id]):
            current = sb.agents[agent_id].status.value
            raise RequestError(f"the person set {current!r} by hand; the launcher may not change it",
                               error_id="status_set_by_user", status=409)
        changes = sb.set_status(agent_id, presence, self.daemon.clock(), source)
        if lease is not None:
            changes.merge(sb.set_lease(agent_id, self.daemon.clock() + lease))
        await self.daemon.apply_status(changes)
        if lease is not None:
            await self.daemon.lease_renewed(agent_id)
        await self._mirror_dnd(agent_id, presence)
        return sb.agents[agent_id].to_json()

    async def renew_lease(self, principal: Principal, agent_id: str, lease_seconds: Any) -> dict[str, Any]:
        """Start or renew the agent's launcher lease for ``lease_seconds`` from now."""
        agent_id = self._agent_id(principal, agent_id)
        lease = self._lease_seconds(lease_seconds)
        await self._end_lapsed_lease(agent_id)  # the answer then says away (source lease): restore it
        changes = self.daemon.switchboard.set_lease(agent_id, self.daemon.clock() + lease)
        await self.daemon.apply_status(changes)
        await self.daemon.lease_renewed(agent_id)
        return self.daemon.switchboard.agents[agent_id].to_json()

    async def end_lease(self, principal: Principal, agent_id: str) -> dict[str, Any]:
        """End the launcher's lease without a fallback (the launcher signs out or quits cleanly)."""
        agent_id = self._agent_id(principal, agent_id)
        await self._end_lapsed_lease(agent_id)
        changes = self.daemon.switchboard.set_lease(agent_id, None)
        await self.daemon.apply_status(changes)
        await self.daemon.lease_renewed(agent_id)
        return self.daemon.switchboard.agents[agent_id].to_json()

    async def _end_lapsed_lease(self, agent_id: str) -> None:
        """A lease already due ends (with its fallback) before the launcher's request applies, even
        when the expiry timer has not had its turn yet (ctid just started after being down longer
        than the lease): a renewal must not revive a lapsed lease, hiding the lapse from the
        launcher, and a status change must not skip it."""
        until = self.daemon.switchboard.agents[agent_id].lease_until
        if until is not None and until <= self.daemon.clock():
            await self.daemon.expire_leases()

    def _agent_id(self, principal: Principal, agent_id: Any) -> str:
        agent_id = _text(agent_id, "agent")
        require_agent_access(principal, agent_id)  # before existence: agents cannot probe ids
        if self.daemon.directory.get(agent_id) is None or agent_id not in self.daemon.switchboard.agents:
            raise NotFoundError(f"no agent {agent_id!r}", error_id="agent_not_found")
        return agent_id

    @staticmethod
    def _lease_seconds(value: Any) -> timedelta:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 60.0 is an integer to JSON Schema (and to JavaScript clients)
        if isinstance(value, bool) or not isinstance(value, int) or not MIN_LEASE <= value <= MAX_LEASE:
            raise RequestError(f"lease_seconds must be an integer from {MIN_LEASE} to {MAX_LEASE}",
                               error_id="bad_lease")
        return timedelta(seconds=value)

    async def _mirror_dnd(self, agent_id: str, presence: Presence) -> None:
        for name, connector in self.daemon.connectors.items():
            if Capability.DND not in connector.capabilities or not getattr(connector.config, "dnd_sync", False):
                continue
            login = self.daemon.directory.login_for_agent(name, agent_id)
            if login is None:
                continue
            try:
                await self._run("set_dnd", connector.set_dnd(login, presence in (Presence.DND, Presence.OFFLINE)))
            except CtidError as exc:  # presence is ctid's; the PBX mirror is best effort
                log.warning("could not mirror DND of %s to %s: %s", agent_id, name, exc)

    async def snapshot(self, principal: Principal) -> dict[str, Any]:
        sb = self.daemon.switchboard
        calls = [c for c in sb.calls.values() if c.state is not CallState.ENDED]
        if not principal.is_supervisor:
            calls = [c for c in calls if principal.agent in c.participants()]
        tasks = [t for t in sb.tasks.values() if t.status.value == "open"]
        if not principal.is_supervisor:
            tasks = [t for t in tasks if t.owner in (None, principal.agent)]
        return {
            "me": principal.to_json(),
            "calls": [c.to_json() for c in sorted(calls, key=lambda c: (c.started_at or utcnow(), c.id))],
            "agents": [a.to_json() for a in sorted(sb.agents.values(), key=lambda a: a.id)],
            "tasks": [t.to_json() for t in sorted(tasks, key=lambda t: t.id)],
            # What each connector instance can do, so a panel shows only the call controls that work.
            "connectors": {name: offered(connector) for name, connector in sorted(self.daemon.connectors.items())},
            # Live KPIs for the supervisor tiles (ctid.kpi_live; then kpisUpdated as they change).
            "kpis": self.daemon.live_kpis.snapshot() if principal.is_supervisor else None,
        }

    def capabilities_of(self, call: Call) -> list[str]:
        connector = self.daemon.connectors.get(call.connector)
        return offered(connector) if connector else []


def offered(connector) -> list[str]:
    """What a connector offers a panel: its capabilities, plus ``consult_transfer`` when its
    ``transfer_modes`` include ``consult`` (Transfer with mode "consult", then complete or cancel)."""
    names = {c.value for c in connector.capabilities}
    if Capability.TRANSFER in connector.capabilities and "consult" in getattr(connector, "transfer_modes", ()):
        names.add("consult_transfer")
    return sorted(names)

