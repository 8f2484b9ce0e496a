"""The CRM adapter contract: what a CRM plugin's adapter class provides.

A CRM plugin registers adapter *classes* through ``ctid_register_crms``; the ``crm.plugin`` key of
the configuration picks one. An adapter declares what it implements in
:attr:`CRMAdapter.capabilities` (the names in :data:`CRM_CAPABILITIES`); ctid calls nothing that is
not declared, and a default method that is reached anyway raises
:class:`~ctid.errors.CapabilityError` (``capability_missing:<name>``) instead of silently succeeding.
A capability declared without overriding its methods is refused when the class is registered and
when it is instantiated (:func:`contract_problems`).

Writes (``log_call``, tasks, recordings) run from ctid's outbox worker and must be idempotent: the
worker retries them after failures, so the same call may be logged more than once and must still
produce one record. ``lookup`` runs on the screen-pop path with a short time budget and a cache in
front of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ctid.connector import Health, contract_problems
from ctid.errors import CapabilityError, PluginError

if TYPE_CHECKING:
    from ctid.model import Agent, Call, Task
    from ctid.services import Services

#: Phone lookups for the screen pop (:meth:`CRMAdapter.lookup`).
LOOKUP = "lookup"
#: Activities for ended calls (:meth:`CRMAdapter.log_call`).
LOG_CALL = "log_call"
#: Callback tasks for missed calls (:meth:`CRMAdapter.create_callback_task`, ``close_callback_task``).
TASKS = "tasks"
#: Recording links on call activities (:meth:`CRMAdapter.attach_recording`).
RECORDINGS = "recordings"
#: Sales facts for the funnel and campaign reports (:meth:`CRMAdapter.sales_facts`).
SALES_FACTS = "sales_facts"

#: Capability name -> the methods an adapter declaring it must override.
CRM_CAPABILITIES: dict[str, tuple[str, ...]] = {
    LOOKUP: ("lookup",),
    LOG_CALL: ("log_call",),
    TASKS: ("create_callback_task", "close_callback_task"),
    RECORDINGS: ("attach_recording",),
    SALES_FACTS: ("sales_facts",),
}

#: ``CRMFact.kind`` values, from the first contact to the closed deal.
FACT_KINDS = ("contact", "lead", "opportunity", "won", "lost")


class CRMConfig(BaseModel):
    """Keys every CRM adapter accepts; plugins subclass this with their own keys."""

    model_config = ConfigDict(extra="forbid")

    plugin: str
    lookup_budget: float = Field(default=1.5, gt=0, description="Seconds the screen pop waits for lookup.")
    cache_ttl: float = Field(default=300, ge=0, description="Seconds a lookup result is cached.")


@dataclass(slots=True)
class ContactMatch:
    """One CRM record that matches a phone number."""

    id: str
    entity: str  # contact, account, lead, ...
    name: str
    company: str | None = None
    owner: str | None = None  # agent id (or CRM user) responsible for the record
    url: str | None = None  # the link a browser opens
    phones: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class CRMFact:
    """A sales fact the CRM knows about a caller, for the funnel and campaign reports.

    .. versionadded:: 2.0
    """

    kind: str  # "contact" | "lead" | "opportunity" | "won" | "lost" (FACT_KINDS)
    record_id: str  # the CRM record's id
    phone: str | None  # E.164 number it belongs to (ctid.phone normalisation)
    at: datetime  # UTC: when the record reached this kind (created / qualified / closed)
    amount: float | None = None
    currency: str | None = None
    stage: str | None = None  # the CRM's own stage / status name
    owner: str | None = None  # ctid agent id when known

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


class CRMAdapter:
    """Base class of CRM adapters. Override what the CRM supports; declare it in ``capabilities``."""

    #: The name used in ``crm.plugin``.
    plugin_name: ClassVar[str] = ""
    #: The pydantic model of this adapter's configuration.
    Config: ClassVar[type[CRMConfig]] = CRMConfig
    #: What this adapter really implements: names of :data:`CRM_CAPABILITIES`.
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: CRMConfig, services: Services):
        problems = contract_problems(self)
        if problems:
            raise PluginError(f"CRM plugin {self.plugin_name or type(self).__name__!r}: {'; '.join(problems)}",
                              error_id="contract_broken")
        self.config = config
        self.services = services

    def supports(self, capability: str) -> bool:
        """Whether this adapter declared ``capability``; ctid calls nothing undeclared."""
        return capability in self.capabilities

    def require(self, capability: str) -> None:
        """Raise :class:`CapabilityError` (``capability_missing:<capability>``) unless declared."""
        if capability not in self.capabilities:
            raise CapabilityError(
                f"CRM plugin {self.plugin_name!r} does not declare {capability!r}",
                error_id=f"capability_missing:{capability}",
            )

    async def aclose(self) -> None:
        """Release clients."""

    async def lookup(self, phone: str) -> list[ContactMatch]:
        """Records whose phone matches ``phone`` (E.164). Empty list when unknown. Capability ``lookup``."""
        self.require(LOOKUP)
        raise _not_overridden(self, "lookup")

    def new_contact_url(self, phone: str) -> str | None:
        """The URL of a new-contact form prefilled with ``phone``, if the CRM has one (None: no form)."""
        return None

    async def log_call(self, call: Call, agent: Agent | None) -> str | None:
        """Create or update the activity for an ended call, idempotently. Return the CRM record id.
        Capability ``log_call``."""
        self.require(LOG_CALL)
        raise _not_overridden(self, "log_call")

    async def create_callback_task(self, task: Task, owner: Agent | None) -> str | None:
        """Create or update the open callback task for ``task.number``. Return the CRM record id.
        Capability ``tasks``."""
        self.require(TASKS)
        raise _not_overridden(self, "create_callback_task")

    async def close_callback_task(self, task: Task) -> None:
        """Mark the callback task done (the caller was reached). Capability ``tasks``."""
        self.require(TASKS)
        raise _not_overridden(self, "close_callback_task")

    async def attach_recording(self, call: Call, url: str) -> None:
        """Attach ctid's recording link to the call's activity. Capability ``recordings``."""
        self.require(RECORDINGS)
        raise _not_overridden(self, "attach_recording")

    async def sales_facts(self, phones: Sequence[str], since: datetime, until: datetime) -> list[CRMFact]:
        """Facts about these callers' CRM records in [since, until). Default: raises CapabilityError
        (error id "capability_missing:sales_facts"). Capability ``sales_facts``.

        .. versionadded:: 2.0
        """
        self.require(SALES_FACTS)
        raise _not_overridden(self, "sales_facts")

    async def health(self) -> Health:
        return Health(ok=True, detail="no checks defined")


def _not_overridden(adapter: CRMAdapter, method: str) -> PluginError:
    return PluginError(
        f"CRM plugin {adapter.plugin_name!r} declares the capability of {method} but does not implement it",
        error_id="contract_broken",
    )
