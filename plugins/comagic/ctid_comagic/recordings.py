"""Call recordings of a CoMagic instance: capability links kept private, downloaded later, served by ctid.

Links come from the "recording ready" notification (``file_link``) or are built from the report's
``call_records`` hashes (``{media}/system/media/talk/{communication_id}/{hash}/``, reference §3.3).
They need no token, so whoever has one can listen [guess §3.3]: ctid keeps them in plugin storage (kind
``recording``), never in a call's public JSON, downloads the file after ``recording_delay`` with
retries (it may appear only after the notification, §5.3), and stores it under
``<data_dir>/<recordings_dir>/<instance>/<call id>.<ext>``. Users get ctid's URL only.
Planned downloads are kept too (kind ``download``), so a restart resumes them.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import httpx
import trio

from ctid.errors import PBXError
from ctid.recordings import RecordingFiles

if TYPE_CHECKING:
    from ctid.services import Services
    from ctid_comagic.config import ComagicConfig

log = logging.getLogger(__name__)

MAX_BYTES = 200 * 1024 * 1024


def hash_link(media_base: str, communication_id: str, digest: str) -> str:
    """The talk recording URL of one ``call_records`` hash (§3.3; ``communication_id`` == id [guess])."""
    return f"{media_base.rstrip('/')}/system/media/talk/{communication_id}/{digest}/"


class RecordingStore:
    """Links and files of one connector instance's recordings."""

    def __init__(self, instance: str, config: ComagicConfig, services: Services):
        self.instance = instance
        self.config = config
        self.services = services
        self.directory = Path(services.data_dir) / config.recordings_dir / instance
        self.files = RecordingFiles(self.directory)  # written atomically: downloads may race
        self._links: dict[str, str] = {}
        media = urlsplit(config.endpoint("media")).hostname or ""
        labels = media.split(".")
        self._hosts = (media, ".".join(labels[-2:]) if len(labels) >= 3 else media)

    def _storage(self):
        try:
            return self.services.storage("comagic")
        except RuntimeError:
            return None

    def allowed(self, link: str) -> bool:
        """A link on the platform's media host (or its domain): ctid fetches nothing else."""
        parts = urlsplit(link)
        host = (parts.hostname or "").lower()
        exact, domain = self._hosts
        return parts.scheme in ("http", "https") and (host == exact or host == domain or host.endswith("." + domain))

    async def remember(self, session: str, call_id: str, link: str) -> bool:
        """Keep ``link``; True when it is new for this call (then a download should be planned)."""
        if await self.link(session) == link:
            return False
        self._links[session] = link
        storage = self._storage()
        if storage is not None:
            await storage.put("recording", f"{self.instance}:{session}", {"link": link, "call_id": call_id})
        return True

    async def link(self, session: str) -> str | None:
        if session in self._links:
            return self._links[session]
        storage = self._storage()
        record = await storage.get("recording", f"{self.instance}:{session}") if storage is not None else None
        return record.get("link") if record else None

    async def plan(self, session: str, call_id: str, due_at: datetime) -> None:
        storage = self._storage()
        if storage is not None:
            await storage.put("download", f"{self.instance}:{session}", {"call_id": call_id, "due_at": due_at.isoformat()})

    async def unplan(self, session: str) -> None:
        storage = self._storage()
        if storage is not None:
            await storage.delete("download", f"{self.instance}:{session}")

    async def planned(self) -> list[tuple[str, str, datetime]]:
        storage = self._storage()
        if storage is None:
            return []
        prefix, out = f"{self.instance}:", []
        for key, value in await storage.list("download", limit=100_000):
            if key.startswith(prefix):
                try:
                    out.append((key[len(prefix):], str(value["call_id"]), datetime.fromisoformat(value["due_at"])))
                except (KeyError, TypeError, ValueError):
                    await storage.delete("download", key)
        return out

    async def load(self, call_id: str) -> tuple[bytes, str] | None:
        return await self.files.load(call_id)

    async def save(self, call_id: str, data: bytes, media: str) -> None:
        """Store a downloaded recording; a background download and an on-demand fetch may both do so."""
        await self.files.save(call_id, data, media)

    async def download(self, http: httpx.AsyncClient, link: str) -> tuple[bytes, str] | None:
        """The file at ``link`` (https: http answers 308, §5.3), or None while it does not exist yet."""
        if not self.allowed(link):
            raise PBXError("CoMagic recording: link outside the platform's media host", error_id="pbx_bad_answer",
                           retryable=False)
        parts = urlsplit(link)
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost"):
            link = urlunsplit(("https", *parts[1:]))
        try:
            response = await http.get(link)
        except httpx.HTTPError as exc:
            raise PBXError(f"CoMagic recording: {exc.__class__.__name__}", error_id="pbx_unreachable") from exc
        if response.status_code in (404, 410):
            return None
        if response.status_code >= 400:
            raise PBXError(f"CoMagic recording: HTTP {response.status_code}", error_id="pbx_failed",
                           retryable=response.status_code >= 500 or response.status_code == 429)
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media.startswith(("text/html", "application/json")):
            raise PBXError("CoMagic recording: got a page instead of audio", error_id="pbx_bad_answer")
        if len(response.content) > MAX_BYTES:
            raise PBXError("CoMagic recording: larger than 200 MB", error_id="pbx_bad_answer", retryable=False)
        return response.content, media if media.startswith("audio/") else "audio/mpeg"

    async def fetch(self, http: httpx.AsyncClient, session: str, call_id: str, *,
                    attempts: int | None = None) -> tuple[bytes, str] | None:
        """From disk, else downloaded and stored, ``attempts`` times ``recording_retry_interval`` apart."""
        stored = await self.load(call_id)
        if stored is not None:
            return stored
        link = await self.link(session)
        if link is None:
            return None
        total = attempts if attempts is not None else 1 + self.config.recording_retries
        for attempt in range(1, total + 1):
            try:
                result = await self.download(http, link)
            except PBXError as exc:
                if not exc.retryable or attempt == total:
                    raise
                result = None
            if result is not None:
                await self.save(call_id, *result)
                return result
            if attempt < total:
                await trio.sleep(self.config.recording_retry_interval)
        log.info("%s: recording of %s not available after %d attempts", self.instance, call_id, total)
        return None
