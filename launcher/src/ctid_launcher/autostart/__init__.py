"""Start with the session: the Run key on Windows, XDG autostart on Linux, a LaunchAgent on macOS."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AutostartStatus:
    registered: bool  # the entry exists
    enabled: bool  # and the system will run it (not disabled in Task Manager / Hidden=true)
    where: str  # the registry value, file or plist


def launcher_command() -> list[str]:
    """How the OS should start the launcher: the installed script, else this Python with -m."""
    gui = shutil.which("ctid-launcher-tray") if sys.platform == "win32" else None
    script = gui or shutil.which("ctid-launcher")
    return [script, "run", "--autostart"] if script else [sys.executable, "-m", "ctid_launcher", "run", "--autostart"]


def backend():
    if sys.platform == "win32":
        from ctid_launcher.autostart.windows import WindowsAutostart

        return WindowsAutostart()
    if sys.platform == "darwin":
        from ctid_launcher.autostart.macos import MacAutostart

        return MacAutostart()
    from ctid_launcher.autostart.linux import LinuxAutostart

    return LinuxAutostart()
