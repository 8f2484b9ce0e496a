"""macOS: a LaunchAgent plist in ``~/Library/LaunchAgents`` with ``RunAtLoad`` (best effort:
untested without a Mac; ``launchctl`` picks it up at the next login)."""

from __future__ import annotations

import plistlib
from pathlib import Path

from ctid_launcher.autostart import AutostartStatus

LABEL = "org.ctid.launcher"


class MacAutostart:
    def __init__(self, home: Path | None = None):
        self.path = (home or Path.home()) / "Library" / "LaunchAgents" / f"{LABEL}.plist"

    def enable(self, command: list[str]) -> AutostartStatus:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(plistlib.dumps({"Label": LABEL, "ProgramArguments": command, "RunAtLoad": True,
                                              "ProcessType": "Interactive"}))
        return self.status()

    def disable(self) -> AutostartStatus:
        self.path.unlink(missing_ok=True)
        return self.status()

    def status(self) -> AutostartStatus:
        if not self.path.exists():
            return AutostartStatus(False, False, str(self.path))
        data = plistlib.loads(self.path.read_bytes())
        return AutostartStatus(True, not data.get("Disabled", False) and data.get("RunAtLoad", False), str(self.path))
