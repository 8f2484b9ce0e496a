"""Helpers shared by the Avaya connector tests (imported as ``avaya_kit``, like ``megafon_kit``)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from ctid.testing.daemon import eventually
from ctid.testing.fakes import serve
from ctid_avaya.calllog import CallLog, LegIndex
from ctid_avaya.control import tapi as t
from ctid_avaya.control.tapi import TapiEngine
from ctid_avaya.smdr import CallGrouper, LineSplitter, SmdrError, decode, parse_record

ZONE = ZoneInfo("Europe/Warsaw")


async def knows(engine: TapiEngine, extension: str, handle: int) -> None:
    """Wait until the engine's message pump has seen the call connected (a thread reads TAPI)."""
    async def check():
        line = engine.lines.get(extension)
        return line is not None and line.calls.get(handle) == t.LINECALLSTATE_CONNECTED

    await eventually(check, within=10)


async def start_tws(nursery, fake) -> str:
    """Serve the fake TelephonyService over real HTTP; its URL (append ``?wsdl`` for the WSDL)."""
    url = await nursery.start(serve, fake)
    return f"{url}/axis/services/TelephonyService"


def pipeline(data_chunks, hunt_groups=None):
    """Bytes -> lines -> records -> groups -> summaries, as the connector wires them."""
    index = LegIndex()
    log = CallLog("ipo", ZONE, index, login_for=lambda ext: f"x{ext}", hunt_groups=hunt_groups or {})
    events = []
    grouper = CallGrouper(lambda records, complete: events.extend(log.add_group(records, complete)))
    splitter = LineSplitter()
    bad = []
    for chunk in data_chunks:
        for line in splitter.feed(chunk):
            try:
                grouper.add(parse_record(decode(line)), 0.0)
            except SmdrError as exc:
                bad.append(str(exc))
    return events, bad


def final(events):
    """The last (fullest) summary per call."""
    calls = {}
    for event in sorted(events, key=lambda e: e.sort_key()):
        calls[event.pbx_call_id] = event
    return calls


def stream(lines):
    return "".join(line + "\r\n" for line in lines).encode("utf-8")
