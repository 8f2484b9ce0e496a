"""The launcher's presence policy: pure (no I/O, no clock), one function from (state, event) to
(state, commands). Everything the launcher does to the agent's status is decided here.

Rules (docs/call-model.md "Presence and the launcher's lease"; the reference's peer survey):

- A status the person set (``source == "user"``) beats the launcher: an away or DND chosen by hand
  is never changed by the launcher (ctid refuses it too: 409 ``status_set_by_user``).
- Lock (also: console/remote disconnect, suspend) → away, only when the agent is available;
  the launcher remembers that it lowered the status (``restore``). A status the person chooses
  while locked (from the phone, another PC) is newer than the lock and stays.
- Unlock → restore what was there: only if the launcher lowered it and nobody changed it since;
  never "available" over an away or DND set by hand.
- Nothing changes mid-call: the change waits for the call to end (only the person's own choice and
  sign-off apply at once).
- Logon / launcher start → available (``on_login="available"``) only when the session is
  unlocked; when it starts locked, at the unlock that follows.
- The lease lapsed (the launcher lost the network) → ctid made the agent away with source
  ``lease``; once back, the launcher restores available as after an unlock.
- Logoff / shutdown → offline, and the lease is ended.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

AVAILABLE, AWAY, DND, OFFLINE = "available", "away", "dnd", "offline"
STATUSES = (AVAILABLE, AWAY, DND, OFFLINE)
USER, LAUNCHER, LEASE = "user", "launcher", "lease"


class Kind(enum.StrEnum):
    STARTED = "started"  # the launcher started (= logon); ``locked`` = the session's state now
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    DISCONNECTED = "disconnected"  # console / remote session disconnected (fast user switching, RDP)
    CONNECTED = "connected"  # reconnected; ``locked`` = the re-queried state
    SUSPEND = "suspend"
    RESUME = "resume"  # ``locked`` = the re-queried state
    LOGOFF = "logoff"  # logoff or shutdown
    CALL_STARTED = "call_started"
    CALL_ENDED = "call_ended"
    STATUS = "status"  # ctid says the status is ``status`` set by ``source`` (hub, REST answer, 409)
    CHOSEN = "chosen"  # the person picked ``status`` in the tray menu


@dataclass(frozen=True, slots=True)
class Event:
    kind: Kind
    locked: bool = False
    status: str | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class SetStatus:
    status: str
    source: str


@dataclass(frozen=True, slots=True)
class EndLease:
    pass


Command = SetStatus | EndLease


@dataclass(frozen=True, slots=True)
class State:
    status: str = OFFLINE  # the agent's status as ctid has it (or will, once our command lands)
    source: str = USER  # who set it
    locked: bool = False  # the workstation overlay: locked, disconnected or asleep
    on_call: bool = False
    restore: str | None = None  # the status the launcher lowered and will restore
    login_pending: bool = False  # started while locked: apply on_login at the next unlock
    person_last: bool = False  # the person chose a status since the last lock: the lock leaves it
    on_login: str = AVAILABLE  # "available" or "none"


def launcher_may_set(state: State) -> bool:
    """The core's rule (ctid.switchboard.launcher_may_set): not over an away / DND set by hand."""
    return not (state.source == USER and state.status in (AWAY, DND))


def step(state: State, event: Event) -> tuple[State, list[Command]]:
    """The new state and the commands for ``event``."""
    kind = event.kind
    if kind is Kind.CHOSEN:  # the person's choice applies at once, even mid-call
        assert event.status in STATUSES
        state = replace(state, status=event.status, source=USER, restore=None, login_pending=False,
                        person_last=True)
        return state, [SetStatus(event.status, USER)]
    if kind is Kind.LOGOFF:
        commands: list[Command] = []
        if launcher_may_set(state) and state.status != OFFLINE:
            commands.append(SetStatus(OFFLINE, LAUNCHER))
            state = replace(state, status=OFFLINE, source=LAUNCHER)
        return replace(state, restore=None, login_pending=False), [*commands, EndLease()]
    if kind is Kind.STATUS:
        assert event.status in STATUSES and event.source in (USER, LAUNCHER, LEASE)
        was = state.status
        state = replace(state, status=event.status, source=event.source)
        if event.source == USER:  # the person's newest choice: nothing to restore, the lock leaves it
            state = replace(state, restore=None, login_pending=False, person_last=True)
        elif event.source == LEASE and was == AVAILABLE:
            state = replace(state, restore=AVAILABLE)  # our lease lapsed: restore once we are back
        return _settle(state)
    if kind is Kind.STARTED:
        state = replace(state, locked=event.locked, login_pending=state.on_login == AVAILABLE, restore=None,
                        person_last=False)
    elif kind in (Kind.LOCKED, Kind.DISCONNECTED, Kind.SUSPEND):
        state = replace(state, locked=True, person_last=False)
    elif kind is Kind.UNLOCKED:
        state = replace(state, locked=False, person_last=False)
    elif kind in (Kind.CONNECTED, Kind.RESUME):
        state = replace(state, locked=event.locked, person_last=False)
    elif kind is Kind.CALL_STARTED:
        state = replace(state, on_call=True)
    elif kind is Kind.CALL_ENDED:
        state = replace(state, on_call=False)
    return _settle(state)


def _settle(state: State) -> tuple[State, list[Command]]:
    """Bring the status in line with the overlay, unless a call is on (then wait for its end)."""
    if state.on_call:
        return state, []
    if state.locked:
        if state.status == AVAILABLE and not state.person_last:
            return replace(state, status=AWAY, source=LAUNCHER, restore=AVAILABLE), [SetStatus(AWAY, LAUNCHER)]
        return state, []
    if state.login_pending:
        state = replace(state, login_pending=False, restore=None)
        if state.status != AVAILABLE and launcher_may_set(state):
            return replace(state, status=AVAILABLE, source=LAUNCHER), [SetStatus(AVAILABLE, LAUNCHER)]
        return state, []
    if state.restore is not None:
        target = state.restore
        state = replace(state, restore=None)
        if state.status == AWAY and state.source in (LAUNCHER, LEASE):  # still as we (or the lease) left it
            return replace(state, status=target, source=LAUNCHER), [SetStatus(target, LAUNCHER)]
    return state, []


def undelivered(state: State, command: SetStatus) -> State:
    """ctid did not get ``command`` (unreachable, or restarting). The state already shows it as
    done; the launcher's own ``available`` (unlock, restore, logon) is tried again once ctid, back,
    says the agent is still away as the launcher or the lease left it (``restore``), unless the
    person chose a status meanwhile. (Its ``away`` needs nothing: back, ctid's ``available`` is
    settled to away again while locked.)"""
    if command == SetStatus(AVAILABLE, LAUNCHER):
        return replace(state, restore=AVAILABLE)
    return state


# --- what the tray shows --------------------------------------------------------------------------

ICONS = ("available", "away", "dnd", "busy", "offline", "disconnected")


def tray_view(state: State, *, connected: bool, signed_in: bool = True) -> tuple[str, str]:
    """The tray icon name (one of ``ICONS``) and the reason key for the tooltip (see i18n)."""
    if not signed_in:
        return "offline", "signed_out"
    if not connected:
        return "disconnected", "disconnected"
    if state.on_call:
        return "busy", "on_call"
    if state.status == AWAY and state.source == LAUNCHER and state.locked:
        return "away", "locked"
    if state.status == AWAY and state.source == LEASE:
        return "away", "lease"
    return state.status, "by_" + state.source
