"""Opening the CRM record of a call that rings this operator: which URL, once per call, and the
desktop notification with the caller and the contact.

``decide`` is pure; ``open_url`` is the default opener (the OS's default browser: on Windows
``os.startfile``, ShellExecute; elsewhere ``webbrowser``, which honours ``BROWSER``).
"""

from __future__ import annotations

import logging
import os
import sys
import webbrowser
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Pop:
    call_id: str
    url: str | None  # the CRM record, the new-contact form, or None (the CRM gave neither)
    caller: str  # the remote number
    contact: str | None  # the matched contact's name (and company) when known


def _contact_name(match: dict[str, Any]) -> str:
    name, company = match.get("name") or "", match.get("company") or ""
    return f"{name} ({company})" if name and company else name or company


def decide(call: dict[str, Any], agent: str, open_on: str) -> Pop | None:
    """The pop-up for ``call`` once it concerns ``agent`` and its contact is resolved, else None.

    ``open_on``: ``ring`` (an inbound call ringing this agent, or already answered by it),
    ``answer`` (this agent answered), ``never``.
    """
    if open_on == "never" or call.get("direction") != "inbound":
        return None
    state = call.get("state")
    ringing_me = state == "ringing" and agent in (call.get("ringing_agents") or [])
    mine = state in ("talking", "held") and call.get("agent") == agent
    if not (mine or (open_on == "ring" and ringing_me)):
        return None
    contact = call.get("contact") or {}
    if contact.get("status") in (None, "pending"):
        return None  # the CRM lookup is still running: a later update carries the answer
    matches = [m for m in contact.get("matches") or [] if isinstance(m, dict)]
    url = next((m.get("url") for m in matches if m.get("url")), None) or contact.get("new_contact_url")
    name = _contact_name(matches[0]) if matches else None
    return Pop(str(call.get("id")), url, str(call.get("remote_number") or ""), name)


class Popper:
    """Opens each call's CRM record once (transfers and repeated updates open nothing more)."""

    def __init__(self, agent: str, open_on: str, opener: Callable[[str], Any], notify: Callable[[Pop], Any],
                 remember: int = 500):
        self.agent, self.open_on = agent, open_on
        self._opener, self._notify = opener, notify
        self._done: OrderedDict[str, None] = OrderedDict()
        self._remember = remember

    def call_updated(self, call: dict[str, Any]) -> Pop | None:
        pop = decide(call, self.agent, self.open_on)
        if pop is None or pop.call_id in self._done:
            return None
        self._done[pop.call_id] = None
        while len(self._done) > self._remember:
            self._done.popitem(last=False)
        self._notify(pop)
        if pop.url:
            log.info("call %s from %s: opening %s", pop.call_id, pop.caller, pop.url)
            try:
                self._opener(pop.url)
            except Exception:  # noqa: BLE001 - a broken browser set-up must not stop the launcher
                log.exception("could not open %s", pop.url)
        return pop


def open_url(url: str) -> None:
    """Open ``url`` in the default browser, in an existing window where possible."""
    if sys.platform == "win32":
        os.startfile(url)  # noqa: S606 - ShellExecute with the user's default handler
    else:
        webbrowser.open(url, new=0, autoraise=True)
