"""The ``calls.participants`` column: every agent entitled to see a call, searchable with LIKE.

An agent's ``GET /api/calls`` lists the calls :meth:`ctid.model.Call.participants` grants them (the
ones that ring them, that they talked on, or that they transferred away), not only the calls whose
final ``agent`` they are: an agent who answered and transferred a call must find it in their
history. The column holds ``|a|b|c|``: the sorted agent ids, each percent-encoded so that neither
``|`` nor LIKE's ``%`` and ``_`` can appear inside one, and a filter is ``LIKE '%|<id>|%'``.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

#: LIKE's escape character in :func:`pattern` (never produced by :func:`quote`).
ESCAPE = "\\"


def _encode(agent: str) -> str:
    return quote(agent, safe="", errors="surrogatepass")


def key(agents: Iterable[str]) -> str | None:
    """The column value of a call with these participants (None when there are none)."""
    names = sorted({_encode(agent) for agent in agents if agent})
    return f"|{'|'.join(names)}|" if names else None


def pattern(agent: str) -> str:
    """The LIKE pattern (with :data:`ESCAPE`) matching the calls ``agent`` takes part in."""
    encoded = _encode(agent).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")
    return f"%|{encoded}|%"
