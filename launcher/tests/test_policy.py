"""The presence policy, table-driven: every (chosen status × launcher overlay × on a call × event)
row, plus invariants over random event sequences (hypothesis) that state the rules independently
of the table.

Row: ``<status>/<source> <overlay> <idle|call> <event> <commands> <status after>/<source after>``.
Overlays: ``none``; ``locked`` (the workstation is locked: an available agent was lowered to away
by the launcher, which will restore it); ``lapsed`` (the launcher's lease lapsed: ctid made an
available agent away with source ``lease``).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctid_launcher.policy import (
    AVAILABLE,
    AWAY,
    DND,
    LAUNCHER,
    LEASE,
    USER,
    EndLease,
    Event,
    Kind,
    SetStatus,
    State,
    launcher_may_set,
    step,
    tray_view,
)

EVENTS = {
    "started": Event(Kind.STARTED),
    "started_locked": Event(Kind.STARTED, locked=True),
    "lock": Event(Kind.LOCKED),
    "unlock": Event(Kind.UNLOCKED),
    "disconnect": Event(Kind.DISCONNECTED),
    "connect_locked": Event(Kind.CONNECTED, locked=True),
    "connect_unlocked": Event(Kind.CONNECTED, locked=False),
    "suspend": Event(Kind.SUSPEND),
    "resume_unlocked": Event(Kind.RESUME, locked=False),
    "logoff": Event(Kind.LOGOFF),
    "call_start": Event(Kind.CALL_STARTED),
    "call_end": Event(Kind.CALL_ENDED),
    "person_dnd": Event(Kind.STATUS, status="dnd", source="user"),
    "menu_available": Event(Kind.CHOSEN, status="available"),
}

TABLE = """
available/user      none    idle  started           -                                        available/user
available/user      none    idle  started_locked    set away/launcher                        away/launcher
available/user      none    idle  lock              set away/launcher                        away/launcher
available/user      none    idle  unlock            -                                        available/user
available/user      none    idle  disconnect        set away/launcher                        away/launcher
available/user      none    idle  connect_locked    set away/launcher                        away/launcher
available/user      none    idle  connect_unlocked  -                                        available/user
available/user      none    idle  suspend           set away/launcher                        away/launcher
available/user      none    idle  resume_unlocked   -                                        available/user
available/user      none    idle  logoff            set offline/launcher,end lease           offline/launcher
available/user      none    idle  call_start        -                                        available/user
available/user      none    idle  call_end          -                                        available/user
available/user      none    idle  person_dnd        -                                        dnd/user
available/user      none    idle  menu_available    set available/user                       available/user
available/user      none    call  started           -                                        available/user
available/user      none    call  started_locked    -                                        available/user
available/user      none    call  lock              -                                        available/user
available/user      none    call  unlock            -                                        available/user
available/user      none    call  disconnect        -                                        available/user
available/user      none    call  connect_locked    -                                        available/user
available/user      none    call  connect_unlocked  -                                        available/user
available/user      none    call  suspend           -                                        available/user
available/user      none    call  resume_unlocked   -                                        available/user
available/user      none    call  logoff            set offline/launcher,end lease           offline/launcher
available/user      none    call  call_start        -                                        available/user
available/user      none    call  call_end          -                                        available/user
available/user      none    call  person_dnd        -                                        dnd/user
available/user      none    call  menu_available    set available/user                       available/user
available/user      locked  idle  started           set available/launcher                   available/launcher
available/user      locked  idle  started_locked    -                                        away/launcher
available/user      locked  idle  lock              -                                        away/launcher
available/user      locked  idle  unlock            set available/launcher                   available/launcher
available/user      locked  idle  disconnect        -                                        away/launcher
available/user      locked  idle  connect_locked    -                                        away/launcher
available/user      locked  idle  connect_unlocked  set available/launcher                   available/launcher
available/user      locked  idle  suspend           -                                        away/launcher
available/user      locked  idle  resume_unlocked   set available/launcher                   available/launcher
available/user      locked  idle  logoff            set offline/launcher,end lease           offline/launcher
available/user      locked  idle  call_start        -                                        away/launcher
available/user      locked  idle  call_end          -                                        away/launcher
available/user      locked  idle  person_dnd        -                                        dnd/user
available/user      locked  idle  menu_available    set available/user                       available/user
available/user      locked  call  started           -                                        away/launcher
available/user      locked  call  started_locked    -                                        away/launcher
available/user      locked  call  lock              -                                        away/launcher
available/user      locked  call  unlock            -                                        away/launcher
available/user      locked  call  disconnect        -                                        away/launcher
available/user      locked  call  connect_locked    -                                        away/launcher
available/user      locked  call  connect_unlocked  -                                        away/launcher
available/user      locked  call  suspend           -                                        away/launcher
available/user      locked  call  resume_unlocked   -                                        away/launcher
available/user      locked  call  logoff            set offline/launcher,end lease           offline/launcher
available/user      locked  call  call_start        -                                        away/launcher
available/user      locked  call  call_end          -                                        away/launcher
available/user      locked  call  person_dnd        -                                        dnd/user
available/user      locked  call  menu_available    set available/user                       available/user
available/user      lapsed  idle  started           set available/launcher                   available/launcher
available/user      lapsed  idle  started_locked    -                                        away/lease
available/user      lapsed  idle  lock              -                                        away/lease
available/user      lapsed  idle  unlock            set available/launcher                   available/launcher
available/user      lapsed  idle  disconnect        -                                        away/lease
available/user      lapsed  idle  connect_locked    -                                        away/lease
available/user      lapsed  idle  connect_unlocked  set available/launcher                   available/launcher
available/user      lapsed  idle  suspend           -                                        away/lease
available/user      lapsed  idle  resume_unlocked   set available/launcher                   available/launcher
available/user      lapsed  idle  logoff            set offline/launcher,end lease           offline/launcher
available/user      lapsed  idle  call_start        -                                        away/lease
available/user      lapsed  idle  call_end          set available/launcher                   available/launcher
available/user      lapsed  idle  person_dnd        -                                        dnd/user
available/user      lapsed  idle  menu_available    set available/user                       available/user
available/user      lapsed  call  started           -                                        away/lease
available/user      lapsed  call  started_locked    -                                        away/lease
available/user      lapsed  call  lock              -                                        away/lease
available/user      lapsed  call  unlock            -                                        away/lease
available/user      lapsed  call  disconnect        -                                        away/lease
available/user      lapsed  call  connect_locked    -                                        away/lease
available/user      lapsed  call  connect_unlocked  -                                        away/lease
available/user      lapsed  call  suspend           -                                        away/lease
available/user      lapsed  call  resume_unlocked   -                                        away/lease
available/user      lapsed  call  logoff            set offline/launcher,end lease           offline/launcher
available/user      lapsed  call  call_start        -                                        away/lease
available/user      lapsed  call  call_end          set available/launcher                   available/launcher
available/user      lapsed  call  person_dnd        -                                        dnd/user
available/user      lapsed  call  menu_available    set available/user                       available/user
available/launcher  none    idle  started           -                                        available/launcher
available/launcher  none    idle  started_locked    set away/launcher                        away/launcher
available/launcher  none    idle  lock              set away/launcher                        away/launcher
available/launcher  none    idle  unlock            -                                        available/launcher
available/launcher  none    idle  disconnect        set away/launcher                        away/launcher
available/launcher  none    idle  connect_locked    set away/launcher                        away/launcher
available/launcher  none    idle  connect_unlocked  -                                        available/launcher
available/launcher  none    idle  suspend           set away/launcher                        away/launcher
available/launcher  none    idle  resume_unlocked   -                                        available/launcher
available/launcher  none    idle  logoff            set offline/launcher,end lease           offline/launcher
available/launcher  none    idle  call_start        -                                        available/launcher
available/launcher  none    idle  call_end          -                                        available/launcher
available/launcher  none    idle  person_dnd        -                                        dnd/user
available/launcher  none    idle  menu_available    set available/user                       available/user
available/launcher  none    call  started           -                                        available/launcher
available/launcher  none    call  started_locked    -                                        available/launcher
available/launcher  none    call  lock              -                                        available/launcher
available/launcher  none    call  unlock            -                                        available/launcher
available/launcher  none    call  disconnect        -                                        available/launcher
available/launcher  none    call  connect_locked    -                                        available/launcher
available/launcher  none    call  connect_unlocked  -                                        available/launcher
available/launcher  none    call  suspend           -                                        available/launcher
available/launcher  none    call  resume_unlocked   -                                        available/launcher
available/launcher  none    call  logoff            set offline/launcher,end lease           offline/launcher
available/launcher  none    call  call_start        -                                        available/launcher
available/launcher  none    call  call_end          -                                        available/launcher
available/launcher  none    call  person_dnd        -                                        dnd/user
available/launcher  none    call  menu_available    set available/user                       available/user
available/launcher  locked  idle  started           set available/launcher                   available/launcher
available/launcher  locked  idle  started_locked    -                                        away/launcher
available/launcher  locked  idle  lock              -                                        away/launcher
available/launcher  locked  idle  unlock            set available/launcher                   available/launcher
available/launcher  locked  idle  disconnect        -                                        away/launcher
available/launcher  locked  idle  connect_locked    -                                        away/launcher
available/launcher  locked  idle  connect_unlocked  set available/launcher                   available/launcher
available/launcher  locked  idle  suspend           -                                        away/launcher
available/launcher  locked  idle  resume_unlocked   set available/launcher                   available/launcher
available/launcher  locked  idle  logoff            set offline/launcher,end lease           offline/launcher
available/launcher  locked  idle  call_start        -                                        away/launcher
available/launcher  locked  idle  call_end          -                                        away/launcher
available/launcher  locked  idle  person_dnd        -                                        dnd/user
available/launcher  locked  idle  menu_available    set available/user                       available/user
available/launcher  locked  call  started           -                                        away/launcher
available/launcher  locked  call  started_locked    -                                        away/launcher
available/launcher  locked  call  lock              -                                        away/launcher
available/launcher  locked  call  unlock            -                                        away/launcher
available/launcher  locked  call  disconnect        -                                        away/launcher
available/launcher  locked  call  connect_locked    -                                        away/launcher
available/launcher  locked  call  connect_unlocked  -                                        away/launcher
available/launcher  locked  call  suspend           -                                        away/launcher
available/launcher  locked  call  resume_unlocked   -                                        away/launcher
available/launcher  locked  call  logoff            set offline/launcher,end lease           offline/launcher
available/launcher  locked  call  call_start        -                                        away/launcher
available/launcher  locked  call  call_end          -                                        away/launcher
available/launcher  locked  call  person_dnd        -                                        dnd/user
available/launcher  locked  call  menu_available    set available/user                       available/user
available/launcher  lapsed  idle  started           set available/launcher                   available/launcher
available/launcher  lapsed  idle  started_locked    -                                        away/lease
available/launcher  lapsed  idle  lock              -                                        away/lease
available/launcher  lapsed  idle  unlock            set available/launcher                   available/launcher
available/launcher  lapsed  idle  disconnect        -                                        away/lease
available/launcher  lapsed  idle  connect_locked    -                                        away/lease
available/launcher  lapsed  idle  connect_unlocked  set available/launcher                   available/launcher
available/launcher  lapsed  idle  suspend           -                                        away/lease
available/launcher  lapsed  idle  resume_unlocked   set available/launcher                   available/launcher
available/launcher  lapsed  idle  logoff            set offline/launcher,end lease           offline/launcher
available/launcher  lapsed  idle  call_start        -                                        away/lease
available/launcher  lapsed  idle  call_end          set available/launcher                   available/launcher
available/launcher  lapsed  idle  person_dnd        -                                        dnd/user
available/launcher  lapsed  idle  menu_available    set available/user                       available/user
available/launcher  lapsed  call  started           -                                        away/lease
available/launcher  lapsed  call  started_locked    -                                        away/lease
available/launcher  lapsed  call  lock              -                                        away/lease
available/launcher  lapsed  call  unlock            -                                        away/lease
available/launcher  lapsed  call  disconnect        -                                        away/lease
available/launcher  lapsed  call  connect_locked    -                                        away/lease
available/launcher  lapsed  call  connect_unlocked  -                                        away/lease
available/launcher  lapsed  call  suspend           -                                        away/lease
available/launcher  lapsed  call  resume_unlocked   -                                        away/lease
available/launcher  lapsed  call  logoff            set offline/launcher,end lease           offline/launcher
available/launcher  lapsed  call  call_start        -                                        away/lease
available/launcher  lapsed  call  call_end          set available/launcher                   available/launcher
available/launcher  lapsed  call  person_dnd        -                                        dnd/user
available/launcher  lapsed  call  menu_available    set available/user                       available/user
away/user           none    idle  started           -                                        away/user
away/user           none    idle  started_locked    -                                        away/user
away/user           none    idle  lock              -                                        away/user
away/user           none    idle  unlock            -                                        away/user
away/user           none    idle  disconnect        -                                        away/user
away/user           none    idle  connect_locked    -                                        away/user
away/user           none    idle  connect_unlocked  -                                        away/user
away/user           none    idle  suspend           -                                        away/user
away/user           none    idle  resume_unlocked   -                                        away/user
away/user           none    idle  logoff            end lease                                away/user
away/user           none    idle  call_start        -                                        away/user
away/user           none    idle  call_end          -                                        away/user
away/user           none    idle  person_dnd        -                                        dnd/user
away/user           none    idle  menu_available    set available/user                       available/user
away/user           none    call  started           -                                        away/user
away/user           none    call  started_locked    -                                        away/user
away/user           none    call  lock              -                                        away/user
away/user           none    call  unlock            -                                        away/user
away/user           none    call  disconnect        -                                        away/user
away/user           none    call  connect_locked    -                                        away/user
away/user           none    call  connect_unlocked  -                                        away/user
away/user           none    call  suspend           -                                        away/user
away/user           none    call  resume_unlocked   -                                        away/user
away/user           none    call  logoff            end lease                                away/user
away/user           none    call  call_start        -                                        away/user
away/user           none    call  call_end          -                                        away/user
away/user           none    call  person_dnd        -                                        dnd/user
away/user           none    call  menu_available    set available/user                       available/user
away/user           locked  idle  started           -                                        away/user
away/user           locked  idle  started_locked    -                                        away/user
away/user           locked  idle  lock              -                                        away/user
away/user           locked  idle  unlock            -                                        away/user
away/user           locked  idle  disconnect        -                                        away/user
away/user           locked  idle  connect_locked    -                                        away/user
away/user           locked  idle  connect_unlocked  -                                        away/user
away/user           locked  idle  suspend           -                                        away/user
away/user           locked  idle  resume_unlocked   -                                        away/user
away/user           locked  idle  logoff            end lease                                away/user
away/user           locked  idle  call_start        -                                        away/user
away/user           locked  idle  call_end          -                                        away/user
away/user           locked  idle  person_dnd        -                                        dnd/user
away/user           locked  idle  menu_available    set available/user                       available/user
away/user           locked  call  started           -                                        away/user
away/user           locked  call  started_locked    -                                        away/user
away/user           locked  call  lock              -                                        away/user
away/user           locked  call  unlock            -                                        away/user
away/user           locked  call  disconnect        -                                        away/user
away/user           locked  call  connect_locked    -                                        away/user
away/user           locked  call  connect_unlocked  -                                        away/user
away/user           locked  call  suspend           -                                        away/user
away/user           locked  call  resume_unlocked   -                                        away/user
away/user           locked  call  logoff            end lease                                away/user
away/user           locked  call  call_start        -                                        away/user
away/user           locked  call  call_end          -                                        away/user
away/user           locked  call  person_dnd        -                                        dnd/user
away/user           locked  call  menu_available    set available/user                       available/user
away/user           lapsed  idle  started           -                                        away/user
away/user           lapsed  idle  started_locked    -                                        away/user
away/user           lapsed  idle  lock              -                                        away/user
away/user           lapsed  idle  unlock            -                                        away/user
away/user           lapsed  idle  disconnect        -                                        away/user
away/user           lapsed  idle  connect_locked    -                                        away/user
away/user           lapsed  idle  connect_unlocked  -                                        away/user
away/user           lapsed  idle  suspend           -                                        away/user
away/user           lapsed  idle  resume_unlocked   -                                        away/user
away/user           lapsed  idle  logoff            end lease                                away/user
away/user           lapsed  idle  call_start        -                                        away/user
away/user           lapsed  idle  call_end          -                                        away/user
away/user           lapsed  idle  person_dnd        -                                        dnd/user
away/user           lapsed  idle  menu_available    set available/user                       available/user
away/user           lapsed  call  started           -                                        away/user
away/user           lapsed  call  started_locked    -                                        away/user
away/user           lapsed  call  lock              -                                        away/user
away/user           lapsed  call  unlock            -                                        away/user
away/user           lapsed  call  disconnect        -                                        away/user
away/user           lapsed  call  connect_locked    -                                        away/user
away/user           lapsed  call  connect_unlocked  -                                        away/user
away/user           lapsed  call  suspend           -                                        away/user
away/user           lapsed  call  resume_unlocked   -                                        away/user
away/user           lapsed  call  logoff            end lease                                away/user
away/user           lapsed  call  call_start        -                                        away/user
away/user           lapsed  call  call_end          -                                        away/user
away/user           lapsed  call  person_dnd        -                                        dnd/user
away/user           lapsed  call  menu_available    set available/user                       available/user
dnd/user            none    idle  started           -                                        dnd/user
dnd/user            none    idle  started_locked    -                                        dnd/user
dnd/user            none    idle  lock              -                                        dnd/user
dnd/user            none    idle  unlock            -                                        dnd/user
dnd/user            none    idle  disconnect        -                                        dnd/user
dnd/user            none    idle  connect_locked    -                                        dnd/user
dnd/user            none    idle  connect_unlocked  -                                        dnd/user
dnd/user            none    idle  suspend           -                                        dnd/user
dnd/user            none    idle  resume_unlocked   -                                        dnd/user
dnd/user            none    idle  logoff            end lease                                dnd/user
dnd/user            none    idle  call_start        -                                        dnd/user
dnd/user            none    idle  call_end          -                                        dnd/user
dnd/user            none    idle  person_dnd        -                                        dnd/user
dnd/user            none    idle  menu_available    set available/user                       available/user
dnd/user            none    call  started           -                                        dnd/user
dnd/user            none    call  started_locked    -                                        dnd/user
dnd/user            none    call  lock              -                                        dnd/user
dnd/user            none    call  unlock            -                                        dnd/user
dnd/user            none    call  disconnect        -                                        dnd/user
dnd/user            none    call  connect_locked    -                                        dnd/user
dnd/user            none    call  connect_unlocked  -                                        dnd/user
dnd/user            none    call  suspend           -                                        dnd/user
dnd/user            none    call  resume_unlocked   -                                        dnd/user
dnd/user            none    call  logoff            end lease                                dnd/user
dnd/user            none    call  call_start        -                                        dnd/user
dnd/user            none    call  call_end          -                                        dnd/user
dnd/user            none    call  person_dnd        -                                        dnd/user
dnd/user            none    call  menu_available    set available/user                       available/user
dnd/user            locked  idle  started           -                                        dnd/user
dnd/user            locked  idle  started_locked    -                                        dnd/user
dnd/user            locked  idle  lock              -                                        dnd/user
dnd/user            locked  idle  unlock            -                                        dnd/user
dnd/user            locked  idle  disconnect        -                                        dnd/user
dnd/user            locked  idle  connect_locked    -                                        dnd/user
dnd/user            locked  idle  connect_unlocked  -                                        dnd/user
dnd/user            locked  idle  suspend           -                                        dnd/user
dnd/user            locked  idle  resume_unlocked   -                                        dnd/user
dnd/user            locked  idle  logoff            end lease                                dnd/user
dnd/user            locked  idle  call_start        -                                        dnd/user
dnd/user            locked  idle  call_end          -                                        dnd/user
dnd/user            locked  idle  person_dnd        -                                        dnd/user
dnd/user            locked  idle  menu_available    set available/user                       available/user
dnd/user            locked  call  started           -                                        dnd/user
dnd/user            locked  call  started_locked    -                                        dnd/user
dnd/user            locked  call  lock              -                                        dnd/user
dnd/user            locked  call  unlock            -                                        dnd/user
dnd/user            locked  call  disconnect        -                                        dnd/user
dnd/user            locked  call  connect_locked    -                                        dnd/user
dnd/user            locked  call  connect_unlocked  -                                        dnd/user
dnd/user            locked  call  suspend           -                                        dnd/user
dnd/user            locked  call  resume_unlocked   -                                        dnd/user
dnd/user            locked  call  logoff            end lease                                dnd/user
dnd/user            locked  call  call_start        -                                        dnd/user
dnd/user            locked  call  call_end          -                                        dnd/user
dnd/user            locked  call  person_dnd        -                                        dnd/user
dnd/user            locked  call  menu_available    set available/user                       available/user
dnd/user            lapsed  idle  started           -                                        dnd/user
dnd/user            lapsed  idle  started_locked    -                                        dnd/user
dnd/user            lapsed  idle  lock              -                                        dnd/user
dnd/user            lapsed  idle  unlock            -                                        dnd/user
dnd/user            lapsed  idle  disconnect        -                                        dnd/user
dnd/user            lapsed  idle  connect_locked    -                                        dnd/user
dnd/user            lapsed  idle  connect_unlocked  -                                        dnd/user
dnd/user            lapsed  idle  suspend           -                                        dnd/user
dnd/user            lapsed  idle  resume_unlocked   -                                        dnd/user
dnd/user            lapsed  idle  logoff            end lease                                dnd/user
dnd/user            lapsed  idle  call_start        -                                        dnd/user
dnd/user            lapsed  idle  call_end          -                                        dnd/user
dnd/user            lapsed  idle  person_dnd        -                                        dnd/user
dnd/user            lapsed  idle  menu_available    set available/user                       available/user
dnd/user            lapsed  call  started           -                                        dnd/user
dnd/user            lapsed  call  started_locked    -                                        dnd/user
dnd/user            lapsed  call  lock              -                                        dnd/user
dnd/user            lapsed  call  unlock            -                                        dnd/user
dnd/user            lapsed  call  disconnect        -                                        dnd/user
dnd/user            lapsed  call  connect_locked    -                                        dnd/user
dnd/user            lapsed  call  connect_unlocked  -                                        dnd/user
dnd/user            lapsed  call  suspend           -                                        dnd/user
dnd/user            lapsed  call  resume_unlocked   -                                        dnd/user
dnd/user            lapsed  call  logoff            end lease                                dnd/user
dnd/user            lapsed  call  call_start        -                                        dnd/user
dnd/user            lapsed  call  call_end          -                                        dnd/user
dnd/user            lapsed  call  person_dnd        -                                        dnd/user
dnd/user            lapsed  call  menu_available    set available/user                       available/user
offline/user        none    idle  started           set available/launcher                   available/launcher
offline/user        none    idle  started_locked    -                                        offline/user
offline/user        none    idle  lock              -                                        offline/user
offline/user        none    idle  unlock            -                                        offline/user
offline/user        none    idle  disconnect        -                                        offline/user
offline/user        none    idle  connect_locked    -                                        offline/user
offline/user        none    idle  connect_unlocked  -                                        offline/user
offline/user        none    idle  suspend           -                                        offline/user
offline/user        none    idle  resume_unlocked   -                                        offline/user
offline/user        none    idle  logoff            end lease                                offline/user
offline/user        none    idle  call_start        -                                        offline/user
offline/user        none    idle  call_end          -                                        offline/user
offline/user        none    idle  person_dnd        -                                        dnd/user
offline/user        none    idle  menu_available    set available/user                       available/user
offline/user        none    call  started           -                                        offline/user
offline/user        none    call  started_locked    -                                        offline/user
offline/user        none    call  lock              -                                        offline/user
offline/user        none    call  unlock            -                                        offline/user
offline/user        none    call  disconnect        -                                        offline/user
offline/user        none    call  connect_locked    -                                        offline/user
offline/user        none    call  connect_unlocked  -                                        offline/user
offline/user        none    call  suspend           -                                        offline/user
offline/user        none    call  resume_unlocked   -                                        offline/user
offline/user        none    call  logoff            end lease                                offline/user
offline/user        none    call  call_start        -                                        offline/user
offline/user        none    call  call_end          -                                        offline/user
offline/user        none    call  person_dnd        -                                        dnd/user
offline/user        none    call  menu_available    set available/user                       available/user
offline/user        locked  idle  started           set available/launcher                   available/launcher
offline/user        locked  idle  started_locked    -                                        offline/user
offline/user        locked  idle  lock              -                                        offline/user
offline/user        locked  idle  unlock            -                                        offline/user
offline/user        locked  idle  disconnect        -                                        offline/user
offline/user        locked  idle  connect_locked    -                                        offline/user
offline/user        locked  idle  connect_unlocked  -                                        offline/user
offline/user        locked  idle  suspend           -                                        offline/user
offline/user        locked  idle  resume_unlocked   -                                        offline/user
offline/user        locked  idle  logoff            end lease                                offline/user
offline/user        locked  idle  call_start        -                                        offline/user
offline/user        locked  idle  call_end          -                                        offline/user
offline/user        locked  idle  person_dnd        -                                        dnd/user
offline/user        locked  idle  menu_available    set available/user                       available/user
offline/user        locked  call  started           -                                        offline/user
offline/user        locked  call  started_locked    -                                        offline/user
offline/user        locked  call  lock              -                                        offline/user
offline/user        locked  call  unlock            -                                        offline/user
offline/user        locked  call  disconnect        -                                        offline/user
offline/user        locked  call  connect_locked    -                                        offline/user
offline/user        locked  call  connect_unlocked  -                                        offline/user
offline/user        locked  call  suspend           -                                        offline/user
offline/user        locked  call  resume_unlocked   -                                        offline/user
offline/user        locked  call  logoff            end lease                                offline/user
offline/user        locked  call  call_start        -                                        offline/user
offline/user        locked  call  call_end          -                                        offline/user
offline/user        locked  call  person_dnd        -                                        dnd/user
offline/user        locked  call  menu_available    set available/user                       available/user
offline/user        lapsed  idle  started           set available/launcher                   available/launcher
offline/user        lapsed  idle  started_locked    -                                        offline/user
offline/user        lapsed  idle  lock              -                                        offline/user
offline/user        lapsed  idle  unlock            -                                        offline/user
offline/user        lapsed  idle  disconnect        -                                        offline/user
offline/user        lapsed  idle  connect_locked    -                                        offline/user
offline/user        lapsed  idle  connect_unlocked  -                                        offline/user
offline/user        lapsed  idle  suspend           -                                        offline/user
offline/user        lapsed  idle  resume_unlocked   -                                        offline/user
offline/user        lapsed  idle  logoff            end lease                                offline/user
offline/user        lapsed  idle  call_start        -                                        offline/user
offline/user        lapsed  idle  call_end          -                                        offline/user
offline/user        lapsed  idle  person_dnd        -                                        dnd/user
offline/user        lapsed  idle  menu_available    set available/user                       available/user
offline/user        lapsed  call  started           -                                        offline/user
offline/user        lapsed  call  started_locked    -                                        offline/user
offline/user        lapsed  call  lock              -                                        offline/user
offline/user        lapsed  call  unlock            -                                        offline/user
offline/user        lapsed  call  disconnect        -                                        offline/user
offline/user        lapsed  call  connect_locked    -                                        offline/user
offline/user        lapsed  call  connect_unlocked  -                                        offline/user
offline/user        lapsed  call  suspend           -                                        offline/user
offline/user        lapsed  call  resume_unlocked   -                                        offline/user
offline/user        lapsed  call  logoff            end lease                                offline/user
offline/user        lapsed  call  call_start        -                                        offline/user
offline/user        lapsed  call  call_end          -                                        offline/user
offline/user        lapsed  call  person_dnd        -                                        dnd/user
offline/user        lapsed  call  menu_available    set available/user                       available/user
"""


def _state(chosen: str, overlay: str, call: str) -> State:
    status, source = chosen.split("/")
    state = State(status=status, source=source, on_call=call == "call")
    if overlay == "locked":
        state = replace(state, locked=True)
        if status == AVAILABLE:
            state = replace(state, status=AWAY, source=LAUNCHER, restore=AVAILABLE)
    elif overlay == "lapsed" and status == AVAILABLE:
        state = replace(state, status=AWAY, source=LEASE, restore=AVAILABLE)
    return state


def _commands(text: str) -> list:
    if text == "-":
        return []
    out = []
    for part in text.split(","):
        if part == "end lease":
            out.append(EndLease())
        else:
            status, source = part.removeprefix("set ").split("/")
            out.append(SetStatus(status, source))
    return out


ROWS = [line.split() for line in TABLE.strip().splitlines()]


def test_the_table_covers_every_combination():
    combos = {(r[0], r[1], r[2], r[3]) for r in ROWS}
    chosen = {"available/user", "available/launcher", "away/user", "dnd/user", "offline/user"}
    assert len(combos) == len(ROWS) == len(chosen) * 3 * 2 * len(EVENTS)
    assert {c[0] for c in combos} == chosen and {c[3] for c in combos} == set(EVENTS)


@pytest.mark.parametrize("row", ROWS, ids=["-".join(r[:4]) for r in ROWS])
def test_policy_row(row):
    chosen, overlay, call, event, commands, after = row[0], row[1], row[2], row[3], " ".join(row[4:-1]), row[-1]
    state, out = step(_state(chosen, overlay, call), EVENTS[event])
    assert out == _commands(commands)
    assert f"{state.status}/{state.source}" == after


# --- invariants over random sequences ----------------------------------------------------------

_event = st.sampled_from(list(EVENTS.values())) | st.builds(
    Event, st.just(Kind.STATUS), status=st.sampled_from(["available", "away", "dnd", "offline"]),
    source=st.sampled_from([USER, LAUNCHER, LEASE]))


@given(st.lists(_event, max_size=40), st.sampled_from(["available", "none"]))
def test_invariants_hold_for_any_sequence(events, on_login):
    state = State(on_login=on_login)
    for event in events:
        told = state if event.kind is not Kind.STATUS else replace(state, status=event.status, source=event.source)
        state, commands = step(state, event)
        for command in commands:
            if isinstance(command, SetStatus) and command.source == LAUNCHER:
                assert launcher_may_set(told), (told, event)  # the person beats the launcher
                assert event.kind is Kind.LOGOFF or not state.on_call  # nothing mid-call
                assert not (state.locked and command.status == AVAILABLE)  # never available while locked
        if state.locked and not state.on_call and not state.person_last:
            assert state.status != AVAILABLE  # a settled locked workstation is never available


@given(st.sampled_from(["available/user", "available/launcher", "away/user", "dnd/user", "offline/user"]))
def test_lock_then_unlock_restores_what_was_there(chosen):
    status, source = chosen.split("/")
    state = State(status=status, source=source)
    state, _ = step(state, Event(Kind.LOCKED))
    state, _ = step(state, Event(Kind.UNLOCKED))
    assert state.status == status


def test_a_lock_during_a_call_applies_when_the_call_ends():
    state = State(status=AVAILABLE, source=USER, on_call=True)
    state, out = step(state, Event(Kind.LOCKED))
    assert out == []
    state, out = step(state, Event(Kind.CALL_ENDED))
    assert out == [SetStatus(AWAY, LAUNCHER)]
    state, out = step(state, Event(Kind.UNLOCKED))
    assert out == [SetStatus(AVAILABLE, LAUNCHER)]


def test_a_dnd_set_while_locked_is_not_clobbered_by_the_unlock():
    state, _ = step(State(status=AVAILABLE, source=USER), Event(Kind.LOCKED))
    state, _ = step(state, Event(Kind.STATUS, status=DND, source=USER))  # from the phone or a supervisor
    state, out = step(state, Event(Kind.UNLOCKED))
    assert out == [] and state.status == DND


def test_a_status_the_person_sets_while_locked_stays():
    state, _ = step(State(status=AWAY, source=USER), Event(Kind.LOCKED))
    state, out = step(state, Event(Kind.STATUS, status=AVAILABLE, source=USER))  # from the phone
    assert out == [] and state.status == AVAILABLE
    state, out = step(state, Event(Kind.UNLOCKED))
    state, out = step(state, Event(Kind.LOCKED))  # a new lock lowers it again
    assert out == [SetStatus(AWAY, LAUNCHER)]


def test_started_locked_goes_available_at_the_unlock_only():
    state, out = step(State(status="offline", source=USER), Event(Kind.STARTED, locked=True))
    assert out == []
    state, out = step(state, Event(Kind.UNLOCKED))
    assert out == [SetStatus(AVAILABLE, LAUNCHER)]
    state, out = step(State(status="offline", on_login="none"), Event(Kind.STARTED))
    assert out == []


def test_back_after_a_lapsed_lease_restores_available():
    state = State(status=AVAILABLE, source=LAUNCHER)
    state, out = step(state, Event(Kind.STATUS, status=AWAY, source=LEASE))
    assert out == [SetStatus(AVAILABLE, LAUNCHER)]


@pytest.mark.parametrize(("state", "connected", "signed_in", "view"), [
    (State(status=AVAILABLE), True, True, ("available", "by_user")),
    (State(status=AWAY, source=LAUNCHER, locked=True), True, True, ("away", "locked")),
    (State(status=AWAY, source=LEASE), True, True, ("away", "lease")),
    (State(status=DND), True, True, ("dnd", "by_user")),
    (State(status=AVAILABLE, on_call=True), True, True, ("busy", "on_call")),
    (State(status="offline", source=LAUNCHER), True, True, ("offline", "by_launcher")),
    (State(status=AVAILABLE), False, True, ("disconnected", "disconnected")),
    (State(status=AVAILABLE), True, False, ("offline", "signed_out")),
])
def test_tray_view(state, connected, signed_in, view):
    assert tray_view(state, connected=connected, signed_in=signed_in) == view
