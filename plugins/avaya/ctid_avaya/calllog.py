"""SMDR groups become ctid SUMMARY events, joined to the DevLink3 call they describe.

A call's identity (``pbx_call_id``) is ``<server ip>-<caller leg id>-<local start>``: the caller leg
(SMDR fields 31 + 32, the DevLink3 PartyA end id [guess]) survives transfers, and the start keeps a
Call ID or leg id reused after a reboot apart. DevLink3 registers its calls in :class:`LegIndex`;
an SMDR record whose caller leg matches a registered call within the configured clock tolerance
(or falls inside that call's span: a transfer's tail under a new Call ID, reference §1.6) joins it.

Every SMDR record of a call is kept; each new one re-emits the call's summary with cumulative
totals, keyed by the set of records, so redelivery is a duplicate and a later, fuller summary sorts
after (and so wins over) an earlier one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from ctid.model import CallEvent, Direction, EventKind, Outcome
from ctid_avaya.smdr import SmdrRecord

KEEP = timedelta(days=2)  # how long calls stay joinable (SMDR arrives after the call; groups can be late)


@dataclass(slots=True)
class _Entry:
    pbx_call_id: str
    start: datetime  # UTC
    end: datetime | None  # UTC; None while DevLink3 still tracks it
    call_ids: set[int] = field(default_factory=set)  # SMDR Call IDs already joined to it


@dataclass(slots=True)
class LegIndex:
    """Caller legs ``(server ip, leg id)`` -> the ctid calls they started, for joining SMDR to DevLink3.

    ``changed`` collects the legs whose entries changed, for the connector to persist (so a ctid
    restart between a call's DevLink3 events and its SMDR record still joins them)."""

    tolerance: timedelta = timedelta(seconds=120)
    _legs: dict[tuple[str, int], list[_Entry]] = field(default_factory=dict)
    changed: set[tuple[str, int]] = field(default_factory=set)
    _registered: int = 0

    def active(self, leg: tuple[str, int], now: datetime, within: timedelta = timedelta(hours=6)) -> str | None:
        """The call this leg is in now (no end yet, started within ``within``): IP Office re-reporting
        a call in progress after ctid restarted keeps its id."""
        live = [e for e in self._legs.get(leg, ()) if e.end is None and now - e.start <= within]
        return max(live, key=lambda e: e.start).pbx_call_id if live else None

    def entries(self, leg: tuple[str, int]) -> list[dict]:
        return [{"pbx": e.pbx_call_id, "start": e.start.isoformat(), "end": e.end.isoformat() if e.end else None,
                 "call_ids": sorted(e.call_ids)} for e in self._legs.get(leg, ())][-5:]

    def load(self, leg: tuple[str, int], entries: list[dict]) -> None:
        for item in entries:
            end = datetime.fromisoformat(item["end"]) if item.get("end") else None
            self.register(leg, item["pbx"], datetime.fromisoformat(item["start"]), end, set(item.get("call_ids") or ()))
        self.changed.discard(leg)

    def register(self, leg: tuple[str, int], pbx_call_id: str, start: datetime, end: datetime | None = None,
                 call_ids: set[int] = frozenset()) -> None:
        self._registered += 1
        if self._registered % 1000 == 0:  # bounded memory whatever feeds it (DevLink3 alone, SMDR alone)
            self.prune(start - KEEP)
        entries = self._legs.setdefault(leg, [])
        self.changed.add(leg)
        for entry in entries:
            if entry.pbx_call_id == pbx_call_id:
                if end is not None:
                    entry.end = end if entry.end is None else max(entry.end, end)
                entry.call_ids |= call_ids
                return
        entries.append(_Entry(pbx_call_id, start, end, set(call_ids)))

    def find(self, leg: tuple[str, int], start: datetime, *, tail: bool = False,
             call_id: int | None = None) -> str | None:
        """The call of ``leg`` that started at ``start`` (± tolerance); with ``tail``, also one whose
        span covers ``start`` (a transfer continuing under a new Call ID). With ``call_id``, a call
        that SMDR already joined under another Call ID is not a candidate: two Call IDs are two calls
        (a transfer's tail aside)."""
        best: tuple[float, str] | None = None
        for entry in self._legs.get(leg, ()):
            if call_id is not None and entry.call_ids and call_id not in entry.call_ids:
                continue
            offset = abs((entry.start - start).total_seconds())
            if offset <= self.tolerance.total_seconds():
                candidate = (offset, entry.pbx_call_id)
            elif tail and entry.start <= start and (entry.end is None or start <= entry.end + self.tolerance):
                candidate = (offset, entry.pbx_call_id)
            else:
                continue
            if best is None or candidate < best:
                best = candidate
        return best[1] if best else None

    def prune(self, before: datetime) -> None:
        for leg in list(self._legs):
            kept = [e for e in self._legs[leg] if (e.end or e.start) >= before]
            if kept:
                self._legs[leg] = kept
            else:
                del self._legs[leg]


def _voicemail(record: SmdrRecord) -> bool:
    """A record whose party is a voicemail channel (``V95xx``, reference §1.4)."""
    return any(d.startswith("V95") for d in (record.party1_device, record.party2_device))


def pbx_call_id_for(leg: tuple[str, int] | None, local_start: datetime, call_id: int | None = None) -> str:
    stamp = local_start.strftime("%Y%m%d%H%M%S")
    if leg is None:  # a 17/30-field release without leg ids: the Call ID with its start
        return f"cid{call_id}-{stamp}"
    return f"{leg[0]}-{leg[1]}-{stamp}"


@dataclass(slots=True)
class _Call:
    pbx_call_id: str
    records: list[SmdrRecord] = field(default_factory=list)
    raws: set[str] = field(default_factory=set)
    last_seen: datetime | None = None


class CallLog:
    """Turns complete SMDR groups into SUMMARY events (see the module docstring)."""

    def __init__(self, instance: str, zone: ZoneInfo, index: LegIndex, *,
                 login_for: Callable[[str], str], hunt_groups: dict[str, str]):
        self.instance = instance
        self.zone = zone
        self.index = index
        self.login_for = login_for
        self.hunt_groups = {k.strip().lower(): v for k, v in hunt_groups.items()}
        self._calls: dict[str, _Call] = {}

    def utc(self, local: datetime) -> datetime:
        return local.replace(tzinfo=self.zone).astimezone(UTC)

    def add_group(self, records: list[SmdrRecord], complete: bool = True) -> list[CallEvent]:
        """The summaries (new or fuller) of the calls these records belong to."""
        if not records:
            return []
        first = records[0]
        start = self.utc(first.call_start)
        primary_leg = first.caller_leg_key()
        # the group's own call: the DevLink3 (or earlier SMDR) call that started with this caller leg;
        # never a mere overlap (an analog trunk's caller leg id is always 2 in real data, §1.3)
        primary = (self.index.find(primary_leg, start, call_id=first.call_id) if primary_leg else None) \
            or pbx_call_id_for(primary_leg, first.call_start, first.call_id)
        touched: list[str] = []
        for record in records:
            pbx = primary
            leg = record.caller_leg_key()
            if leg is not None and leg != primary_leg:  # a transfer's tail under a new Call ID (§1.6)
                pbx = self.index.find(leg, self.utc(record.call_start), tail=True) or primary
            call = self._calls.get(pbx)
            if call is None:
                call = self._calls[pbx] = _Call(pbx)
            if record.raw in call.raws:
                continue  # redelivered (a listen-mode reconnect replays the unit's buffer)
            call.raws.add(record.raw)
            call.records.append(record)
            call.last_seen = start
            if pbx not in touched:
                touched.append(pbx)
        events = []
        for pbx in touched:
            call = self._calls[pbx]
            event = self._summary(call, complete)
            leg = call.records[0].caller_leg_key()
            if leg is not None:
                total = event.total_seconds or 0.0
                self.index.register(leg, pbx, event.at, event.at + timedelta(seconds=total),
                                    {r.call_id for r in call.records if r.caller_leg_key() == leg})
            events.append(event)
        self._prune(start)
        return events

    def _prune(self, now: datetime) -> None:
        if len(self._calls) < 5000:
            return
        cutoff = now - KEEP
        for pbx in [p for p, c in self._calls.items() if c.last_seen and c.last_seen < cutoff]:
            del self._calls[pbx]
        self.index.prune(cutoff)

    def _summary(self, call: _Call, complete: bool) -> CallEvent:
        records = call.records
        first = records[0]
        start_local = min(r.call_start for r in records)
        if first.internal:
            direction = Direction.INTERNAL
        elif first.direction == "I":
            direction = Direction.INBOUND
        else:
            direction = Direction.OUTBOUND
        # the call's span: records of one Call ID follow each other; a tail may start later
        total = 0.0
        by_start: dict[tuple[int, datetime], int] = {}
        for record in records:
            key = (record.call_id, record.call_start)
            by_start[key] = by_start.get(key, 0) + record.span
        for (_cid, begun), span in by_start.items():
            total = max(total, (begun - start_local).total_seconds() + span)
        # talking: an extension, or an external party the unit forwarded / transferred the caller to
        # (twinning, a split divert, a transfer's tail); a voicemail channel is not a conversation
        talked = [r for r in records if r.connected > 0 and not _voicemail(r)]
        group = self._group(records)
        if direction is Direction.INBOUND:
            remote = first.caller_number or None
            line = first.dialled if first.dialled and first.dialled not in first.extensions() else None
            answered = bool(talked)
            outcome = Outcome.ANSWERED if answered else Outcome.MISSED
        else:
            remote = first.called or first.dialled or None
            line = None
            answered = any(r.connected > 0 for r in records)
            outcome = Outcome.ANSWERED if answered else Outcome.NO_ANSWER
        agent_ext = None
        if direction is Direction.INBOUND:
            with_agent = [r for r in talked if r.extensions()]
            if with_agent:
                agent_ext = with_agent[-1].extensions()[0]
            elif talked:  # answered off-switch only: the extension that forwarded it
                agent_ext = next((r.extensions()[0] for r in reversed(records) if r.extensions()), None)
            elif group is None:  # the extension it rang last (before voicemail); a hunt group's names none
                agent_ext = next((r.extensions()[0] for r in reversed(records) if r.extensions()), None)
        else:
            exts = first.extensions()
            agent_ext = exts[0] if exts else None
        talk = float(sum(r.connected for r in talked)) if direction is Direction.INBOUND else \
            float(sum(r.connected for r in records))
        digest = hashlib.sha1("\n".join(sorted(call.raws)).encode()).hexdigest()[:16]
        return CallEvent(
            connector=self.instance,
            pbx_call_id=call.pbx_call_id,
            kind=EventKind.SUMMARY,
            key=f"smdr:{call.pbx_call_id}:{len(records):03d}:{digest}",
            at=self.utc(start_local),
            direction=direction,
            remote_number=remote,
            line_number=line,
            agent_login=self.login_for(agent_ext) if agent_ext else None,
            group=group,
            outcome=outcome,
            wait_seconds=float(first.ring),
            talk_seconds=talk if answered else None,
            total_seconds=total,
            hold_seconds=float(sum(r.hold for r in records)) if answered else None,
            extra={
                "source": "smdr",
                "smdr_call_ids": sorted({r.call_id for r in records}),
                "records": len(records),
                "complete": complete,
            },
        )

    def _group(self, records: list[SmdrRecord]) -> str | None:
        for record in records:
            for name in (record.called, record.targeter if record.targeting_cause.startswith("HG") else ""):
                group = self.hunt_groups.get(name.strip().lower()) if name else None
                if group:
                    return group
        return None
