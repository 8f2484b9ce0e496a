"""The switchboard: the deterministic reducer from accepted CallEvents to calls, agents and tasks.

Pure state, no I/O and no clock: time comes only from event timestamps and explicit ``at`` /
``ended_before`` arguments. Each call's state is a function of the *set* of its events
(:func:`ctid.callfold.fold_call`), each number's callback tasks a function of its ended calls
(:func:`ctid.callback_tasks.derive_tasks`), and each agent's busy/ringing/idle state a function of
its calls; so redelivered, replayed or reordered events give the same result. Every mutating method
returns :class:`Changes`, which the daemon persists, publishes to the hub and hands to the CRM sync.
The rules are documented in ``docs/call-model.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ctid.callback_tasks import CallRecord, WalkKey, copy_task, derive_tasks, void_task
from ctid.callfold import fold_call
from ctid.errors import ConfigError, NotFoundError, RequestError
from ctid.model import (
    LEASE_FALLBACK,
    Agent,
    Call,
    CallEvent,
    CallState,
    Direction,
    EventKind,
    Presence,
    PresenceSource,
    Task,
    TaskStatus,
)
from ctid.services import Directory

__all__ = ["Changes", "Switchboard", "launcher_may_set"]

_ACTIVE = (CallState.TALKING, CallState.HELD)


def _upsert(items: list[Any], item: Any, key: Callable[[Any], Any]) -> None:
    """Replace the entry with the same key in place (keeping its position), else append."""
    for index, existing in enumerate(items):
        if key(existing) == key(item):
            items[index] = item
            return
    items.append(item)


def _talkers(call: Call) -> set[str]:
    """Agents whose idle time an ended call resets: who talked on it, or placed it (outbound)."""
    talkers = set(call.agents)
    if call.direction is Direction.OUTBOUND and call.agent:
        talkers.add(call.agent)
    return talkers


def _recency(call: Call) -> tuple:
    return (call.started_at, call.id)


_OUTCOME_FIELDS = tuple(f.name for f in dataclasses.fields(Call) if f.name not in ("updated_at", "contact"))


def _what_happened(call: Call) -> tuple:
    """A call's fields without those that do not describe what happened on it (for ``ended``)."""
    return tuple(getattr(call, name) for name in _OUTCOME_FIELDS)


def _directions(values: Iterable[str | Direction]) -> frozenset[Direction]:
    chosen = set()
    for index, value in enumerate(values):
        try:
            chosen.add(Direction(value))
        except ValueError:
            choices = ", ".join(d.value for d in Direction)
            raise ConfigError(
                f"unknown direction {value!r} (one of: {choices})", path=f"callbacks.directions.{index}"
            ) from None
    return frozenset(chosen)


def _presence(value: Presence | str) -> Presence:
    try:
        return Presence(value)
    except ValueError:
        choices = ", ".join(p.value for p in Presence)
        raise RequestError(
            f"unknown presence {value!r} (one of: {choices})", error_id="bad_presence"
        ) from None


@dataclass
class Changes:
    """What one switchboard operation changed; empty (falsy) when nothing did.

    :ivar events: newly accepted (non-duplicate) events, in input order.
    :ivar calls: calls whose public JSON changed, each once, in their latest state.
    :ivar ended: calls that became ended, or whose ended outcome, durations, agents or recording
        changed: what the CRM log must (re)write.
    :ivar agents: ``(agent, previous presence)`` for agents whose ``to_json()`` changed; the previous
        presence is ``Agent.to_json()["presence"]`` before the first change.
    :ivar tasks: callback tasks created, updated or closed, latest state. A task that existed only
        transiently (a "miss" later corrected) is reported *void*: status ``done`` with no missed
        calls and no closing call (:func:`ctid.callback_tasks.is_void`); consumers delete it.
    """

    events: list[CallEvent] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    ended: list[Call] = field(default_factory=list)
    agents: list[tuple[Agent, str | None]] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.events or self.calls or self.ended or self.agents or self.tasks)

    def add_agent(self, agent: Agent, previous: str | None) -> None:
        for index, (existing, first_previous) in enumerate(self.agents):
            if existing.id == agent.id:
                self.agents[index] = (agent, first_previous)
                return
        self.agents.append((agent, previous))

    def merge(self, other: Changes) -> Changes:
        """Fold ``other`` (a later operation) into this one, in place; returns self."""
        self.events.extend(other.events)
        for call in other.calls:
            _upsert(self.calls, call, lambda c: c.id)
        for call in other.ended:
            _upsert(self.ended, call, lambda c: c.id)
        for agent, previous in other.agents:
            self.add_agent(agent, previous)
        for task in other.tasks:
            _upsert(self.tasks, task, lambda t: t.id)
        return self


@dataclass
class _Base:
    """A number's history the switchboard no longer keeps call by call: its open task and horizon."""

    task: Task | None = None
    horizon: WalkKey | None = None


class Switchboard:
    """The only writer of call, agent and task state. Not thread-safe: one owner calls it.

    :param directory: the agent directory (login mapping, agent list).
    :param default_region: region for reading phone numbers without a country code.
    :param callback_directions: directions whose missed calls create callback tasks.
    :param recording_url: maps a call id to ctid's public recording URL once an event mentions a
        recording (``Services.recording_url``); without it the PBX's own reference is shown.
    """

    def __init__(
        self,
        directory: Directory,
        *,
        default_region: str = "RU",
        callback_directions: Iterable[str | Direction] = ("inbound",),
        recording_url: Callable[[str], str] | None = None,
    ):
        self.directory = directory
        self.default_region = default_region
        self.callback_directions = _directions(callback_directions)
        self.recording_url = recording_url
        self.calls: dict[str, Call] = {}
        self.agents: dict[str, Agent] = {agent.id: agent for agent in directory.agents()}
        self.tasks: dict[str, Task] = {}
        self._events: dict[str, dict[tuple[str, str], CallEvent]] = {}
        self._records: dict[str, dict[str, CallRecord]] = {}  # number -> call id -> record
        self._record_of: dict[str, CallRecord] = {}  # call id -> its record
        self._detached: set[str] = set()  # calls restored already ended, outside the task walk
        self._bases: dict[str, _Base] = {}  # number -> forgotten history
        self._derived: dict[str, list[str]] = {}  # number -> ids of the tasks its walk produced
        self._loose_tasks: set[str] = set()  # restored done tasks outside any walk
        self._agent_live: dict[str, set[str]] = {}  # agent id -> its calls not ended yet
        self._agent_ends: dict[str, dict[str, datetime]] = {}  # agent id -> call id -> end of its call
        self._idle_floor: dict[str, datetime] = {}  # agent id -> latest end of a forgotten call

    # -- events ----------------------------------------------------------------------------------
    def apply(self, events: Iterable[CallEvent]) -> Changes:
        """Accept new events; duplicates (same ``(connector, key)``) are ignored.

        A call not in memory starts from these events alone: when the store may hold earlier events
        of the call, call :meth:`restore_call` first (see :meth:`knows_call`).
        """
        changes = Changes()
        touched: dict[str, None] = {}
        for event in events:
            call_id = event.call_id
            bucket = self._events.setdefault(call_id, {})
            ident = (event.connector, event.key)
            if ident in bucket:
                continue
            bucket[ident] = event
            changes.events.append(event)
            touched[call_id] = None
        if touched:
            self._refresh(list(touched), changes)
        return changes

    def retract(self, events: Iterable[CallEvent]) -> Changes:
        """Take back applied events that could not be stored (their commit failed), so memory
        matches the database again and a redelivery of the same events is accepted as new.

        A call left with no events is forgotten (its agents and its number's tasks re-derived);
        the others are re-folded. Returns what changed, to publish the corrected state.
        """
        changes = Changes()
        touched: dict[str, None] = {}
        for event in events:
            bucket = self._events.get(event.call_id)
            if bucket is not None and bucket.pop((event.connector, event.key), None) is not None:
                touched[event.call_id] = None
        numbers: set[str] = set()
        agent_ids: set[str] = set()
        refold = []
        for call_id in touched:
            if self._events.get(call_id):
                refold.append(call_id)
                continue
            self._events.pop(call_id, None)
            self._detached.discard(call_id)
            call = self.calls.pop(call_id, None)
            if call is None:
                continue
            self._unlink(call)
            agent_ids |= call.participants()
            record = self._record_of.pop(call_id, None)
            if record is not None:
                self._records.get(record.number, {}).pop(call_id, None)
                numbers.add(record.number)
        if refold:
            self._refresh(refold, changes)
        for number in sorted(numbers):
            self._derive(number, changes)
        for agent_id in sorted(agent_ids):
            self._refresh_agent(agent_id, changes)
        return changes

    def knows_call(self, call_id: str) -> bool:
        return call_id in self.calls

    def restore_call(self, events: list[CallEvent], *, contact: dict[str, Any] | None = None) -> None:
        """Rebuild a call from its stored events, silently (nothing is reported).

        A call restored already ended takes part in callback tasks only if :meth:`restore_tasks`
        listed it: otherwise its effect is assumed to be in the stored tasks already.
        """
        if not events:
            return
        call_ids = {event.call_id for event in events}
        if len(call_ids) != 1:
            raise ValueError("restore_call takes the events of exactly one call")
        (call_id,) = call_ids
        bucket = self._events.setdefault(call_id, {})
        for event in events:
            bucket.setdefault((event.connector, event.key), event)
        if call_id not in self._record_of and call_id not in self.calls:
            folded = self._fold(call_id)
            if folded is not None and folded.state is CallState.ENDED:
                self._detached.add(call_id)
        self._refresh([call_id], None)
        if contact is not None:
            self.calls[call_id].contact = contact

    def _fold(self, call_id: str) -> Call | None:
        return fold_call(
            call_id,
            self._events[call_id].values(),
            resolve=self.directory.agent_for_login,
            region=self.default_region,
            recording_url=self.recording_url,
        )

    def _refresh(self, call_ids: list[str], changes: Changes | None) -> None:
        """Re-fold ``call_ids``; then re-derive the tasks and agents they touch."""
        numbers: set[str] = set()
        agent_ids: set[str] = set()
        for call_id in call_ids:
            old = self.calls.get(call_id)
            call = self._fold(call_id)
            if call is None:
                continue
            if old is not None:
                call.contact = old.contact
            self.calls[call_id] = call
            if changes is not None:
                if old is None or old != call:  # dataclass equality: cheaper than comparing JSON
                    _upsert(changes.calls, call, lambda c: c.id)
                if call.state is CallState.ENDED and (
                    old is None or _what_happened(old) != _what_happened(call)
                ):
                    _upsert(changes.ended, call, lambda c: c.id)
            if old is not None:
                self._unlink(old)
            self._link(call)
            agent_ids |= call.participants() | (old.participants() if old is not None else set())
            numbers |= self._set_record(call)
        for number in sorted(numbers):
            self._derive(number, changes)
        for agent_id in sorted(agent_ids):
            self._refresh_agent(agent_id, changes)

    # -- callback tasks --------------------------------------------------------------------------
    def _set_record(self, call: Call) -> set[str]:
        """Update the call's task record; the numbers whose tasks must be re-derived."""
        old = self._record_of.get(call.id)
        new = None if call.id in self._detached else CallRecord.of(call)
        if old == new:
            return set()
        if old is not None:
            self._records[old.number].pop(call.id, None)
            del self._record_of[call.id]
        if new is not None:
            self._records.setdefault(new.number, {})[call.id] = new
            self._record_of[call.id] = new
        return {record.number for record in (old, new) if record is not None}

    def _derive(self, number: str, changes: Changes | None) -> None:
        base = self._bases.get(number) or _Base()
        records = self._records.get(number, {}).values()
        derived = derive_tasks(records, self.callback_directions, base=base.task, horizon=base.horizon)
        self._install(number, derived, changes)

    def _install(self, number: str, derived: list[Task], changes: Changes | None) -> None:
        old_ids = self._derived.get(number, [])
        new_ids = [task.id for task in derived]
        for task in derived:
            previous = self.tasks.get(task.id)
            if previous is not None:
                task.contact = previous.contact
            self.tasks[task.id] = task
            if changes is not None and (previous is None or previous != task):
                _upsert(changes.tasks, task, lambda t: t.id)
        for task_id in old_ids:
            if task_id not in new_ids:
                gone = self.tasks.pop(task_id, None)
                if gone is not None and changes is not None:
                    _upsert(changes.tasks, void_task(gone), lambda t: t.id)
        if new_ids:
            self._derived[number] = new_ids
        else:
            self._derived.pop(number, None)

    def restore_tasks(self, tasks: list[Task], calls: list[Call]) -> None:
        """Warm start from the store (call once, before :meth:`apply`); silent.

        :param tasks: stored tasks: every open task, plus any task that involves one of ``calls``.
        :param calls: recently ended calls (those that *started* at or after some cutoff, for example
            24 hours ago): tasks touching them are re-derived exactly from now on, so late events
            for them (reconciliation SUMMARYs) correct the tasks as they would have live.
        """
        window: dict[str, list[CallRecord]] = {}
        for call in calls:
            self._raise_idle_floor(call)
            record = CallRecord.of(call)
            if record is not None and record.call_id not in self._record_of:
                window.setdefault(record.number, []).append(record)
        by_number: dict[str, list[Task]] = {}
        for task in tasks:
            by_number.setdefault(task.number, []).append(task)
        for number in sorted(set(window) | set(by_number)):
            records = window.get(number, [])
            inside = {record.call_id for record in records}
            base = _Base()
            known: list[datetime] = []
            for task in sorted(
                by_number.get(number, []), key=lambda t: (t.first_missed_at is None, t.first_missed_at, t.id)
            ):
                involved = task.closed_by_call in inside or any(c in inside for c in task.missed_calls)
                before = [call_id for call_id in task.missed_calls if call_id not in inside]
                if not involved:
                    known.extend(filter(None, (task.last_missed_at,)))
                    if task.status is TaskStatus.OPEN:
                        base.task = copy_task(task)
                    else:
                        self.tasks[task.id] = task
                        self._loose_tasks.add(task.id)
                elif before:  # opened before the window and still open when it began
                    known.extend(filter(None, (task.first_missed_at,)))
                    base.task = dataclasses.replace(
                        task, missed_calls=before, status=TaskStatus.OPEN, closed_by_call=None, closed_at=None
                    )
            if known:
                base.horizon = (max(known), "")
            if base.task is not None or base.horizon is not None:
                self._bases[number] = base
            for record in records:
                self._records.setdefault(number, {})[record.call_id] = record
                self._record_of[record.call_id] = record
            self._derive(number, None)

    # -- agents ----------------------------------------------------------------------------------
    def _link(self, call: Call) -> None:
        """Index the call under its agents: live calls for busy/ringing, ended ones for idle_since."""
        if call.state is not CallState.ENDED:
            for agent_id in call.participants():
                self._agent_live.setdefault(agent_id, set()).add(call.id)
        elif call.ended_at is not None:
            for agent_id in _talkers(call):
                self._agent_ends.setdefault(agent_id, {})[call.id] = call.ended_at

    def _unlink(self, call: Call) -> None:
        for agent_id in call.participants() | _talkers(call):
            live = self._agent_live.get(agent_id)
            if live is not None:
                live.discard(call.id)
                if not live:
                    del self._agent_live[agent_id]
            ends = self._agent_ends.get(agent_id)
            if ends is not None:
                ends.pop(call.id, None)
                if not ends:
                    del self._agent_ends[agent_id]

    def _raise_idle_floor(self, call: Call) -> None:
        if call.state is not CallState.ENDED or call.ended_at is None:
            return
        for agent_id in _talkers(call):
            floor = self._idle_floor.get(agent_id)
            if floor is None or call.ended_at > floor:
                self._idle_floor[agent_id] = call.ended_at

    def _refresh_agent(self, agent_id: str, changes: Changes | None) -> None:
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        before = (agent.current_call, agent.ringing_call, agent.idle_since)
        presence = "busy" if agent.busy else agent.status.value  # Agent.to_json()["presence"]
        live = [self.calls[c] for c in self._agent_live.get(agent_id, ()) if c in self.calls]
        talking = [c for c in live if c.state in _ACTIVE and c.agent == agent_id]
        ringing = [c for c in live if c.state is CallState.RINGING and agent_id in c.ringing_agents]
        agent.current_call = max(talking, key=_recency).id if talking else None
        agent.ringing_call = max(ringing, key=_recency).id if ringing else None
        ends = list(self._agent_ends.get(agent_id, {}).values())
        if agent_id in self._idle_floor:
            ends.append(self._idle_floor[agent_id])
        agent.idle_since = max(ends) if ends else None
        if changes is not None and (agent.current_call, agent.ringing_call, agent.idle_since) != before:
            changes.add_agent(agent, presence)

    def _agent(self, agent_id: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise NotFoundError(f"unknown agent {agent_id!r}", error_id="agent_not_found")
        return agent

    def set_status(
        self,
        agent_id: str,
        status: Presence | str,
        at: datetime,
        source: PresenceSource | str = PresenceSource.USER,
    ) -> Changes:
        """The agent's presence is set (by the person unless ``source`` says otherwise); raises
        NotFoundError (``agent_not_found``) for unknown ids. Precedence is the caller's business
        (:func:`launcher_may_set`)."""
        agent = self._agent(agent_id)
        status, source = _presence(status), PresenceSource(source)
        changes = Changes()
        if agent.status is not status or agent.status_source is not source:
            before = agent.to_json()
            if agent.status is not status:
                agent.status_since = at
            agent.status, agent.status_source = status, source
            changes.add_agent(agent, before["presence"])
        return changes

    # -- the launcher's presence lease (docs/call-model.md) ------------------------------------
    def set_lease(self, agent_id: str, until: datetime | None) -> Changes:
        """Start, renew (``until`` later) or end (``None``) the agent's launcher lease. Only the
        start and the end are changes (published); a renewal changes nothing anyone watches."""
        agent = self._agent(agent_id)
        changes = Changes()
        held = agent.lease_until is not None
        if held != (until is not None):
            changes.add_agent(agent, agent.to_json()["presence"])
        agent.lease_until = until
        return changes

    def next_lease_expiry(self) -> datetime | None:
        """When the earliest held lease lapses (None when no launcher holds one)."""
        return min((a.lease_until for a in self.agents.values() if a.lease_until is not None), default=None)

    def expire_leases(self, now: datetime) -> Changes:
        """End every lease due by ``now``; an agent left available falls back to ``LEASE_FALLBACK``
        (source ``lease``): a dead or unreachable launcher must not leave its agent routable."""
        changes = Changes()
        for agent in self.agents.values():
            if agent.lease_until is None or agent.lease_until > now:
                continue
            previous = agent.to_json()["presence"]
            agent.lease_until = None
            if agent.status is Presence.AVAILABLE:
                agent.status, agent.status_since, agent.status_source = LEASE_FALLBACK, now, PresenceSource.LEASE
            changes.add_agent(agent, previous)
        return changes

    def restore_lease(self, agent_id: str, source: PresenceSource | str, lease_until: datetime | None) -> None:
        """Warm start: who set the stored status and the lease held when ctid stopped; silent."""
        agent = self._agent(agent_id)
        agent.status_source, agent.lease_until = PresenceSource(source), lease_until

    def restore_presence(
        self,
        agent_id: str,
        status: Presence | str,
        since: datetime | None,
        idle_since: datetime | None = None,
    ) -> None:
        """Warm start: the agent's stored presence and end of last call; silent."""
        agent = self._agent(agent_id)
        agent.status, agent.status_since = _presence(status), since
        if idle_since is not None:
            floor = self._idle_floor.get(agent_id)
            self._idle_floor[agent_id] = idle_since if floor is None else max(floor, idle_since)
        self._refresh_agent(agent_id, None)

    def free_agent(self, group: str | None = None, exclude: Iterable[str] = frozenset()) -> Agent | None:
        """The longest-idle free agent (available, not busy, not ringing) of ``group`` (any if None).

        Longest idle: an agent who has had no call yet comes first, then the earliest ``idle_since``;
        ties go to the smaller agent id.
        """
        excluded = set(exclude)
        candidates = [
            agent
            for agent in self.agents.values()
            if agent.free and agent.id not in excluded and (group is None or group in agent.groups)
        ]
        if not candidates:
            return None
        return min(
            candidates,
            key=lambda a: (a.idle_since is not None, a.idle_since.timestamp() if a.idle_since else 0.0, a.id),
        )

    # -- memory ----------------------------------------------------------------------------------
    def stale_call_events(
        self,
        now: datetime,
        *,
        ringing: timedelta = timedelta(minutes=15),
        active: timedelta = timedelta(hours=6),
    ) -> list[CallEvent]:
        """END events for calls the PBX seems to have forgotten to end (a lost webhook).

        A call still ringing with no event for ``ringing``, or talking/held with no event for
        ``active``, gets an END at the time of its last event (the last thing known about it), key
        ``ctid:stale:<call id>`` and ``extra["stale_at"]``. Submit them like any PBX event, so they
        are stored and the call stays a function of its events; a later SUMMARY still corrects it.
        Nothing is changed here.
        """
        out = []
        for call_id, call in self.calls.items():
            if call.state is CallState.ENDED:
                continue
            last = max(event.when for event in self._events[call_id].values() if event.kind is not EventKind.FACTS)
            limit = ringing if call.state is CallState.RINGING else active
            if now - last < limit:
                continue
            out.append(
                CallEvent(
                    connector=call.connector,
                    pbx_call_id=call.pbx_call_id,
                    kind=EventKind.END,
                    key=f"ctid:stale:{call_id}",
                    at=last,
                    received_at=now,
                    extra={"stale_at": now.isoformat()},
                )
            )
        return out

    def evict(self, ended_before: datetime) -> list[Call]:
        """Forget calls that ended before ``ended_before``; returns the calls forgotten.

        Their effect on callback tasks is folded into each number's base (open task + horizon), and
        their agents' ``idle_since`` into a floor, so later calls are handled as if nothing was
        forgotten. Done tasks that no remaining call can change are dropped from :attr:`tasks`.
        """
        gone = [
            call
            for call in self.calls.values()
            if call.state is CallState.ENDED and call.ended_at is not None and call.ended_at < ended_before
        ]
        for call in gone:
            self._raise_idle_floor(call)
            del self.calls[call.id]
            self._events.pop(call.id, None)
            self._detached.discard(call.id)
            self._unlink(call)
        for number in sorted(self._records):
            self._fold_history(number, ended_before)
        for task_id in sorted(self._loose_tasks):
            task = self.tasks.get(task_id)
            if task is None or task.closed_at is None or task.closed_at < ended_before:
                self.tasks.pop(task_id, None)
                self._loose_tasks.discard(task_id)
        return gone

    def _fold_history(self, number: str, ended_before: datetime) -> None:
        records = sorted(self._records[number].values(), key=CallRecord.walk_key)
        prefix: list[CallRecord] = []
        for record in records:
            if record.ended_at >= ended_before or record.call_id in self.calls:
                break
            prefix.append(record)
        if not prefix:
            return
        base = self._bases.get(number) or _Base()
        folded = derive_tasks(prefix, self.callback_directions, base=base.task, horizon=base.horizon)
        last = folded[-1] if folded and folded[-1].status is TaskStatus.OPEN else None
        base = _Base(task=copy_task(last) if last is not None else None, horizon=prefix[-1].walk_key())
        for record in prefix:
            del self._records[number][record.call_id]
            del self._record_of[record.call_id]
        rest = self._records[number].values()
        derived = derive_tasks(rest, self.callback_directions, base=base.task, horizon=base.horizon)
        kept = {task.id for task in derived}
        for task_id in self._derived.get(number, []):
            if task_id not in kept:
                self.tasks.pop(task_id, None)  # final: done and beyond the reach of remaining calls
        self._derived[number] = [task.id for task in derived]
        if not self._derived[number]:
            del self._derived[number]
        if not self._records[number]:
            del self._records[number]
        if base.task is None and number not in self._records:
            self._bases.pop(number, None)
        else:
            self._bases[number] = base


def launcher_may_set(agent: Agent) -> bool:
    """Whether the launcher may change ``agent``'s status on its own: a person's choice beats the
    launcher's, so an away or DND set by hand stays until the person changes it (an "offline" does
    not: the launcher starting at logon means the person is signing in)."""
    return not (agent.status_source is PresenceSource.USER and agent.status in (Presence.AWAY, Presence.DND))
