"""Session watchers: where "the workstation is locked / unlocked / asleep" comes from, per OS."""

from __future__ import annotations

import sys

from ctid_launcher.session.base import SessionWatcher


def watcher_for(source: str | None = None) -> SessionWatcher:
    """The watcher for ``source`` (``fake:<file>``) or this OS."""
    if source and source.startswith("fake:"):
        from ctid_launcher.session.fake import FileWatcher

        return FileWatcher(source[5:])
    if source not in (None, "", "auto"):
        raise ValueError(f"unknown session source {source!r} (auto or fake:<file>)")
    if sys.platform == "win32":
        from ctid_launcher.session.windows import WindowsWatcher

        return WindowsWatcher()
    if sys.platform == "darwin":
        from ctid_launcher.session.macos import MacWatcher

        return MacWatcher()
    from ctid_launcher.session.linux import LinuxWatcher

    return LinuxWatcher()
