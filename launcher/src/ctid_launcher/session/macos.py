"""macOS (best effort, untested without a Mac): polls ``CGSSessionScreenIsLocked`` of
``Quartz.CGSessionCopyCurrentDictionary()`` every two seconds (pyobjc-framework-Quartz)."""

from __future__ import annotations

from collections.abc import Callable

import trio

from ctid_launcher.policy import Event, Kind


def _locked_now() -> bool:
    import Quartz  # pyobjc-framework-Quartz

    session = Quartz.CGSessionCopyCurrentDictionary() or {}
    return bool(session.get("CGSSessionScreenIsLocked", 0))


class MacWatcher:
    description = "Quartz CGSSessionScreenIsLocked (polled)"

    def __init__(self, interval: float = 2.0, probe: Callable[[], bool] = _locked_now):
        self.interval, self.probe = interval, probe

    async def locked(self) -> bool:
        return self.probe()

    async def watch(self, emit: Callable[[Event], None]) -> None:
        locked = self.probe()
        while True:
            await trio.sleep(self.interval)
            now = self.probe()
            if now != locked:
                locked = now
                emit(Event(Kind.LOCKED if now else Kind.UNLOCKED))
