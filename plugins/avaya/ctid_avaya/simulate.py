"""``ctid simulate-call`` for IP Office: each scenario as native Delta3 records and SMDR lines.

:func:`traffic` builds them (``SimulatedRequest`` with method ``DEVLINK3`` or ``SMDR``, the body
being the record's native text); :func:`send` plays the IP Office towards a running ctid: it
accepts ctid's DevLink3 login on the connector's ``simulation.devlink3_port`` (checking the
configured password, as the unit would), streams the Delta3 events, then writes the SMDR lines
to the SMDR listener (listen mode) or ``simulation.smdr_port``. The builders are public: the
tests and the fake IP Office use them too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import trio

from ctid.connector import SimulatedRequest, SimulationContext
from ctid.errors import PBXError, RequestError
from ctid.limits import ascii_digits

SCENARIOS = ("answered", "missed", "group", "transfer", "hold", "outbound_no_answer")
SIP_TRUNK = 5
SIP_PHONE = 10


# -- builders ----------------------------------------------------------------------------------
def end_id(node: str, leg: int) -> str:
    return f"{node}{leg:08x}"


def node_of(ip: str) -> str:
    return "".join(f"{int(p):02x}" for p in ip.split("."))


def party(end: str, *, inbound: bool, state: int, cls: int, identity: str = "", did: str = "", cli: str = "",
          target_number: str = "", audio: int = 1, tone: int = 0, public: int = 0) -> str:
    """A PartyA / PartyB CSV with the 23 fields of the reference's examples."""
    fields = [end, "1" if inbound else "0", str(state), str(audio), str(tone), "0", str(public), "0", "0", str(cls),
              "106" if cls == SIP_PHONE else "2", "", identity, "0", "0", did, "", "", target_number, "", "", cli, "100"]
    return ",".join(fields)


def target(end: str, identity: str, cli: str = "") -> str:
    return ",".join([end, "0", "0", str(SIP_PHONE), "106", "", identity, "0", "4", "", "", "", cli, "100"])


def detail(node: str, call_id: int, a: str, b: str | None = None, targets: list[str] = (), group: str = "") -> str:
    text = f"<Detail><Call>{node},{call_id},,,,0,{group},{group},,{group},</Call><PartyA>{a}</PartyA>"
    if b is not None:
        text += f"<PartyB>{b}</PartyB>"
    if targets:
        text += "<Target_list>" + "".join(f"<Target>{t}</Target>" for t in targets) + "</Target_list>"
    return text + "</Detail>"


def call_lost(node: str, end: str, cause: int = 16) -> str:
    return f"<CallLost>{node},{end},1,{cause}</CallLost>"


def smdr_line(start: datetime, *, connected: int, ring: int, caller: str, direction: str, called: str,
              dialled: str, internal: bool, call_id: int, continuation: bool, p1: tuple[str, str],
              p2: tuple[str, str], hold: int = 0, park: int = 0, cause: str = "", targeter: str = "",
              caller_ip: str = "", caller_leg: int = 0, called_ip: str = "0.0.0.0", called_leg: int = 0) -> str:
    """One 34-field record (the real IP500 V2 layout), without the line end."""
    hh, rest = divmod(connected, 3600)
    mm, ss = divmod(rest, 60)
    fields = [start.strftime("%Y/%m/%d %H:%M:%S"), f"{hh:02d}:{mm:02d}:{ss:02d}", str(ring), caller, direction,
              called, dialled, "", "1" if internal else "0", str(call_id), "1" if continuation else "0",
              p1[0], p1[1], p2[0], p2[1], str(hold), str(park)] + [""] * 10 + [cause, targeter, "",
                                                                              caller_ip, str(caller_leg),
                                                                              called_ip, str(called_leg)]
    return ",".join(fields)


# -- scenarios -----------------------------------------------------------------------------------
def traffic(connector, scenario: str, ctx: SimulationContext) -> list[SimulatedRequest]:
    ip = _ipv4(connector.config.host)
    node = node_of(ip)
    seed = int(ctx.start.timestamp() * 1000) % 1_000_000  # distinct legs and Call IDs per run
    leg = 100_000 + seed * 8
    call_id = 1_000_000 + seed
    ext = connector.extension_for(ctx.agent)
    others = [connector.extension_for(o) for o in ctx.others]
    caller = "".join(ch for ch in ctx.caller if ch.isdigit() or ch == "+")
    line = ctx.line or ""
    start = ctx.start.astimezone(connector.config.zone).replace(tzinfo=None, microsecond=0)
    a_end, b_end = end_id(node, leg), end_id(node, leg + 2)
    trunk = ("T9001", "Line 1.1")
    d3: list[str] = []
    smdr: list[str] = []

    def a(state: int, **kw) -> str:
        return party(a_end, inbound=True, state=state, cls=SIP_TRUNK, did=line, cli=caller, public=1, **kw)

    def phone(end: str, identity: str, state: int, **kw) -> str:
        return party(end, inbound=False, state=state, cls=SIP_PHONE, identity=identity, cli=caller, **kw)

    def record(**kw) -> str:
        base = dict(caller=caller, direction="I", called=ext, dialled=line, internal=False, call_id=call_id,
                    continuation=False, p1=(f"E{ext}", ext), p2=trunk, caller_ip=ip, caller_leg=leg,
                    called_ip=ip, called_leg=leg + 2)
        base.update(kw)
        return smdr_line(start, **base)

    if scenario in ("answered", "hold"):
        d3.append(detail(node, seed, a(1), phone(b_end, ext, 1)))
        d3.append(detail(node, seed, a(2), phone(b_end, ext, 2)))
        hold = 0
        if scenario == "hold":
            hold = 15
            d3.append(detail(node, seed, a(2, audio=0, tone=1), phone(b_end, ext, 2, audio=0)))
            d3.append(detail(node, seed, a(2), phone(b_end, ext, 2)))
        d3 += [call_lost(node, b_end), call_lost(node, a_end)]
        smdr.append(record(connected=60, ring=7, hold=hold))
    elif scenario in ("missed", "group"):
        ringing = [ext, *others]
        targets = [target(end_id(node, leg + 10 + i), e, caller) for i, e in enumerate(ringing)]
        group = ctx.group or ""
        d3.append(detail(node, seed, a(1), None, targets, group=group))
        if scenario == "group":
            winner = end_id(node, leg + 10)
            d3.append(detail(node, seed, a(2), phone(winner, ext, 2), [], group=group))
            d3 += [call_lost(node, winner), call_lost(node, a_end)]
            smdr.append(record(connected=45, ring=12, called=group or ext, called_leg=leg + 10))
        else:
            d3.append(call_lost(node, a_end))
            smdr.append(record(connected=0, ring=20, called=group or ext, called_ip="0.0.0.0", called_leg=0,
                               p1=(f"E{ext}", ext) if not group and not others else ("V8000", "U1 0.0")))
    elif scenario == "transfer":
        if not others:
            raise RequestError("the transfer scenario needs a target (--transfer-to)", error_id="bad_scenario")
        other, c_end = others[0], end_id(node, leg + 4)
        d3.append(detail(node, seed, a(1), phone(b_end, ext, 1)))
        d3.append(detail(node, seed, a(2), phone(b_end, ext, 2)))
        d3.append(detail(node, seed, a(2), phone(c_end, other, 2)))
        d3 += [call_lost(node, b_end, 126), call_lost(node, c_end), call_lost(node, a_end)]
        smdr.append(record(connected=30, ring=5, continuation=True))
        smdr.append(record(connected=40, ring=0, p1=(f"E{other}", other), called_leg=leg + 4))
    elif scenario == "outbound_no_answer":
        a_out = party(a_end, inbound=False, state=7, cls=SIP_PHONE, identity=ext)
        b_out = party(b_end, inbound=False, state=19, cls=SIP_TRUNK, target_number=caller, public=1)
        d3.append(detail(node, seed, a_out, b_out))
        d3 += [call_lost(node, b_end, 18), call_lost(node, a_end)]
        smdr.append(smdr_line(start, connected=0, ring=25, caller=ext, direction="O", called=caller,
                              dialled=caller, internal=False, call_id=call_id, continuation=False,
                              p1=(f"E{ext}", ext), p2=trunk, cause="U", targeter=ext, caller_ip=ip,
                              caller_leg=leg, called_ip=ip, called_leg=leg + 2))
    # method = the socket, path empty: these are not HTTP requests (send() plays them over TCP)
    return ([SimulatedRequest("DEVLINK3", "", {}, t.encode(), f"Delta3 <{t[1:t.index('>')]}> on the DevLink3 link")
             for t in d3]
            + [SimulatedRequest("SMDR", "", {}, (line_ + "\r\n").encode(), "SMDR record") for line_ in smdr])


def _ipv4(host: str) -> str:
    parts = host.split(".")
    if len(parts) == 4 and all(ascii_digits(p) and len(p) <= 3 and int(p) < 256 for p in parts):
        return host
    return "127.0.0.1"


# -- sending -------------------------------------------------------------------------------------
async def send(connector, requests: list[SimulatedRequest], *, report: Callable[[str], None]) -> None:
    from ctid_avaya.ipo_side import IpoSession, SessionClosed

    sim = connector.config.simulation
    if sim is None:
        raise RequestError(f"connector {connector.name!r} has no simulation: block (simulation.devlink3_port / "
                           "smdr_port)", error_id="no_simulation")
    texts = [r.body.decode() for r in requests if r.method == "DEVLINK3"]
    lines = b"".join(r.body for r in requests if r.method == "SMDR")
    if texts:
        if sim.devlink3_port is None or connector.config.devlink3 is None:
            raise RequestError("simulation.devlink3_port and devlink3 are needed to simulate DevLink3",
                               error_id="no_simulation")
        cfg = connector.config.devlink3
        try:
            stream = await trio.open_tcp_stream(sim.host, sim.devlink3_port)
        except OSError as exc:
            raise PBXError(f"cannot reach ctid's DevLink3 simulation port {sim.host}:{sim.devlink3_port}: {exc}",
                           error_id="unreachable") from exc
        async with stream:
            session = IpoSession(stream, {cfg.username: cfg.password.get_secret_value()})
            try:
                with trio.fail_after(10):
                    await session.handshake()
            except (SessionClosed, trio.TooSlowError) as exc:
                raise RequestError(f"ctid's DevLink3 login failed: {exc}", error_id="simulation_rejected") from exc
            for text in texts:
                await session.send_delta3(text)
                report(f"DEVLINK3 {text[:100]}")
                await trio.sleep(0.05)
            # Half-close and wait for ctid to hang up: it reads in order, so by then every event
            # was handled, and the SMDR lines below (sent at the call's end, as the unit does) meet it.
            await stream.send_eof()
            with trio.move_on_after(10):
                while await stream.receive_some(65536):
                    pass
    if lines:
        port = sim.smdr_port if sim.smdr_port is not None else (
            connector.config.smdr.listen_address()[1] if connector.config.smdr.mode == "listen" else None)
        if port is None:
            raise RequestError("simulation.smdr_port is needed to simulate SMDR in connect mode",
                               error_id="no_simulation")
        try:
            stream = await trio.open_tcp_stream(sim.host, port)
        except OSError as exc:
            raise PBXError(f"cannot reach ctid's SMDR port {sim.host}:{port}: {exc}", error_id="unreachable") from exc
        async with stream:
            await stream.send_all(lines)
        for line in lines.decode().splitlines():
            report(f"SMDR {line}")


def shifted(ctx: SimulationContext, minutes: int) -> SimulationContext:
    ctx.start = ctx.start - timedelta(minutes=minutes)
    return ctx
