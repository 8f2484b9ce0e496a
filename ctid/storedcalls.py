"""Which calls the store may hold that memory does not, so that the first event of a brand-new
call reaches the screen pop without reading the database first.

The switchboard holds every call this process stored until, hours after it ended, the call is
evicted. A call that is not in memory may still be in the store: written before this process
started, or evicted since. Reading the store for every unknown call id put a ``SELECT`` (a worker
thread, and on SQLite a wait behind the writer) in front of every new call's screen pop.

:class:`StoredCalls` keeps the ids (and ``updated_at``) of the calls the store holds that were
written at or after :attr:`StoredCalls.horizon` and may be missing from memory: those written
before this process started (loaded at start) and those evicted since. Invariant: every stored call
whose row was written at or after ``horizon`` is in memory or in this index. So an unknown call id
missing here, with no event that happened before ``horizon``, cannot be in the store: its earlier
events would have been received, and its row written, after ``horizon``. The assumption this
rests on: a PBX does not report something happening to a call after ``window`` of silence about
it (one day by default; the housekeeping ends a call silent for six hours). A late correction
stamped with the call's own time (history, reconciliation) is older than ``horizon`` and is read.

With a backplane (several instances) other instances write calls too, and tell this one about
every event they commit (``ctid.sync.InstanceSync.sync_in``: those calls are then in memory). The
index holds only while no such message was missed: the daemon loads it once the backplane confirms
the subscription, and distrusts it (every unknown call is read again) as soon as the backplane's
``continuity`` token changes, until it is loaded again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from ctid.model import Call, CallEvent

WINDOW = timedelta(days=1)


class StoredCalls:
    """Stored calls possibly missing from memory, written at or after :attr:`horizon`."""

    def __init__(self, window: timedelta = WINDOW):
        self.window = window
        self.horizon: datetime | None = None  # None: nothing is known, every unknown call is read
        self._ids: dict[str, datetime] = {}  # call id -> updated_at

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, call_id: str) -> bool:
        return call_id in self._ids

    def load(self, horizon: datetime, rows: dict[str, datetime]) -> None:
        """Start from the store's calls written at or after ``horizon`` (``Store.call_ids_updated_since``);
        calls already noted (evicted while the rows were read) are kept."""
        kept = {call_id: updated for call_id, updated in self._ids.items() if updated >= horizon}
        self.horizon = horizon
        self._ids = {**rows, **kept}

    def distrust(self) -> None:
        """From now on every unknown call may be stored (until the next :meth:`load`): another
        instance may have written calls this process did not hear of."""
        self.horizon = None

    @property
    def trusted(self) -> bool:
        return self.horizon is not None

    def forgotten(self, calls: Iterable[Call]) -> None:
        """Calls evicted from memory (they stay in the store)."""
        for call in calls:
            if call.updated_at is not None and (self.horizon is None or call.updated_at >= self.horizon):
                self._ids[call.id] = call.updated_at

    def prune(self, now: datetime) -> int:
        """Move the horizon to ``now - window`` and drop what was written before it; how many went."""
        if self.horizon is None:
            return 0
        horizon = now - self.window
        if horizon <= self.horizon:
            return 0
        self.horizon = horizon
        old = [call_id for call_id, updated in self._ids.items() if updated < horizon]
        for call_id in old:
            del self._ids[call_id]
        return len(old)

    def may_hold(self, call_id: str, events: Iterable[CallEvent]) -> bool:
        """Whether the store may hold earlier events of ``call_id`` (a call not in memory), given
        the new ``events`` of that call. False only when it certainly holds none."""
        if self.horizon is None or call_id in self._ids:
            return True
        horizon = self.horizon
        return any(event.when < horizon for event in events)
