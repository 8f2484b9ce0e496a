"""Windows: ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run`` (no admin rights), read
together with ``...\\Explorer\\StartupApproved\\Run``, where Task Manager / Settings → Startup apps
keep the user's "disabled" (binary, first byte 2 = enabled, 3 = disabled). The launcher never
silently re-enables what the user disabled there. The registry sits behind a small interface so
that tests use a dict."""

from __future__ import annotations

import subprocess

from ctid_launcher.autostart import AutostartStatus

RUN = r"Software\Microsoft\Windows\CurrentVersion\Run"
APPROVED = r"Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run"
VALUE = "ctid-launcher"


class WinregRegistry:
    """HKEY_CURRENT_USER through the standard library's winreg."""

    def get(self, key: str, name: str):
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key) as handle:
                return winreg.QueryValueEx(handle, name)[0]
        except FileNotFoundError:
            return None

    def set(self, key: str, name: str, value: str) -> None:
        import winreg

        with winreg.CreateKey(winreg.HKEY_CURRENT_USER, key) as handle:
            winreg.SetValueEx(handle, name, 0, winreg.REG_SZ, value)

    def delete(self, key: str, name: str) -> None:
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key, 0, winreg.KEY_SET_VALUE) as handle:
                winreg.DeleteValue(handle, name)
        except FileNotFoundError:
            pass


class WindowsAutostart:
    def __init__(self, registry=None):
        self.registry = registry or WinregRegistry()

    def enable(self, command: list[str]) -> AutostartStatus:
        line = subprocess.list2cmdline(command)
        if len(line) > 260:
            raise ValueError(f"the Run-key command line is longer than 260 characters: {line}")
        self.registry.set(RUN, VALUE, line)
        return self.status()

    def disable(self) -> AutostartStatus:
        self.registry.delete(RUN, VALUE)
        return self.status()

    def status(self) -> AutostartStatus:
        where = rf"HKCU\{RUN}\{VALUE}"
        if self.registry.get(RUN, VALUE) is None:
            return AutostartStatus(False, False, where)
        approved = self.registry.get(APPROVED, VALUE)
        enabled = approved is None or (isinstance(approved, bytes | bytearray) and len(approved) > 0
                                       and approved[0] == 2)
        return AutostartStatus(True, enabled, where)
