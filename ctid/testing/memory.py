"""In-memory stand-ins for the core services a plugin's unit tests hand to its connector or adapter.

- :class:`MemoryStorage`: a :class:`ctid.services.PluginStorage` in a dict (``data[(kind, key)]``,
  each value copied on ``put`` as the database would), so tests can look at what the plugin kept.
- :class:`MemorySink`: a :class:`ctid.services.EventSink` that keeps :attr:`MemorySink.events` and,
  like the core's store, accepts each event key once (``submit`` returns how many were new).

Give them to :class:`ctid.services.Services`::

    Services(directory=..., storage_factory=lambda plugin: storage, events=sink)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ctid.model import CallEvent


class MemoryStorage:
    """A plugin's key-value records in memory, addressed by ``(kind, key)``."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], dict[str, Any]] = {}

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        return self.data.get((kind, key))

    async def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        self.data[(kind, key)] = dict(value)

    async def delete(self, kind: str, key: str) -> None:
        self.data.pop((kind, key), None)

    async def list(self, kind: str, *, limit: int = 1000) -> list[tuple[str, dict[str, Any]]]:
        return [(k, v) for (kd, k), v in self.data.items() if kd == kind][:limit]


@dataclass
class MemorySink:
    """Accepts events idempotently by key, like the core's store."""

    events: list[CallEvent] = field(default_factory=list)

    async def submit(self, events: list[CallEvent]) -> int:
        known = {e.key for e in self.events}
        new = 0
        for event in events:
            if event.key not in known:
                known.add(event.key)
                self.events.append(event)
                new += 1
        return new
