"""Call recordings of a MegaFon instance: remembered links, delayed download with retries, local files.

``history`` names the recording by a PBX link that is a capability URL and may not exist yet when
the push arrives (reference §6.4-5). ctid keeps the link to itself (plugin storage, kind
``recording``), downloads the file after ``recording_delay`` with ``recording_retries`` further
attempts ``recording_retry_interval`` apart, and stores it under
``<data_dir>/<recordings_dir>/<instance>/<call id>.<ext>``. Users only ever see ctid's URL.

Planned downloads are kept in plugin storage too (kind ``download``, with their wall-clock due
time) until they finish, so a restart resumes them instead of losing them.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from ctid.errors import PBXError
from ctid.recordings import RecordingFiles

if TYPE_CHECKING:
    from ctid.services import Services
    from ctid_megafon.client import MegafonClient
    from ctid_megafon.config import MegafonConfig

log = logging.getLogger(__name__)


class RecordingStore:
    """Links and files of one connector instance's recordings."""

    def __init__(self, instance: str, config: MegafonConfig, services: Services):
        self.instance = instance
        self.config = config
        self.services = services
        self.directory = Path(services.data_dir) / config.recordings_dir / instance
        self.files = RecordingFiles(self.directory)  # written atomically: downloads may race
        self._links: dict[str, str] = {}  # pbx call id -> link, when plugin storage is unavailable

    def _storage(self):
        try:
            return self.services.storage("megafon")
        except RuntimeError:
            return None

    async def remember(self, pbx_call_id: str, call_id: str, link: str) -> None:
        self._links[pbx_call_id] = link
        storage = self._storage()
        if storage is not None:
            await storage.put("recording", f"{self.instance}:{pbx_call_id}", {"link": link, "call_id": call_id})

    async def link(self, pbx_call_id: str) -> str | None:
        if pbx_call_id in self._links:
            return self._links[pbx_call_id]
        storage = self._storage()
        if storage is None:
            return None
        record = await storage.get("recording", f"{self.instance}:{pbx_call_id}")
        return record.get("link") if record else None

    # -- planned downloads -----------------------------------------------------------------------
    async def plan(self, pbx_call_id: str, call_id: str, due_at: datetime) -> None:
        """Remember a download to make at ``due_at`` (UTC), until :meth:`unplan`."""
        storage = self._storage()
        if storage is not None:
            await storage.put("download", f"{self.instance}:{pbx_call_id}",
                              {"call_id": call_id, "due_at": due_at.isoformat()})

    async def unplan(self, pbx_call_id: str) -> None:
        storage = self._storage()
        if storage is not None:
            await storage.delete("download", f"{self.instance}:{pbx_call_id}")

    async def planned(self) -> list[tuple[str, str, datetime]]:
        """This instance's unfinished downloads: (pbx call id, call id, due time)."""
        storage = self._storage()
        if storage is None:
            return []
        prefix = f"{self.instance}:"
        out = []
        for key, value in await storage.list("download", limit=100_000):
            if not key.startswith(prefix):
                continue
            try:
                out.append((key[len(prefix):], str(value["call_id"]), datetime.fromisoformat(value["due_at"])))
            except (KeyError, TypeError, ValueError):
                log.warning("%s: dropping an unreadable planned download %r", self.instance, key)
                await storage.delete("download", key)
        return out

    # -- files -----------------------------------------------------------------------------------
    def path_for(self, call_id: str, media: str) -> Path:
        return self.files.path_for(call_id, media)

    async def load(self, call_id: str) -> tuple[bytes, str] | None:
        return await self.files.load(call_id)

    async def save(self, call_id: str, data: bytes, media: str) -> Path:
        """Store a downloaded recording; a background download and an on-demand fetch may both do so."""
        return await self.files.save(call_id, data, media)

    # -- download --------------------------------------------------------------------------------
    async def fetch(
        self, client: MegafonClient, pbx_call_id: str, call_id: str, *, attempts: int | None = None,
        limiter: trio.CapacityLimiter | None = None,
    ) -> tuple[bytes, str] | None:
        """The recording from disk, else downloaded (and stored), trying ``attempts`` times.

        A 404 (not written yet) or a retryable PBX failure waits ``recording_retry_interval`` (or
        the PBX's ``Retry-After``) and tries again; None when the file never appeared. Each attempt
        holds ``limiter`` (if given) while it downloads, not while it waits.
        """
        stored = await self.load(call_id)
        if stored is not None:
            return stored
        link = await self.link(pbx_call_id)
        if link is None:
            return None
        total = attempts if attempts is not None else 1 + self.config.recording_retries
        for attempt in range(1, total + 1):
            wait = self.config.recording_retry_interval
            try:
                async with limiter if limiter is not None else contextlib.nullcontext():
                    result = await client.download(link)
            except PBXError as exc:
                if not exc.retryable or attempt == total:
                    raise
                log.info("recording of %s: attempt %d failed: %s", call_id, attempt, exc)
                wait = exc.retry_after if exc.retry_after is not None else wait
                result = None
            if result is not None:
                data, media = result
                await self.save(call_id, data, media)
                return data, media
            if attempt < total:
                await trio.sleep(wait)
        log.info("recording of %s: not available after %d attempts", call_id, total)
        return None
