"""ctid.testing.memory: the in-memory plugin storage and event sink plugin tests hand to a connector
keep records like the database does (a copy per put, per kind, a limit) and take each event key once."""

from __future__ import annotations

from ctid.model import CallEvent, EventKind
from ctid.services import EventSink, PluginStorage
from ctid.testing.memory import MemorySink, MemoryStorage


async def test_memory_storage_keeps_a_copy_per_kind_and_key() -> None:
    storage: PluginStorage = MemoryStorage()
    value = {"link": "a"}
    await storage.put("recording", "c1", value)
    value["link"] = "changed after put"
    await storage.put("recording", "c2", {"link": "b"})
    await storage.put("alias", "c1", {"primary": "c0"})
    assert await storage.get("recording", "c1") == {"link": "a"}
    assert await storage.get("recording", "nope") is None
    assert await storage.list("recording") == [("c1", {"link": "a"}), ("c2", {"link": "b"})]
    assert await storage.list("recording", limit=1) == [("c1", {"link": "a"})]
    await storage.delete("recording", "c1")
    await storage.delete("recording", "never-there")
    assert await storage.list("recording") == [("c2", {"link": "b"})]
    assert await storage.list("alias") == [("c1", {"primary": "c0"})]


async def test_memory_sink_accepts_each_event_key_once() -> None:
    sink: EventSink = MemorySink()

    def event(key: str) -> CallEvent:
        return CallEvent(connector="pbx", pbx_call_id="call-1", kind=EventKind.RING, key=key)

    assert await sink.submit([event("k1"), event("k2"), event("k1")]) == 2
    assert await sink.submit([event("k2"), event("k3")]) == 1
    assert [e.key for e in sink.events] == ["k1", "k2", "k3"]
