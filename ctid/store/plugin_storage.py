"""The SQL implementation of :class:`ctid.services.PluginStorage`: per-plugin JSON records in ``plugin_records``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ctid.model import utcnow
from ctid.store import statements as st

if TYPE_CHECKING:
    from ctid.store.store import Store


class SQLPluginStorage:
    """Records of one plugin, addressed by ``(kind, key)``; values are JSON objects."""

    def __init__(self, store: Store, plugin: str):
        self.store = store
        self.plugin = plugin

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        stmt = st.get_plugin_record(self.plugin, kind, key)
        return await self.store._read(lambda conn: conn.execute(stmt).scalar_one_or_none())

    async def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        if not isinstance(value, dict):
            raise TypeError(f"plugin records are JSON objects, not {type(value).__name__}")
        plugin, at = self.plugin, utcnow()

        def run(conn: Any) -> None:
            name = conn.dialect.name
            if name in st.ON_CONFLICT_DIALECTS:
                conn.execute(st.upsert_plugin_record(name, plugin, kind, key, value, at))
            elif conn.execute(st.update_plugin_record(plugin, kind, key, value, at)).rowcount == 0:
                conn.execute(st.insert_plugin_record(plugin, kind, key, value, at))

        await self.store._write(run)

    async def delete(self, kind: str, key: str) -> None:
        stmt = st.delete_plugin_record(self.plugin, kind, key)
        await self.store._write(lambda conn: conn.execute(stmt))

    async def list(self, kind: str, *, limit: int = 1000) -> list[tuple[str, dict[str, Any]]]:
        """Records of ``kind`` ordered by key."""
        stmt = st.list_plugin_records(self.plugin, kind, limit)
        return await self.store._read(lambda conn: [(row.key, row.data) for row in conn.execute(stmt)])
