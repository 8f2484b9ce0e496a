"""State sync between ctid instances over the hub backplane, and keeping the stored-calls index trusted.

After each commit an instance publishes what it accepted (events, presence, launcher leases) on
``ctid:sync``; the others fold it into memory, so snapshots, "first free agent" routing and
``/api/agents`` match everywhere (docs/architecture.md, "Several instances").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import trio

from ctid.errors import CtidError, StoreError
from ctid.hub.backplane import sender_prefix
from ctid.model import CallEvent, utcnow
from ctid.storedcalls import StoredCalls
from ctid.switchboard import Switchboard

log = logging.getLogger("ctid")

SYNC_CHANNEL = "ctid:sync"
SYNC_BUFFER = 100_000  # messages (each the events of one commit, ~1 KiB)


class SyncedEvents(Protocol):
    """Where the events another instance committed go (ctid/pipeline.py)."""

    async def apply_synced(self, events: list[CallEvent]) -> None: ...


class CallIdsStore(Protocol):
    async def call_ids_updated_since(self, horizon: datetime) -> dict[str, datetime]: ...


class InstanceSync:
    """This instance's side of ``ctid:sync``: publishing its commits, applying the others'."""

    SYNC_CHANNEL = SYNC_CHANNEL
    SYNC_BUFFER = SYNC_BUFFER

    def __init__(self, *, instance_id: str, switchboard: Switchboard, store: CallIdsStore,
                 stored_calls: StoredCalls, lease_changed: Callable[[], None]):
        self.instance_id = instance_id
        self.switchboard = switchboard
        self.store = store
        self.stored_calls = stored_calls  # stored calls memory may lack (read before their events)
        self.stored_token: int | None = None  # backplane continuity when stored_calls was loaded
        self.lease_changed = lease_changed  # wakes the launcher-lease expiry timer
        self.backplane = None  # the hub's, set once the hub exists (Daemon.open)
        self.events: SyncedEvents | None = None  # the pipeline, set by the daemon

    @property
    def active(self) -> bool:
        """Whether other instances may share this one's state (a backplane other than memory)."""
        return self.backplane is not None and self.backplane.kind != "memory"

    async def publish(self, message: dict[str, Any]) -> None:
        """Tell other instances (through the backplane) what this one committed, so that their
        in-memory state (snapshot, free agents, presence) matches. Published after the commit."""
        if not self.active:
            return
        data = json.dumps({"o": self.instance_id, **message}, separators=(",", ":"), default=str)
        await self.backplane.publish(self.SYNC_CHANNEL, data.encode())

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        # A lost sync message leaves this instance's state behind the store (and distrusts the
        # stored-calls index): keep a burst's worth while a restore read holds the loop up.
        async with self.backplane.subscribe(self.SYNC_CHANNEL, buffer=self.SYNC_BUFFER) as messages:
            task_status.started()
            own = sender_prefix(self.instance_id)  # how publish's messages begin
            async for data in messages:
                if data.startswith(own):
                    continue  # this instance's own message, echoed by the backplane
                try:
                    message = json.loads(data)
                    if message.get("o") == self.instance_id:
                        continue
                    await self.sync_in(message)
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("ignoring a malformed sync message: %s", exc)
                except CtidError as exc:
                    log.warning("could not apply a sync message: %s", exc)
                except Exception:  # one bad message from another instance must not end this one
                    log.exception("could not apply a sync message")

    async def sync_in(self, message: dict[str, Any]) -> None:
        """Apply one message of another instance: its events, presence changes and leases."""
        from ctid.model import Presence

        events = [CallEvent.from_json(e) for e in message.get("events", ())]
        await self.events.apply_synced(events)
        for agent_id, status, since, *lease in message.get("presence", ()):
            if agent_id in self.switchboard.agents:
                source = lease[0] if lease else "user"
                self.switchboard.set_status(agent_id, Presence(status), datetime.fromisoformat(since), source)
                if lease:
                    self._sync_lease(agent_id, lease[1])
        for agent_id, until in message.get("leases", ()):
            if agent_id in self.switchboard.agents:
                self._sync_lease(agent_id, until)

    def _sync_lease(self, agent_id: str, until: str | None) -> None:
        self.switchboard.set_lease(agent_id, datetime.fromisoformat(until) if until else None)
        self.lease_changed()

    # -- the stored-calls index (ctid/storedcalls.py) --------------------------------------------
    def may_be_stored(self, call_id: str, events: list[CallEvent]) -> bool:
        """Whether the store may hold earlier events of a call memory does not know (storedcalls.py)."""
        if self.active and self.backplane.continuity(self.SYNC_CHANNEL) != self.stored_token:
            self.stored_calls.distrust()  # a sync message may have been missed: read every unknown call
            self.stored_token = None
        return self.stored_calls.may_hold(call_id, events)

    async def keep_stored_calls(self, poll: float = 0.25, spacing: float = 5.0) -> None:
        """With a backplane: load the stored-calls index once the sync subscription is confirmed, and
        again after every gap in it (``Backplane.continuity``). Until then unknown calls are read.
        Loaded after subscribing, so a call another instance commits is in the rows read or arrives
        as a sync message. Loads are ``spacing`` seconds apart at least (a flapping connection or a
        failing database is not hammered); a failure is logged once while it lasts."""
        next_load = trio.current_time()
        failing = False
        while True:
            token = self.backplane.continuity(self.SYNC_CHANNEL)
            stale = token is not None and (token != self.stored_token or not self.stored_calls.trusted)
            if stale and trio.current_time() >= next_load:
                next_load = trio.current_time() + spacing
                horizon = utcnow() - self.stored_calls.window
                try:
                    rows = await self.store.call_ids_updated_since(horizon)
                except StoreError as exc:
                    log.log(logging.DEBUG if failing else logging.WARNING,
                            "could not load the stored-calls index (unknown calls are read meanwhile): %s", exc)
                    failing = True
                else:
                    failing = False
                    if self.backplane.continuity(self.SYNC_CHANNEL) == token:
                        self.stored_calls.load(horizon, rows)
                        self.stored_token = token
                        continue
            await trio.sleep(poll)
