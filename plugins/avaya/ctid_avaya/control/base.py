"""What a call-control backend offers the connector: extension-level commands, health, lifecycle.

Commands take IP Office / CM extension numbers and the remote party's number (to pick the right
call when an extension has several). A PBX refusal is :func:`refused` (HTTP 409 ``pbx_refused``
with the PBX's own reason); an unreachable backend is ``PBXError`` ``pbx_unreachable`` (502).
"""

from __future__ import annotations

import re
from typing import ClassVar

import trio

from ctid.errors import PBXError
from ctid.model import Capability


def refused(what: str, reason: str, code: str | None = None) -> PBXError:
    """HTTP 409 ``pbx_refused``; ``pbx_refused:<code>`` when the PBX named a stable reason (a CSTA
    error value, snake_cased: ``invalidConnectionState`` -> ``invalid_connection_state``)."""
    suffix = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", code).lower() if code and re.fullmatch(r"[A-Za-z]{1,64}", code) else None
    return PBXError(f"the PBX refused {what}: {reason}", error_id=f"pbx_refused:{suffix}" if suffix else "pbx_refused",
                    retryable=False, code=suffix)


def unreachable(backend: str, reason: str) -> PBXError:
    return PBXError(f"{backend} is unreachable: {reason}", error_id="pbx_unreachable")


class ControlBackend:
    name: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Long-lived work (sessions, keep-alives); the default has none."""
        task_status.started()

    async def dial(self, extension: str, number: str) -> str | None:
        raise NotImplementedError

    async def hold(self, extension: str, remote: str | None) -> None:
        raise NotImplementedError

    async def unhold(self, extension: str, remote: str | None) -> None:
        raise NotImplementedError

    async def transfer(self, extension: str, remote: str | None, target: str) -> None:
        raise NotImplementedError

    async def hangup(self, extension: str, remote: str | None) -> None:
        raise NotImplementedError

    async def check(self) -> str:
        """A one-line state when reachable; raise ``PBXError`` when not."""
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


def digits(number: str | None) -> str:
    return "".join(ch for ch in number or "" if ch.isdigit())


def same_party(a: str | None, b: str | None) -> bool:
    """Numbers that end the same (trunk prefixes and country codes differ between systems)."""
    da, db = digits(a), digits(b)
    if not da or not db:
        return False
    size = min(len(da), len(db), 10)
    return da[-size:] == db[-size:]
