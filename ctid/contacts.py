"""Screen-pop contact lookups: the CRM's ``lookup`` behind a short-TTL cache, a time budget and
in-flight de-duplication (ten calls from one number cost one CRM request). The lookup is plugin code
and runs supervised (ctid/supervise.py): whatever it raises, the pop shows the CRM as unavailable."""

from __future__ import annotations

import logging
from typing import Any

import trio

from ctid.crm import LOOKUP, ContactMatch, CRMAdapter
from ctid.errors import CtidError, PluginError
from ctid.supervise import Supervisor

log = logging.getLogger(__name__)


def contact_json(matches: list[ContactMatch] | None, new_contact_url: str | None) -> dict[str, Any]:
    """The ``contact`` field of the Call JSON for a lookup result (``None`` = CRM did not answer)."""
    if matches is None:
        return {"status": "unavailable", "matches": [], "new_contact_url": new_contact_url}
    status = {0: "unknown", 1: "found"}.get(len(matches), "multiple")
    return {
        "status": status,
        "matches": [m.to_json() for m in matches],
        "new_contact_url": new_contact_url if not matches else None,
    }


class ContactService:
    """Cached CRM lookups; implements :class:`ctid.services.ContactLookup`."""

    def __init__(self, crm: CRMAdapter | None, *, ttl: float = 300, budget: float = 1.5, max_entries: int = 50_000,
                 supervisor: Supervisor | None = None, name: str = "crm"):
        self.crm = crm
        self.supervisor = supervisor or Supervisor()
        self.name = name  # the CRM plugin, as health and ctid_plugin_errors_total name it
        self.ttl = ttl
        self.budget = budget
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, list[ContactMatch]]] = {}
        self._inflight: dict[str, trio.Event] = {}
        self.requests = 0  # CRM round trips made (for tests and metrics)

    def cached(self, phone: str) -> list[ContactMatch] | None:
        entry = self._cache.get(phone)
        if entry is None:
            return None
        expires, matches = entry
        if expires < trio.current_time():
            del self._cache[phone]
            return None
        return matches

    def invalidate(self, phone: str | None = None) -> None:
        if phone is None:
            self._cache.clear()
        else:
            self._cache.pop(phone, None)

    async def lookup(self, phone: str, *, budget: float | None = None) -> list[ContactMatch] | None:
        if self.crm is None or not self.crm.supports(LOOKUP):  # ctid calls nothing undeclared
            return []
        hit = self.cached(phone)
        if hit is not None:
            return hit
        with trio.move_on_after(self.budget if budget is None else budget):
            while phone in self._inflight:
                await self._inflight[phone].wait()
                hit = self.cached(phone)
                if hit is not None:
                    return hit
            done = self._inflight[phone] = trio.Event()
            try:
                self.requests += 1
                matches = await self.supervisor.call(self.name, "lookup", self.crm.lookup, phone)
                if not isinstance(matches, list) or not all(isinstance(m, ContactMatch) for m in matches):
                    error = PluginError(f"lookup returned {type(matches).__name__}, not a list of ContactMatch")
                    self.supervisor.failed(self.name, "lookup", error)
                    raise error
            except CtidError as exc:
                log.warning("CRM lookup for a caller failed: %s", exc)
                return None
            finally:
                del self._inflight[phone]
                done.set()
            if len(self._cache) >= self.max_entries:
                self._cache.pop(next(iter(self._cache)))
            self._cache[phone] = (trio.current_time() + self.ttl, matches)
            return matches
        return None

    def new_contact_url(self, phone: str) -> str | None:
        if self.crm is None:
            return None
        try:  # plugin code: a failure leaves the pop without the link, recorded like any other
            url = self.supervisor.call_sync(self.name, "new_contact_url", self.crm.new_contact_url, phone)
        except CtidError:
            return None
        return url if isinstance(url, str) or url is None else None
