"""Call control through the Call API: hold, transfers (blind and consultative) and their call events.

CoMagic sends no notification for hold or transfer (reference §1.3), so when the Call API confirms
one, the connector states it itself: ``hold``/``unhold`` events, and a ``transfer`` once
``transfer.talk`` succeeded. A transfer is always ``hold.call`` → ``make.call`` → ``transfer.talk``,
or ``restore.talk`` to go back to the customer (§2.4, §2.6):

- **blind**: the three calls in a row (``transfer.talk`` while the target is still dialling is
  "roughly a blind transfer" [guess §2.6]);
- **consultative**: ``hold.call`` + ``make.call`` now; the operator talks to the colleague, then
  completes (``transfer.talk``) or cancels (``restore.talk``: the customer is back, the hold ends).

While a consultation runs, the colleague's "talk started" is the operator's conversation with
them, not an answer of the customer's call; :meth:`CallControl.consulting` lets the connector
read it so. Consultations are kept in memory and in plugin storage (kind ``consult``), so another
instance or a restart reads the colleague's notifications the same way.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from ctid.errors import CapabilityError, PBXError
from ctid.model import Call, CallEvent, EventKind, utcnow
from ctid_comagic.client import RpcClient

log = logging.getLogger(__name__)

Submit = Callable[[list[CallEvent]], Awaitable[Any]]
MEMORY = 10_000


class CallControl:
    def __init__(self, instance: str, client: Callable[[], RpcClient], config, submit: Submit,
                 storage: Callable[[], Any], dial_target: Callable[[str], Awaitable[str]],
                 now: Callable[[], Any] = utcnow):
        self.instance = instance
        self._client = client
        self.config = config
        self._submit = submit
        self._storage = storage
        self._dial_target = dial_target
        self._consults: dict[str, dict[str, str]] = {}  # session -> {"agent", "target"}
        self._seq = itertools.count(1)
        self._now = now

    # -- the events ctid states itself -----------------------------------------------------------
    def _event(self, call: Call, kind: EventKind, agent: str, *, target: str | None = None,
               what: str) -> CallEvent:
        at = self._now()
        return CallEvent(connector=self.instance, pbx_call_id=call.pbx_call_id, kind=kind,
                         key=f"callapi:{call.pbx_call_id}:{what}:{at.isoformat()}:{next(self._seq)}", at=at,
                         received_at=at, agent_login=agent, target_login=target, extra={"source": "call_api"})

    async def _state(self, events: list[CallEvent]) -> None:
        try:
            await self._submit(events)
        except Exception as exc:  # the PBX did it; a store hiccup must not turn success into failure
            log.warning("%s: could not record %s: %s", self.instance, [e.kind.value for e in events], exc)

    # -- consultations ---------------------------------------------------------------------------
    async def _record(self, session: str) -> dict[str, str] | None:
        found = self._consults.get(session)
        if found is not None:
            return found
        storage = self._storage()
        record = await storage.get("consult", f"{self.instance}:{session}") if storage is not None else None
        return record if record and record.get("target") else None

    async def consulting(self, session: str) -> dict[str, str] | None:
        """The consultation in progress on ``session`` (``{"agent", "target"}``), if any."""
        record = await self._record(session)
        return record if record is not None and not record.get("done_at") else None

    async def consultation_talk(self, session: str, employee: str, at: datetime | None) -> bool:
        """Whether ``employee``'s talk starting at ``at`` is the operator consulting them, not the call's
        answer by them: during the consultation, or stamped before ctid completed it (a notification
        that arrives after the completion, or a PBX clock behind ctid's)."""
        record = await self._record(session)
        if record is None or record.get("target") != employee:
            return False
        done = record.get("done_at")
        return not done or (at is not None and at <= datetime.fromisoformat(done))

    async def _remember(self, session: str, value: dict[str, str] | None) -> None:
        storage = self._storage()
        if value is None:
            self._consults.pop(session, None)
            if storage is not None:
                await storage.delete("consult", f"{self.instance}:{session}")
            return
        self._consults[session] = value
        while len(self._consults) > MEMORY:
            del self._consults[next(iter(self._consults))]
        if storage is not None:
            await storage.put("consult", f"{self.instance}:{session}", value)

    # -- commands --------------------------------------------------------------------------------
    async def hold(self, call: Call, agent: str) -> None:
        await self._client().control("hold.call", call.pbx_call_id,
                                     contact_message=self.config.hold_message.model_dump())
        await self._state([self._event(call, EventKind.HOLD, agent, what="hold")])

    async def unhold(self, call: Call, agent: str) -> None:
        if await self.consulting(call.pbx_call_id):
            raise CapabilityError("a consultation is in progress: complete or cancel the transfer",
                                  error_id="transfer_in_progress")
        await self._client().control("unhold.call", call.pbx_call_id)
        await self._state([self._event(call, EventKind.UNHOLD, agent, what="unhold")])

    async def _hold_and_dial(self, call: Call, agent: str, target: str) -> None:
        to = await self._dial_target(target)
        client = self._client()
        placed = False
        try:
            await client.control("hold.call", call.pbx_call_id, contact_message=self.config.hold_message.model_dump())
            placed = True
            await self._state([self._event(call, EventKind.HOLD, agent, what="hold")])
        except PBXError as exc:
            if exc.code != "invalid_state":  # already on hold: make.call decides
                raise
        try:
            await client.control("make.call", call.pbx_call_id, to=to)
        except PBXError:
            if placed:
                await self._back(call, agent, "unhold.call")
            raise

    async def _back(self, call: Call, agent: str, method: str) -> None:
        """Back to the customer after a failed step, so the caller is not left on hold."""
        try:
            await self._client().control(method, call.pbx_call_id)
        except PBXError as exc:
            log.warning("%s: could not take call %s back off hold: %s", self.instance, call.pbx_call_id, exc)
            return
        await self._state([self._event(call, EventKind.UNHOLD, agent, what="unhold")])

    async def transfer(self, call: Call, agent: str, target: str) -> None:
        """Blind: hold, dial the colleague, hand the customer over at once."""
        if await self.consulting(call.pbx_call_id):
            raise CapabilityError("a consultation is in progress: complete or cancel it first",
                                  error_id="transfer_in_progress")
        await self._hold_and_dial(call, agent, target)
        try:
            await self._client().control("transfer.talk", call.pbx_call_id)
        except PBXError:
            await self._back(call, agent, "restore.talk")
            raise
        # The colleague's "talk started" may be stamped before this TRANSFER (the PBX's clock behind
        # ctid's): the core's fold takes it as the same move (docs/call-model.md §4).
        await self._state([self._event(call, EventKind.TRANSFER, agent, target=target, what="transfer")])

    async def consult(self, call: Call, agent: str, target: str) -> None:
        """Consultative, step one: the customer waits on hold while the colleague's phone rings."""
        if await self.consulting(call.pbx_call_id):
            raise CapabilityError("a consultation is already in progress", error_id="transfer_in_progress")
        await self._hold_and_dial(call, agent, target)
        await self._remember(call.pbx_call_id, {"agent": agent, "target": target})

    async def complete(self, call: Call, agent: str) -> str:
        """Consultative, done: the customer goes to the colleague. Returns the colleague's login."""
        consult = await self._require(call)
        await self._client().control("transfer.talk", call.pbx_call_id)
        event = self._event(call, EventKind.TRANSFER, consult["agent"], target=consult["target"], what="transfer")
        # kept a while: the colleague's "talk started" may still be on its way, and was the consultation
        await self._remember(call.pbx_call_id, {**consult, "done_at": event.at.isoformat()})
        await self._state([event])
        return consult["target"]

    async def cancel(self, call: Call, agent: str) -> str:
        """Consultative, cancelled: ``restore.talk`` brings the customer back to the operator."""
        consult = await self._require(call)
        await self._client().control("restore.talk", call.pbx_call_id)
        await self._remember(call.pbx_call_id, None)
        await self._state([self._event(call, EventKind.UNHOLD, consult["agent"], what="restore")])
        return consult["target"]

    async def _require(self, call: Call) -> dict[str, str]:
        consult = await self.consulting(call.pbx_call_id)
        if consult is None:
            raise CapabilityError("no consultation is in progress on this call", error_id="no_transfer_in_progress")
        return consult

    async def hangup(self, call: Call) -> None:
        await self._client().control("release.call", call.pbx_call_id)
        if await self.consulting(call.pbx_call_id):
            await self._remember(call.pbx_call_id, None)
