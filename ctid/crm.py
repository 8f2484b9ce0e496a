"""The CRM adapter contract: what a CRM plugin's adapter class provides.

A CRM plugin registers adapter *classes* through ``ctid_register_crms``; the ``crm.plugin`` key of
the configuration picks one. Writes (``log_call``, tasks, recordings) run from ctid's outbox worker
and must be idempotent: the worker retries them after failures, so the same call may be logged more
than once and must still produce one record. ``lookup`` runs on the screen-pop path with a short
time budget and a cache in front of it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ctid.connector import Health

if TYPE_CHECKING:
    from ctid.model import Agent, Call, Task
    from ctid.services import Services


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


class CRMAdapter:
    """Base class of CRM adapters."""

    plugin_name: ClassVar[str] = ""
    Config: ClassVar[type[CRMConfig]] = CRMConfig

    def __init__(self, config: CRMConfig, services: Services):
        self.config = config
        self.services = services

    async def aclose(self) -> None:
        """Release clients."""

    async def lookup(self, phone: str) -> list[ContactMatch]:
        """Records whose phone matches ``phone`` (E.164). Empty list when unknown."""
        return []

    def new_contact_url(self, phone: str) -> str | None:
        """The URL of a new-contact form prefilled with ``phone``, if the CRM has one."""
        return None

    async def log_call(self, call: Call, agent: Agent | None) -> str | None:
        """Create or update the activity for an ended call, idempotently. Return the CRM record id."""
        return None

    async def create_callback_task(self, task: Task, owner: Agent | None) -> str | None:
        """Create or update the open callback task for ``task.number``. Return the CRM record id."""
        return None

    async def close_callback_task(self, task: Task) -> None:
        """Mark the callback task done (the caller was reached)."""

    async def attach_recording(self, call: Call, url: str) -> None:
        """Attach ctid's recording link to the call's activity."""

    async def health(self) -> Health:
        return Health(ok=True, detail="no checks defined")
