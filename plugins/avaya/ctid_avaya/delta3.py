"""Delta3 records (reference §2.5): ``<Detail>``, ``<CallLost>``, ``<LinkLost>``, ``<AttemptReject>``.

XML-like elements whose children hold comma-separated values (names may be quoted). Parsed with a
small regex and ``csv`` rather than an XML parser, as the reference advises until real output is
seen. Fields are read by position; trailing ones vary by release and may be missing.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field

_RECORD = re.compile(r"<(Detail|CallLost|LinkLost|AttemptReject)>")
_CHILD = re.compile(r"<(Call|PartyA|PartyB|Target)>")

TRUNK_CLASSES = frozenset({2, 3, 4, 5, 6, 7})  # ISDN, analog, H.323, SIP trunks, T1, R2
PHONE_CLASSES = frozenset({8, 9, 10, 11, 21, 28})  # TDM, H.323, SIP, DECT, mobile, WebRTC
VOICEMAIL_CLASS = 12


class Delta3Error(ValueError):
    """A record that cannot be read (missing ids)."""


def _elements(opening: re.Pattern[str], text: str) -> list[tuple[str, str]]:
    """``(tag, inner)`` of each ``<tag>inner</tag>``: the first close after each opening, as the lazy
    regex ``<(tag)>(.*?)</\\1>`` would find them, but in linear time. That regex rescans the rest of
    the text for every opening without a close (``"<Detail>" * 8000`` took 7 s and stalled the
    daemon's event loop); here a tag found unclosed once is never searched for again."""
    found: list[tuple[str, str]] = []
    unclosed: set[str] = set()
    pos = 0
    while (match := opening.search(text, pos)) is not None:
        tag = match.group(1)
        pos = match.end()
        if tag in unclosed:
            continue
        close = text.find(f"</{tag}>", pos)
        if close < 0:
            unclosed.add(tag)
            continue
        found.append((tag, text[pos:close]))
        pos = close + len(tag) + 3
    return found


def _csv(text: str) -> list[str]:
    text = text.strip()
    if not text:
        return []
    return next(csv.reader([text], skipinitialspace=False))


def _at(values: list[str], index: int) -> str:
    return values[index].strip() if index < len(values) else ""


def _int(values: list[str], index: int, default: int = 0) -> int:
    value = _at(values, index)
    try:
        return int(value)
    except ValueError:
        return default


@dataclass(frozen=True, slots=True)
class Party:
    """A PartyA / PartyB (26 fields at most) or a Target (14, reduced and outbound)."""

    end_id: str
    inbound: bool
    state: int
    audio_connected: bool
    tone: int
    equipment_class: int
    identity: str  # the user's extension
    did: str = ""
    target_number: str = ""
    cli: str = ""
    calling_name: str = ""
    target: bool = False

    @property
    def is_phone(self) -> bool:
        return self.equipment_class in PHONE_CLASSES and bool(self.identity)

    @property
    def is_trunk(self) -> bool:
        return self.equipment_class in TRUNK_CLASSES

    @property
    def leg(self) -> tuple[str, int] | None:
        """(node IP, leg id) from the end id: 8 hex chars of node address + 8 of leg [guess]."""
        return end_leg(self.end_id)


def end_leg(end_id: str) -> tuple[str, int] | None:
    if len(end_id) != 16:
        return None
    try:
        node = bytes.fromhex(end_id[:8])
        leg = int(end_id[8:], 16)
    except ValueError:
        return None
    return ".".join(str(b) for b in node), leg


def parse_party(text: str) -> Party:
    v = _csv(text)
    if not _at(v, 0):
        raise Delta3Error("party without an end id")
    return Party(
        end_id=_at(v, 0).lower(), inbound=_at(v, 1) == "1", state=_int(v, 2),
        audio_connected=_at(v, 3) != "0", tone=_int(v, 4), equipment_class=_int(v, 9),
        identity=_at(v, 12), did=_at(v, 15), target_number=_at(v, 18), cli=_at(v, 21),
        calling_name=_at(v, 24),
    )


def parse_target(text: str) -> Party:
    v = _csv(text)
    if not _at(v, 0):
        raise Delta3Error("target without an end id")
    return Party(end_id=_at(v, 0).lower(), inbound=False, state=1, audio_connected=False, tone=0,
                 equipment_class=_int(v, 3), identity=_at(v, 6), target_number=_at(v, 9), cli=_at(v, 12),
                 target=True)


@dataclass(frozen=True, slots=True)
class Detail:
    node: str
    call_id: str
    owner_group: str
    target_group: str  # currently targeted hunt group (else the originally targeted one)
    target_user: str
    party_a: Party
    party_b: Party | None = None
    targets: tuple[Party, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.node, self.call_id)


@dataclass(frozen=True, slots=True)
class CallLost:
    node: str
    end_id: str
    cleared_here: bool
    cause: int
    link: bool = False  # LinkLost (an intermediate SCN node)


@dataclass(frozen=True, slots=True)
class AttemptReject:
    node: str
    end_id: str
    user: str
    qualifier: str


Record = Detail | CallLost | AttemptReject


@dataclass
class ParseResult:
    records: list[Record] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse(text: str) -> ParseResult:
    """Every record in ``text`` (one Event tuple may hold several); unreadable ones are listed in errors."""
    result = ParseResult()
    for kind, inner in _elements(_RECORD, text):
        try:
            result.records.append(_parse_one(kind, inner))
        except (Delta3Error, csv.Error) as exc:
            result.errors.append(f"{kind}: {exc}")
    if not result.records and not result.errors and text.strip():
        result.errors.append(f"no Delta3 record in {text[:80]!r}")
    return result


def _parse_one(kind: str, inner: str) -> Record:
    if kind in ("CallLost", "LinkLost"):
        v = _csv(inner)
        if not _at(v, 1):
            raise Delta3Error("no end id")
        return CallLost(_at(v, 0).lower(), _at(v, 1).lower(), _at(v, 2) == "1", _int(v, 3), kind == "LinkLost")
    if kind == "AttemptReject":
        v = _csv(inner)
        if not _at(v, 1):
            raise Delta3Error("no end id")
        return AttemptReject(_at(v, 0).lower(), _at(v, 1).lower(), _at(v, 2), _at(v, 3))
    call = party_a = party_b = None
    targets = []
    for child, body in _elements(_CHILD, inner):
        if child == "Call":
            call = _csv(body)
        elif child == "PartyA":
            party_a = parse_party(body)
        elif child == "PartyB":
            party_b = parse_party(body)
        else:
            targets.append(parse_target(body))
    if call is None or not _at(call, 0) or not _at(call, 1):
        raise Delta3Error("Detail without <Call> node id and call id")
    if party_a is None:
        raise Delta3Error("Detail without <PartyA>")
    return Detail(
        node=_at(call, 0).lower(), call_id=_at(call, 1), owner_group=_at(call, 6),
        target_group=_at(call, 9) or _at(call, 7), target_user=_at(call, 10) or _at(call, 8),
        party_a=party_a, party_b=party_b, targets=tuple(targets),
    )
