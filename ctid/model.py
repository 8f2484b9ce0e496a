"""Normalized domain objects shared by the core and every plugin: events, calls, agents, tasks.

PBX plugins produce :class:`CallEvent`; the switchboard folds them into :class:`Call`,
:class:`Agent` and :class:`Task`, whose ``to_json()`` is the public JSON of the REST API and the hub.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: Namespace for deterministic ids (call ids, task ids, CRM record ids derive from it).
CTID_NAMESPACE = uuid.UUID("6f1c9f52-3b0e-4c53-9d1f-6a8f0d2c7e11")


class EventKind(enum.StrEnum):
    """What happened. Order of declaration is the tie-break order for events with equal timestamps."""

    RING = "ring"  # a leg starts ringing at an agent (or the call is created, agent unknown yet)
    ANSWER = "answer"  # a leg was answered: the call is talking with that agent
    HOLD = "hold"
    UNHOLD = "unhold"
    TRANSFER = "transfer"  # the call moved to ``target`` (agent login); ``agent`` is who transferred
    LEG_END = "leg_end"  # one leg stopped ringing / ended (group-call losers, per-leg cancels)
    END = "end"  # the whole call ended
    SUMMARY = "summary"  # authoritative after-call record (PBX history/CDR); corrects the rest
    FACTS = "facts"  # only facts about the call (campaign, cost ...): never changes its state


KIND_RANK = {kind: rank for rank, kind in enumerate(EventKind)}


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class CallState(enum.StrEnum):
    RINGING = "ringing"
    TALKING = "talking"
    HELD = "held"
    ENDED = "ended"


class Outcome(enum.StrEnum):
    ANSWERED = "answered"
    MISSED = "missed"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"


class Presence(enum.StrEnum):
    AVAILABLE = "available"
    AWAY = "away"
    DND = "dnd"
    OFFLINE = "offline"


class PresenceSource(enum.StrEnum):
    """Who set an agent's status (docs/call-model.md, "Presence and the launcher's lease")."""

    USER = "user"  # the person: panel, hub SetStatus, REST, the launcher's own status menu
    LAUNCHER = "launcher"  # the desktop launcher on its own (workstation locked, unlocked, logon)
    LEASE = "lease"  # ctid itself: the launcher's lease lapsed while the agent was available


#: What an agent becomes when its launcher's lease lapses while it is available (not routable, but
#: "away" rather than "offline": the person may still be at a desk whose launcher lost the network).
LEASE_FALLBACK = Presence.AWAY


class Capability(enum.StrEnum):
    DIAL = "dial"
    HOLD = "hold"
    TRANSFER = "transfer"
    HANGUP = "hangup"
    DND = "dnd"
    RECORDINGS = "recordings"
    HISTORY = "history"


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` suffix and millisecond precision, or None."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" -> "Z"; C, unlike strftime


@functools.lru_cache(maxsize=1 << 16)  # every event asks for its call's id, several times
def call_id_for(connector: str, pbx_call_id: str) -> str:
    """The deterministic public id of a call: the same PBX call always gets the same id."""
    return str(uuid.uuid5(CTID_NAMESPACE, f"call\x00{connector}\x00{pbx_call_id}"))


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One normalized thing a PBX said about a call.

    :param connector: the connector *instance* name from config (``connectors.<instance>``).
    :param pbx_call_id: the PBX's id of the call; all legs of one call share it.
    :param kind: what happened.
    :param key: idempotency key, unique per connector instance; a redelivered event has the same key.
    :param at: when it happened according to the PBX (UTC); ``None`` if the PBX did not say,
        in which case the core uses ``received_at``.
    :param agent_login: the PBX's login / extension of the agent concerned (mapped to an agent id
        through ``agents.<id>.pbx.<instance>`` or ``extension``).
    :param target_login: for ``transfer``: where the call went.
    :param outcome: for ``end``/``leg_end``/``summary``: what the PBX says the result was.
    :param leg_id: an id of the leg when the PBX has one (else the agent login identifies the leg).
    :param talk_seconds / wait_seconds / total_seconds / hold_seconds: durations stated by
        ``summary`` events (``hold_seconds``: the call's whole time on hold, as in a CDR).
    :param recording: a plugin-specific reference to a recording (fetched later by the plugin).
    :param facts: facts about the call the PBX states with this event (campaign, UTM, cost, rating;
        see :mod:`ctid.facts`; check them with :func:`ctid.facts.clean_facts`). Merged into
        :attr:`Call.facts`, later events winning key by key.
    :param extra: anything else worth keeping (stored with the event, not interpreted).
    """

    connector: str
    pbx_call_id: str
    kind: EventKind
    key: str
    at: datetime | None = None
    received_at: datetime = field(default_factory=utcnow)
    direction: Direction | None = None
    remote_number: str | None = None
    line_number: str | None = None
    agent_login: str | None = None
    target_login: str | None = None
    group: str | None = None
    outcome: Outcome | None = None
    leg_id: str | None = None
    wait_seconds: float | None = None
    talk_seconds: float | None = None
    total_seconds: float | None = None
    hold_seconds: float | None = None
    recording: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def when(self) -> datetime:
        return self.at or self.received_at

    @property
    def call_id(self) -> str:
        return call_id_for(self.connector, self.pbx_call_id)

    def sort_key(self) -> tuple:
        return (self.when, KIND_RANK[self.kind], self.key)

    def to_json(self) -> dict[str, Any]:
        data = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = value.astimezone(UTC).isoformat()
            elif isinstance(value, enum.Enum):
                value = value.value
            data[f.name] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallEvent:
        values = dict(data)
        for name in ("at", "received_at"):
            if values.get(name):
                values[name] = datetime.fromisoformat(values[name])
        values["kind"] = EventKind(values["kind"])
        if values.get("direction"):
            values["direction"] = Direction(values["direction"])
        if values.get("outcome"):
            values["outcome"] = Outcome(values["outcome"])
        return cls(**values)


@dataclass(slots=True)
class Call:
    """A call as ctid understands it; ``to_json`` is the public Call JSON."""

    id: str
    connector: str
    pbx_call_id: str
    direction: Direction = Direction.INBOUND
    state: CallState = CallState.RINGING
    outcome: Outcome | None = None
    remote_number: str | None = None
    line_number: str | None = None
    agent: str | None = None
    group: str | None = None
    ringing_agents: list[str] = field(default_factory=list)
    started_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    wait_seconds: float | None = None
    talk_seconds: float | None = None
    hold_seconds: float = 0.0
    recording_url: str | None = None
    contact: dict[str, Any] | None = None
    transferred_from: str | None = None
    agents: list[str] = field(default_factory=list)  # every agent who talked on the call, in order
    facts: dict[str, Any] = field(default_factory=dict)  # merged CallEvent.facts (ctid.facts)
    updated_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "connector": self.connector,
            "pbx_call_id": self.pbx_call_id,
            "direction": self.direction.value,
            "state": self.state.value,
            "outcome": self.outcome.value if self.outcome else None,
            "remote_number": self.remote_number,
            "line_number": self.line_number,
            "agent": self.agent,
            "group": self.group,
            "ringing_agents": list(self.ringing_agents),
            "agents": list(self.agents),
            "started_at": iso(self.started_at),
            "answered_at": iso(self.answered_at),
            "ended_at": iso(self.ended_at),
            "wait_seconds": self.wait_seconds,
            "talk_seconds": self.talk_seconds,
            "hold_seconds": self.hold_seconds,
            "recording_url": self.recording_url,
            "contact": self.contact,
            "transferred_from": self.transferred_from,
            "facts": dict(self.facts),
            "updated_at": iso(self.updated_at),
        }

    def participants(self) -> set[str]:
        """Agents entitled to see this call: whoever it rings, talks to, or was transferred from."""
        people = set(self.ringing_agents) | set(self.agents)
        if self.agent:
            people.add(self.agent)
        if self.transferred_from:
            people.add(self.transferred_from)
        return people


@dataclass(slots=True)
class Agent:
    """An agent from config plus live presence; ``to_json`` is the public Agent JSON."""

    id: str
    name: str
    extension: str | None = None
    groups: list[str] = field(default_factory=list)
    status: Presence = Presence.OFFLINE  # what the person chose
    status_since: datetime | None = None
    current_call: str | None = None  # id of the call the agent is talking on (busy)
    ringing_call: str | None = None
    idle_since: datetime | None = None  # end of the agent's last call, for "longest idle" routing
    crm_user: str | None = None
    status_source: PresenceSource = PresenceSource.USER  # who set ``status``
    lease_until: datetime | None = None  # the desktop launcher's presence lease, when one is held

    @property
    def busy(self) -> bool:
        return self.current_call is not None

    @property
    def free(self) -> bool:
        return self.status is Presence.AVAILABLE and not self.busy and self.ringing_call is None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "extension": self.extension,
            "groups": list(self.groups),
            "status": self.status.value,
            "status_since": iso(self.status_since),
            "busy": self.busy,
            "presence": "busy" if self.busy else self.status.value,
            "current_call": self.current_call,
            "ringing_call": self.ringing_call,
            "idle_since": iso(self.idle_since),
            "status_source": self.status_source.value,
            "lease_until": iso(self.lease_until),
        }


class TaskStatus(enum.StrEnum):
    OPEN = "open"
    DONE = "done"


@dataclass(slots=True)
class Task:
    """A callback task: one open task per caller number, fed by missed inbound calls."""

    id: str
    number: str
    status: TaskStatus = TaskStatus.OPEN
    missed_calls: list[str] = field(default_factory=list)  # call ids, oldest first
    first_missed_at: datetime | None = None
    last_missed_at: datetime | None = None
    owner: str | None = None  # agent id responsible for the callback
    group: str | None = None
    line_number: str | None = None
    contact: dict[str, Any] | None = None
    closed_by_call: str | None = None
    closed_at: datetime | None = None

    @property
    def missed_count(self) -> int:
        return len(self.missed_calls)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "status": self.status.value,
            "missed_count": self.missed_count,
            "missed_calls": list(self.missed_calls),
            "first_missed_at": iso(self.first_missed_at),
            "last_missed_at": iso(self.last_missed_at),
            "owner": self.owner,
            "group": self.group,
            "line_number": self.line_number,
            "contact": self.contact,
            "closed_by_call": self.closed_by_call,
            "closed_at": iso(self.closed_at),
        }


def task_id_for(number: str, first_missed_call: str) -> str:
    return str(uuid.uuid5(CTID_NAMESPACE, f"task\x00{number}\x00{first_missed_call}"))


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def call_from_json(data: dict[str, Any]) -> Call:
    """Rebuild a :class:`Call` from its public JSON (as stored and published)."""
    return Call(
        id=data["id"],
        connector=data["connector"],
        pbx_call_id=data["pbx_call_id"],
        direction=Direction(data.get("direction") or "inbound"),
        state=CallState(data.get("state") or "ringing"),
        outcome=Outcome(data["outcome"]) if data.get("outcome") else None,
        remote_number=data.get("remote_number"),
        line_number=data.get("line_number"),
        agent=data.get("agent"),
        group=data.get("group"),
        ringing_agents=list(data.get("ringing_agents") or []),
        started_at=_dt(data.get("started_at")),
        answered_at=_dt(data.get("answered_at")),
        ended_at=_dt(data.get("ended_at")),
        wait_seconds=data.get("wait_seconds"),
        talk_seconds=data.get("talk_seconds"),
        hold_seconds=data.get("hold_seconds") or 0.0,
        recording_url=data.get("recording_url"),
        contact=data.get("contact"),
        transferred_from=data.get("transferred_from"),
        agents=list(data.get("agents") or []),
        facts=dict(data.get("facts") or {}),
        updated_at=_dt(data.get("updated_at")),
    )


def task_from_json(data: dict[str, Any]) -> Task:
    """Rebuild a :class:`Task` from its public JSON."""
    return Task(
        id=data["id"],
        number=data["number"],
        status=TaskStatus(data.get("status") or "open"),
        missed_calls=list(data.get("missed_calls") or []),
        first_missed_at=_dt(data.get("first_missed_at")),
        last_missed_at=_dt(data.get("last_missed_at")),
        owner=data.get("owner"),
        group=data.get("group"),
        line_number=data.get("line_number"),
        contact=data.get("contact"),
        closed_by_call=data.get("closed_by_call"),
        closed_at=_dt(data.get("closed_at")),
    )
