"""The PBX connector contract: what a PBX plugin's connector class provides.

A PBX plugin registers connector *classes* through ``ctid_register_connectors``. ctid creates one
instance per ``connectors.<instance>`` entry of the configuration, whose ``plugin`` key names the
class's :attr:`Connector.plugin_name`. The connector turns the PBX's native traffic into
:class:`~ctid.model.CallEvent` objects and turns ctid's commands into native API calls. It never talks
to the CRM, the hub or the database except through the :class:`~ctid.services.Services` it is given.

A connector declares what it offers in :attr:`Connector.capabilities`; ctid offers only those
commands, and a default method reached anyway raises :class:`~ctid.errors.CapabilityError`
(``capability_missing:<name>``). A capability declared without overriding its methods (``dial``
declared, the base ``dial`` inherited) is refused when the class is registered and when it is
instantiated, naming the plugin and the method (:func:`contract_problems`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ctid.errors import CapabilityError, PluginError
from ctid.model import Call, CallEvent, Capability, utcnow

if TYPE_CHECKING:
    import trio

    from ctid.services import Services


class ConnectorConfig(BaseModel):
    """Keys every connector instance accepts; plugins subclass this with their own keys."""

    model_config = ConfigDict(extra="forbid")

    plugin: str
    enabled: bool = True
    reconcile_interval: float | None = Field(
        default=None, ge=5, description="Seconds between history pulls (connectors with 'history')."
    )
    reconcile_lookback: float = Field(
        default=7200, ge=60,
        description="Seconds of history each pull covers; longer than your longest call plus an outage.",
    )


@dataclass(slots=True)
class WebhookRequest:
    """An HTTP request to ``/hooks/{instance}[/{subpath}]``, as the connector sees it."""

    method: str
    subpath: str
    headers: dict[str, str]  # lower-cased names
    query: dict[str, str]
    body: bytes
    remote_addr: str | None = None
    received_at: datetime = field(default_factory=utcnow)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass(slots=True)
class WebhookResult:
    """What a connector made of a webhook: events to accept, then the answer to send.

    The core commits ``events`` (idempotently) before it sends the answer, so a PBX that gets the
    answer knows its events are safe. ``body`` is sent as JSON unless it is ``str``/``bytes``.
    """

    events: list[CallEvent] = field(default_factory=list)
    status: int = 200
    body: Any = None
    media_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class SimulatedRequest:
    """One native HTTP request produced by :meth:`Connector.simulate`, path relative to the server."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    description: str = ""


@dataclass(slots=True)
class Health:
    """Result of a health check: ``ok`` plus named sub-checks with a human reason each."""

    ok: bool
    detail: str = ""
    checks: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "checks": dict(self.checks)}


@dataclass(slots=True)
class SimulationContext:
    """Who takes part in a simulated call: logins are this connector instance's PBX logins."""

    caller: str  # remote party number as the PBX would send it
    agent: str  # login of the (first) agent
    others: list[str] = field(default_factory=list)  # other agents' logins (group, transfer target)
    line: str | None = None  # our number that was called / used for outbound
    group: str | None = None
    start: datetime = field(default_factory=utcnow)


#: Capability -> the methods a connector declaring it must override.
CONNECTOR_CAPABILITIES: dict[Capability, tuple[str, ...]] = {
    Capability.DIAL: ("dial",),
    Capability.HOLD: ("hold", "unhold"),
    Capability.TRANSFER: ("transfer",),
    Capability.HANGUP: ("hangup",),
    Capability.DND: ("set_dnd",),
    Capability.RECORDINGS: ("recording",),
    Capability.HISTORY: ("history",),
}


def contract_problems(target: Any) -> list[str]:
    """What a connector or CRM adapter class (or instance) declares but does not implement.

    Each problem names the capability and the method left to the base class; an unknown
    capability name is a problem too. Instances are checked with their real ``capabilities``
    (some connectors compute them from their configuration); classes whose ``capabilities`` is
    computed per instance are checked for everything else.
    """
    from ctid.crm import CRM_CAPABILITIES, CRMAdapter

    cls = target if isinstance(target, type) else type(target)
    if issubclass(cls, Connector):
        base: type = Connector
        table: dict[Any, tuple[str, ...]] = dict(CONNECTOR_CAPABILITIES)
    elif issubclass(cls, CRMAdapter):
        base, table = CRMAdapter, dict(CRM_CAPABILITIES)
    else:
        return [f"{cls.__name__} is neither a Connector nor a CRMAdapter"]
    declared = getattr(target, "capabilities", frozenset())
    problems: list[str] = []
    if isinstance(declared, property):  # computed per instance: checked when instantiated
        declared = frozenset()
    elif not isinstance(declared, (set, frozenset, list, tuple)):
        return [f"capabilities must be a frozenset, not {type(declared).__name__}"]
    for capability in sorted(declared, key=str):
        key = capability
        if base is Connector:
            try:
                key = Capability(capability)
            except ValueError:
                key = None
        if key not in table:
            known = ", ".join(sorted(str(name) for name in table))
            problems.append(f"unknown capability {str(capability)!r} (known: {known})")
            continue
        for method in table[key]:
            if getattr(cls, method, None) is getattr(base, method):
                problems.append(f"declares capability {str(capability)!r} but does not override {method}()")
    if base is Connector:
        if cls.accepts_webhooks and cls.handle_webhook is Connector.handle_webhook:
            problems.append("sets accepts_webhooks but does not override handle_webhook()")
        if cls.scenarios and cls.simulate is Connector.simulate:
            problems.append("lists scenarios but does not override simulate()")
    return problems


def _not_overridden(plugin: str, method: str) -> PluginError:
    return PluginError(f"plugin {plugin!r} declares the capability of {method}() but does not implement it",
                       error_id="contract_broken")


class Connector:
    """Base class of PBX connectors. Override what the PBX supports; declare it in ``capabilities``."""

    #: The name used in ``connectors.<instance>.plugin``.
    plugin_name: ClassVar[str] = ""
    #: The pydantic model of this connector's configuration.
    Config: ClassVar[type[ConnectorConfig]] = ConnectorConfig
    #: Commands and features this connector really offers.
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: Scenario names :meth:`simulate` understands.
    scenarios: ClassVar[tuple[str, ...]] = ()
    #: Whether the connector accepts webhooks at ``/hooks/{instance}``.
    accepts_webhooks: ClassVar[bool] = False

    def __init__(self, name: str, config: ConnectorConfig, services: Services):
        self.name = name
        self.config = config
        self.services = services
        problems = contract_problems(self)
        if problems:
            raise PluginError(f"connector plugin {self.plugin_name or type(self).__name__!r}: {'; '.join(problems)}",
                              error_id="contract_broken")

    # -- lifecycle -------------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus = None) -> None:  # type: ignore[assignment]
        """Long-running work (TCP streams, pollers). Called in ctid's nursery; return when done."""
        if task_status is not None:
            task_status.started()

    async def aclose(self) -> None:
        """Release clients and sockets."""

    # -- inbound ---------------------------------------------------------------------------------
    async def handle_webhook(self, request: WebhookRequest) -> WebhookResult:
        """Parse and verify a webhook. Raise ``AuthError``/``RequestError`` for bad requests."""
        raise CapabilityError(f"connector {self.name!r} does not accept webhooks", error_id="no_webhooks")

    async def history(self, since: datetime) -> list[CallEvent]:
        """Events (usually ``summary`` events) for calls since ``since``, for reconciliation."""
        self.require(Capability.HISTORY)
        raise _not_overridden(self.plugin_name, "history")

    # -- commands --------------------------------------------------------------------------------
    def require(self, capability: Capability) -> None:
        if capability not in self.capabilities:
            raise CapabilityError(
                f"connector {self.name!r} ({self.plugin_name}) cannot {capability.value}",
                error_id=f"capability_missing:{capability.value}",
            )

    async def dial(self, agent_login: str, number: str) -> str | None:
        """Click-to-call: ring the agent, then ``number``. Return the PBX call id if known."""
        self.require(Capability.DIAL)
        raise _not_overridden(self.plugin_name, "dial")

    async def hold(self, call: Call, agent_login: str) -> None:
        self.require(Capability.HOLD)
        raise _not_overridden(self.plugin_name, "hold")

    async def unhold(self, call: Call, agent_login: str) -> None:
        self.require(Capability.HOLD)
        raise _not_overridden(self.plugin_name, "unhold")

    async def transfer(self, call: Call, agent_login: str, target_login: str) -> None:
        self.require(Capability.TRANSFER)
        raise _not_overridden(self.plugin_name, "transfer")

    async def hangup(self, call: Call, agent_login: str) -> None:
        self.require(Capability.HANGUP)
        raise _not_overridden(self.plugin_name, "hangup")

    async def set_dnd(self, agent_login: str, enabled: bool) -> None:
        self.require(Capability.DND)
        raise _not_overridden(self.plugin_name, "set_dnd")

    async def recording(self, call: Call) -> tuple[bytes, str] | None:
        """The recording's bytes and media type, or None if there is none (yet)."""
        self.require(Capability.RECORDINGS)
        raise _not_overridden(self.plugin_name, "recording")

    async def health(self) -> Health:
        return Health(ok=True, detail="no checks defined")

    # -- simulation ------------------------------------------------------------------------------
    def simulate(self, scenario: str, context: SimulationContext) -> list[SimulatedRequest]:
        """The PBX's native wire traffic for ``scenario``, in order, for ``ctid simulate-call``."""
        raise CapabilityError(f"connector {self.name!r} cannot simulate calls", error_id="no_simulation")

    async def send_simulation(self, scenario: str, context: SimulationContext, *, base_url: str,
                              report: Callable[[str], None] = print) -> None:
        """Deliver :meth:`simulate`'s traffic to the running ctid at ``base_url``; ``report`` gets one
        line per message sent.

        The default posts each :class:`SimulatedRequest` over HTTP (webhook PBXs). A PBX that
        reaches ctid over its own sockets (a TCP event stream, a CDR feed) overrides this to play the
        PBX side of those sockets. Raises ``PBXError`` (ctid unreachable) or ``RequestError``
        (``simulation_rejected``: ctid refused a message).
        """
        import httpx

        from ctid.errors import PBXError, RequestError

        base = base_url.rstrip("/")
        async with httpx.AsyncClient(timeout=10) as client:
            for req in self.simulate(scenario, context):
                try:
                    response = await client.request(req.method, base + req.path, headers=req.headers,
                                                    content=req.body)
                except httpx.HTTPError as exc:
                    raise PBXError(f"cannot reach ctid at {base}: {exc}", error_id="unreachable") from exc
                report(f"{response.status_code} {req.method} {req.path}  {req.description}")
                if response.status_code >= 400:
                    raise RequestError(f"ctid answered {response.status_code}: {response.text[:300]}",
                                       error_id="simulation_rejected")
