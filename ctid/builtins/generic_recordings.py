"""Recordings of the ``generic`` connector: the PBX's ``recording_url`` kept, fetched when a user plays it.

A PBX names a call's recording with ``recording_url`` on any event (usually ``end``). Users only
ever see ctid's URL (``/api/calls/{id}/recording``, behind ctid's authorization); the connector keeps
the PBX's URL in plugin storage (kind ``recording``, key ``<instance>:<call_id>``) and, when a user
plays the recording, fetches it from the PBX and hands it over. Nothing is copied ahead of time:
the PBX stays the place recordings live (and are deleted by its retention rules).

The PBX's URL must be reachable by ctid without further credentials (a capability URL, or a
server on a trusted network); only ``http`` and ``https`` URLs are fetched, redirects are followed
at most three times, and a file larger than ``max_recording_bytes`` is refused.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import httpx

from ctid.errors import PBXError
from ctid.limits import ascii_digits

if TYPE_CHECKING:
    from ctid.services import Services

log = logging.getLogger(__name__)

KIND = "recording"
_AUDIO = ("audio/", "video/", "application/ogg", "application/octet-stream")


class RecordingLinks:
    """The PBX's recording URLs of one connector instance (plugin storage, or memory without it)."""

    def __init__(self, instance: str, services: Services):
        self.instance = instance
        self.services = services
        self._memory: dict[str, str] = {}  # used when plugin storage is unavailable (tests, tools)

    def _storage(self):
        try:
            return self.services.storage("generic")
        except RuntimeError:
            return None

    async def remember(self, pbx_call_id: str, url: str) -> None:
        if self._memory.get(pbx_call_id) == url:
            return  # a redelivery or a second event naming the same file
        self._memory[pbx_call_id] = url
        storage = self._storage()
        if storage is not None:
            await storage.put(KIND, f"{self.instance}:{pbx_call_id}", {"url": url})

    async def url(self, pbx_call_id: str) -> str | None:
        if pbx_call_id in self._memory:
            return self._memory[pbx_call_id]
        storage = self._storage()
        record = await storage.get(KIND, f"{self.instance}:{pbx_call_id}") if storage is not None else None
        return record.get("url") if record else None


async def fetch(http: httpx.AsyncClient, url: str, *, max_bytes: int) -> tuple[bytes, str] | None:
    """The recording at ``url`` and its media type; None when the PBX says it has none (404/410).

    Raises ``PBXError`` (502) when the PBX cannot be reached, refuses, or sends too much."""
    try:
        async with http.stream("GET", url) as response:
            if response.status_code in (404, 410):
                return None
            if response.status_code >= 400:
                raise PBXError(f"the PBX refused the recording: HTTP {response.status_code}",
                               error_id="pbx_recording_failed", retryable=response.status_code >= 500)
            declared = response.headers.get("content-length", "")
            if ascii_digits(declared) and int(declared) > max_bytes:
                raise PBXError(f"the recording is larger than {max_bytes} bytes", error_id="recording_too_large")
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise PBXError(f"the recording is larger than {max_bytes} bytes", error_id="recording_too_large")
                chunks.append(chunk)
            media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    except httpx.HTTPError as exc:
        raise PBXError(f"the recording could not be fetched: {exc}", error_id="pbx_recording_failed",
                       retryable=True) from exc
    if not media.startswith(_AUDIO):
        media = "audio/mpeg"  # a PBX serving files as text/plain: the player sniffs the real type
    return b"".join(chunks), media


def fetchable(url: str) -> bool:
    """Whether ctid fetches this URL at all (http or https with a host)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


def allowed_host(host: str, hosts: list[str]) -> bool:
    """Whether a recording may be fetched from ``host``: any host without an allow-list."""
    return not hosts or host.lower().strip("[]") in hosts
