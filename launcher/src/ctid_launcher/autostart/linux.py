"""XDG autostart: ``$XDG_CONFIG_HOME/autostart/ctid-launcher.desktop`` (freedesktop Desktop
Application Autostart Specification; ``Hidden=true`` or ``X-GNOME-Autostart-enabled=false``
disables an entry without removing it, and the launcher never re-enables what the user disabled)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from ctid_launcher.autostart import AutostartStatus


def autostart_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "autostart"


class LinuxAutostart:
    name = "ctid-launcher.desktop"

    @property
    def path(self) -> Path:
        return autostart_dir() / self.name

    def enable(self, command: list[str]) -> AutostartStatus:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(
            "[Desktop Entry]\n"
            "Type=Application\n"
            "Name=ctid launcher\n"
            "Name[ru]=Лаунчер ctid\n"
            "Comment=ctid tray status and CRM pop-up\n"
            "Comment[ru]=Статус ctid в трее и карточка клиента при звонке\n"
            f"Exec={shlex.join(command)}\n"
            "Terminal=false\n"
            "X-GNOME-Autostart-enabled=true\n",
            encoding="utf-8")
        return self.status()

    def disable(self) -> AutostartStatus:
        self.path.unlink(missing_ok=True)
        return self.status()

    def status(self) -> AutostartStatus:
        if not self.path.exists():
            return AutostartStatus(False, False, str(self.path))
        lines = {line.split("=", 1)[0].strip(): line.split("=", 1)[1].strip()
                 for line in self.path.read_text(encoding="utf-8").splitlines() if "=" in line}
        enabled = lines.get("Hidden", "false").lower() != "true" and \
            lines.get("X-GNOME-Autostart-enabled", "true").lower() != "false"
        return AutostartStatus(True, enabled, str(self.path))
