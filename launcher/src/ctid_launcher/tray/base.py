"""What the app needs from a tray: show a status, notify, and report the person's menu choices."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

#: menu actions reported to the app: ("status", <status>), ("open_panel",), ("sign_out",), ("quit",)
Action = tuple[str, ...]


class Tray(Protocol):
    def start(self, on_action: Callable[[Action], None]) -> None:
        """Show the icon; ``on_action`` is called (from any thread) for each menu choice."""

    def show(self, icon: str, tooltip: str) -> None:
        """Switch to the icon of ``icon`` (policy.ICONS) with ``tooltip``."""

    def notify(self, title: str, text: str) -> None: ...

    def stop(self) -> None: ...


class NullTray:
    """No icon (``--no-tray``: terminal servers, CI); remembers what it would show."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, str]] = []
        self.notes: list[tuple[str, str]] = []

    def start(self, on_action: Callable[[Action], None]) -> None:
        self.on_action = on_action

    def show(self, icon: str, tooltip: str) -> None:
        self.shown.append((icon, tooltip))

    def notify(self, title: str, text: str) -> None:
        self.notes.append((title, text))

    def stop(self) -> None:
        pass
