"""ctid's persistence: the async :class:`Store` over SQLAlchemy Core (SQLite, PostgreSQL, MS SQL) and its migrations."""

from ctid.store.records import Job, OutboxJob, event_key
from ctid.store.store import Store, StoreStats

__all__ = ["Job", "OutboxJob", "Store", "StoreStats", "event_key"]
