"""What the core hands to plugins: the services a connector or CRM adapter may use.

Plugins receive a :class:`Services` object instead of importing core globals (see wazo-calld).
The daemon builds the real one; ``ctid.testing`` builds one for plugin tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ctid.errors import PluginError

if TYPE_CHECKING:
    from ctid.crm import ContactMatch
    from ctid.model import Agent, Call, CallEvent


class Directory(Protocol):
    """The agent directory from configuration, with the PBX login mapping per connector instance."""

    def agents(self) -> list[Agent]: ...

    def get(self, agent_id: str) -> Agent | None: ...

    def agent_for_login(self, connector: str, login: str) -> str | None:
        """The agent id whose login on connector instance ``connector`` is ``login``."""
        ...

    def login_for_agent(self, connector: str, agent_id: str) -> str | None:
        """The agent's login on connector instance ``connector`` (falls back to the extension)."""
        ...

    def agent_for_crm_user(self, crm_user: str) -> str | None: ...


class PluginStorage(Protocol):
    """A small durable key-value store per plugin, kept in ctid's database.

    ``kind`` separates record types inside one plugin (for example ``activity``, ``recording``).
    Values are JSON-serializable mappings.
    """

    async def get(self, kind: str, key: str) -> dict[str, Any] | None: ...

    async def put(self, kind: str, key: str, value: dict[str, Any]) -> None: ...

    async def delete(self, kind: str, key: str) -> None: ...

    async def list(self, kind: str, *, limit: int = 1000) -> list[tuple[str, dict[str, Any]]]: ...


class EventSink(Protocol):
    async def submit(self, events: list[CallEvent]) -> int:
        """Accept events (persisted and reduced); return how many were new (not duplicates)."""
        ...


class ContactLookup(Protocol):
    async def lookup(self, phone: str, *, budget: float | None = None) -> list[ContactMatch] | None:
        """CRM lookup through the cache; ``None`` when the CRM did not answer within ``budget``."""
        ...


class CallReader(Protocol):
    async def get_call(self, call_id: str) -> Call | None: ...

    async def find_call(self, connector: str, pbx_call_id: str) -> Call | None: ...


#: The hub target of plugin events (docs/hub-protocol.md).
PLUGIN_EVENT = "pluginEvent"
#: The largest encoded ``data`` of one plugin event.
MAX_PLUGIN_EVENT_BYTES = 32_768
_EVENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$")


@dataclass
class Services:
    """Everything a plugin instance may use. Attributes may be ``None`` in narrow contexts
    (``ctid check`` has no event sink, ``ctid simulate-call --dry-run`` has nothing but the directory).
    """

    directory: Directory
    storage_factory: Any = None  # callable(plugin_name) -> PluginStorage
    events: EventSink | None = None
    contacts: ContactLookup | None = None
    calls: CallReader | None = None
    public_url: str = "http://127.0.0.1:8080"
    data_dir: Path = field(default_factory=lambda: Path("var"))
    default_region: str = "RU"
    hub: Any = None  # the running hub (None where nothing is served: ctid check, dry runs)
    #: The ``prometheus_client.CollectorRegistry`` served at ``/metrics``: a plugin registers its
    #: own metrics or collectors here (None where nothing is served). Name them ``ctid_<plugin>_*``.
    metrics_registry: Any = None

    def storage(self, plugin: str) -> PluginStorage:
        if self.storage_factory is None:
            raise RuntimeError("plugin storage is not available in this context")
        return self.storage_factory(plugin)

    def publish_plugin_event(
        self,
        plugin: str,
        event: str,
        data: Any = None,
        *,
        agents: Iterable[str] = (),
        supervisors: bool = False,
        everyone: bool = False,
    ) -> bool:
        """Send a ``pluginEvent`` hub message ``{"plugin", "event", "data"}`` to panels and clients.

        The audience is the union of ``agents`` (agent ids: the connections acting as them),
        ``supervisors`` (supervisor and admin connections) and ``everyone`` (every agent and
        supervisor). Delivered on every instance through the backplane, without waiting (call it
        from sync or async code). Returns False where no hub runs (``ctid check``, dry runs).
        Raises :class:`~ctid.errors.PluginError` for a bad name, no audience, or ``data`` that is
        not JSON or larger than :data:`MAX_PLUGIN_EVENT_BYTES`.

        .. versionadded:: 2.0
        """
        from ctid.hub.hub import AGENTS, SUPERVISORS, agent_group

        for kind, name in (("plugin", plugin), ("event", event)):
            if not isinstance(name, str) or not _EVENT_NAME.match(name):
                raise PluginError(f"pluginEvent: bad {kind} name {name!r} (letters, digits, _.:- up to 64)")
        groups = {agent_group(agent) for agent in ([agents] if isinstance(agents, str) else agents)}
        if supervisors or everyone:
            groups.add(SUPERVISORS)
        if everyone:
            groups.add(AGENTS)
        if not groups:
            raise PluginError(f"pluginEvent {plugin}/{event}: no audience (agents, supervisors or everyone)")
        payload = {"plugin": plugin, "event": event, "data": data}
        try:
            size = len(json.dumps(data, separators=(",", ":"), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise PluginError(f"pluginEvent {plugin}/{event}: data is not JSON: {exc}") from exc
        if size > MAX_PLUGIN_EVENT_BYTES:
            raise PluginError(f"pluginEvent {plugin}/{event}: data is {size} bytes, over {MAX_PLUGIN_EVENT_BYTES}")
        if self.hub is None:
            return False
        self.hub.publish(PLUGIN_EVENT, payload, groups)
        return True

    def recording_url(self, call_id: str) -> str:
        """The ctid URL under which a call's recording is served to authorized users."""
        return f"{self.public_url.rstrip('/')}/api/calls/{call_id}/recording"
