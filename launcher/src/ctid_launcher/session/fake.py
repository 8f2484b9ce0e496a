"""A scriptable session source for tests and demos: ``--session-source fake:<file>``.

Each line appended to the file is one event: ``lock``, ``unlock``, ``disconnect``,
``connect [locked]``, ``suspend``, ``resume [locked]``, ``logoff``. The file's first line may be
``locked`` for a session that starts locked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import trio

from ctid_launcher.policy import Event, Kind

_KINDS = {"lock": Kind.LOCKED, "unlock": Kind.UNLOCKED, "disconnect": Kind.DISCONNECTED,
          "connect": Kind.CONNECTED, "suspend": Kind.SUSPEND, "resume": Kind.RESUME, "logoff": Kind.LOGOFF}


def parse(line: str) -> Event | None:
    words = line.split()
    if not words or words[0] not in _KINDS:
        return None
    return Event(_KINDS[words[0]], locked=words[1:] == ["locked"])


class FileWatcher:
    def __init__(self, path: str | Path, poll: float = 0.1):
        self.path = Path(path)
        self.poll = poll
        self.description = f"fake session file {self.path}"

    async def locked(self) -> bool:
        try:
            first = self.path.read_text(encoding="utf-8").splitlines()[:1]
        except OSError:
            return False
        return first == ["locked"]

    async def watch(self, emit: Callable[[Event], None]) -> None:
        offset = 0
        while True:
            try:
                data = self.path.read_bytes()
            except OSError:
                data = b""
            if len(data) > offset:
                complete = data[offset:].rsplit(b"\n", 1)[0] if b"\n" in data[offset:] else b""
                if complete:
                    offset += len(complete) + 1
                    for line in complete.decode("utf-8", "replace").splitlines():
                        event = parse(line)
                        if event is not None:
                            emit(event)
            await trio.sleep(self.poll)
