"""IP Office SMDR: the byte stream split into lines, lines parsed by position, records grouped per call.

Reference §1 (``shared/reference/avaya.md``): one CSV record per finished call leg, CR LF ended, no
quoting, 17 to 37 fields depending on the release, leading NULs possible, UTF-8 (other code pages
exist [guess]). Records of one Call ID carry Continuation=1 until the last one (0). Call IDs restart
at 1000000 after a reboot, so a Call ID alone never identifies a call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

log = logging.getLogger(__name__)

MIN_FIELDS = 17
FIELD_COUNT = 37  # rows are padded to this many; extra columns are ignored


class SmdrError(ValueError):
    """A line that is not an SMDR record (the reason says which field)."""


def decode(line: bytes) -> str:
    """UTF-8 as the real IP500 sent; a site with another code page falls back to cp1251 [guess]."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("cp1251", errors="replace")


class LineSplitter:
    """Buffers the TCP stream and returns whole lines: one ``recv`` is never assumed to be one record.

    Lines end with LF (CR and NUL bytes around it are stripped). A line longer than ``max_line``
    without an end is garbage: it is dropped up to the next LF and counted in ``oversized``.
    """

    def __init__(self, max_line: int = 8192):
        self.max_line = max_line
        self._buffer = bytearray()
        self._skipping = False
        self.oversized = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        lines: list[bytes] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._skipping:
                self._skipping = False
                continue
            line = line.strip(b"\r\x00")
            if line:
                lines.append(line)
        if len(self._buffer) > self.max_line:
            self._buffer.clear()
            if not self._skipping:
                self.oversized += 1
            self._skipping = True
        return lines

    def pending(self) -> bytes:
        """Bytes of an unfinished line (lost if the peer closes mid-record; the caller logs them)."""
        return bytes(self._buffer).strip(b"\r\x00")


MAX_SECONDS = 7 * 86400  # no call segment lasts a week: a bigger time is a corrupt line
_ASCII_DIGITS = frozenset("0123456789")


def _digits(value: str, most: int) -> bool:
    """ASCII digits only (``str.isdigit`` also takes ``²`` and ``٣``, which ``int`` refuses or reads), at most ``most``."""
    return 0 < len(value) <= most and set(value) <= _ASCII_DIGITS


def _seconds(value: str, name: str) -> int:
    value = value.strip()
    if not value:
        return 0
    if not _digits(value, 7) or int(value) > MAX_SECONDS:
        raise SmdrError(f"{name} {value[:20]!r} is not a number of seconds up to {MAX_SECONDS}")
    return int(value)


def _hms(value: str) -> int:
    parts = value.strip().split(":")
    if len(parts) != 3 or not all(_digits(p, 3) for p in parts):
        raise SmdrError(f"connected time {value[:20]!r} is not HH:MM:SS")
    hours, minutes, secs = (int(p) for p in parts)
    total = hours * 3600 + minutes * 60 + secs
    if minutes > 59 or secs > 59 or total > MAX_SECONDS:
        raise SmdrError(f"connected time {value[:20]!r} is not HH:MM:SS up to {MAX_SECONDS // 3600} hours")
    return total


def _int_or_none(value: str) -> int | None:
    value = value.strip()
    return int(value) if _digits(value, 18) else None  # ids: fit in 64 bits


@dataclass(frozen=True, slots=True)
class SmdrRecord:
    """One SMDR line, fields by position (reference §1.3); times are the unit's local time."""

    raw: str
    call_start: datetime
    connected: int
    ring: int
    caller: str
    direction: str  # "I" or "O" (internal calls are "O" too: see ``internal``)
    called: str
    dialled: str
    account: str
    internal: bool
    call_id: int
    continuation: bool
    party1_device: str
    party1_name: str
    party2_device: str
    party2_name: str
    hold: int
    park: int
    targeting_cause: str = ""
    targeter: str = ""
    caller_ip: str = ""
    caller_leg: int | None = None
    called_ip: str = ""
    called_leg: int | None = None
    field_count: int = MIN_FIELDS

    @property
    def span(self) -> int:
        """Seconds this record covers: connected + ring + hold + park (gaps are counted nowhere)."""
        return self.connected + self.ring + self.hold + self.park

    @property
    def caller_number(self) -> str:
        """The Caller field without a SIP trunk's ``@ip`` suffix."""
        return self.caller.split("@", 1)[0].strip()

    def extensions(self) -> list[str]:
        """Extension numbers among the two parties (``E<ext>`` devices), Party1 first."""
        return [d[1:] for d in (self.party1_device, self.party2_device) if d.startswith("E") and d[1:]]

    def caller_leg_key(self) -> tuple[str, int] | None:
        """(server IP, unique caller leg id): survives transfers (reference §1.6); None before R9-ish."""
        if self.caller_leg is None or not self.caller_ip:
            return None
        return (self.caller_ip, self.caller_leg)


def parse_record(line: str) -> SmdrRecord:
    """Parse one line by position; pads short rows (17 fields at least), ignores extra columns."""
    if line.startswith("\ufeff"):
        line = line[1:]
    fields = line.split(",")
    count = len(fields)
    if count < MIN_FIELDS:
        raise SmdrError(f"{count} fields, an SMDR record has at least {MIN_FIELDS}")
    fields += [""] * (FIELD_COUNT - count)
    try:
        call_start = datetime.strptime(fields[0].strip(), "%Y/%m/%d %H:%M:%S")
    except ValueError:
        raise SmdrError(f"call start {fields[0][:40]!r} is not YYYY/MM/DD HH:MM:SS") from None
    if not 1990 <= call_start.year <= 2100:  # IP Office is younger; year 1 or 9999 is a corrupt line
        raise SmdrError(f"call start {fields[0][:40]!r} is out of range")
    direction = fields[4].strip().upper()
    if direction not in ("I", "O"):
        raise SmdrError(f"direction {fields[4]!r} is neither I nor O")
    call_id = _int_or_none(fields[9])
    if call_id is None:
        raise SmdrError(f"call id {fields[9]!r} is not a number")
    continuation = fields[10].strip()
    if continuation not in ("0", "1"):
        raise SmdrError(f"continuation {fields[10]!r} is neither 0 nor 1")
    return SmdrRecord(
        raw=line,
        call_start=call_start,
        connected=_hms(fields[1]),
        ring=_seconds(fields[2], "ring time"),
        caller=fields[3].strip(),
        direction=direction,
        called=fields[5].strip(),
        dialled=fields[6].strip(),
        account=fields[7].strip(),
        internal=fields[8].strip() == "1",  # Avaya's own example has "I" here: anything else is external
        call_id=call_id,
        continuation=continuation == "1",
        party1_device=fields[11].strip(),
        party1_name=fields[12].strip(),
        party2_device=fields[13].strip(),
        party2_name=fields[14].strip(),
        hold=_seconds(fields[15], "hold time"),
        park=_seconds(fields[16], "park time"),
        targeting_cause=fields[27].strip(),
        targeter=fields[28].strip(),
        caller_ip=fields[30].strip(),
        caller_leg=_int_or_none(fields[31]),
        called_ip=fields[32].strip(),
        called_leg=_int_or_none(fields[33]),
        field_count=count,
    )


@dataclass(slots=True)
class _Group:
    records: list[SmdrRecord]
    opened: float  # monotonic time the first record arrived

    @property
    def start(self) -> datetime:
        return self.records[0].call_start

    def end(self) -> datetime:
        return self.start + timedelta(seconds=sum(r.span for r in self.records))


@dataclass(slots=True)
class CallGrouper:
    """Collects records per Call ID until Continuation=0, then hands the group on.

    A record joins an open group of its Call ID only if it can belong to that call: the same Call
    Start, or (after a split divert, reference §1.1) a start within the call's span and the same
    caller leg. So a Call ID reused after a reboot opens a new call even if the old one never got
    its last record; the stale group is handed on as it is.
    """

    emit: Callable[[list[SmdrRecord], bool], None]  # (records, complete)
    timeout: float = 7200
    tolerance: float = 120
    _open: dict[int, _Group] = field(default_factory=dict)

    def add(self, record: SmdrRecord, now: float) -> None:
        group = self._open.get(record.call_id)
        if group is not None and not self._belongs(group, record):
            del self._open[record.call_id]
            self.emit(group.records, False)
            group = None
        if group is None:
            group = self._open[record.call_id] = _Group([], now)
        group.records.append(record)
        if not record.continuation:
            del self._open[record.call_id]
            self.emit(group.records, True)

    def _belongs(self, group: _Group, record: SmdrRecord) -> bool:
        if record.call_start == group.start:
            return True
        legs = {r.caller_leg for r in group.records}
        if record.caller_leg is not None and record.caller_leg not in legs:
            return False
        slack = timedelta(seconds=self.tolerance)
        return group.start <= record.call_start <= group.end() + slack

    def expire(self, now: float) -> int:
        """Hand on groups older than ``timeout`` (their last record never came); returns how many."""
        stale = [cid for cid, group in self._open.items() if now - group.opened >= self.timeout]
        for cid in stale:
            self.emit(self._open.pop(cid).records, False)
        return len(stale)

    def open_count(self) -> int:
        return len(self._open)
