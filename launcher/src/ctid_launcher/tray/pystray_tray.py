"""The tray icon with pystray, in its own thread (Windows, Linux; macOS would need the main thread,
see README). Menu: the four statuses, open panel, sign out, quit. pystray's xorg backend has no
menu (the reference, §2.1): there the icon shows the status and the panel does the rest."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ctid_launcher.i18n import t
from ctid_launcher.policy import STATUSES
from ctid_launcher.tray.base import Action
from ctid_launcher.tray.icons import image

log = logging.getLogger(__name__)


class PystrayTray:
    def __init__(self) -> None:
        import pystray  # imported here: it needs a display on Linux

        self._pystray = pystray
        self._icon = None
        self._thread: threading.Thread | None = None
        self.status = "offline"
        self.visible = threading.Event()

    def _menu(self, on_action: Callable[[Action], None]):
        item, menu = self._pystray.MenuItem, self._pystray.Menu

        def choose(status: str):
            return item(t(status), lambda _icon, _item: on_action(("status", status)),
                        checked=lambda _item: self.status == status, radio=True)

        return menu(
            item(t("status_menu"), menu(*[choose(s) for s in STATUSES])),
            item(t("open_panel"), lambda _icon, _item: on_action(("open_panel",)), default=True),
            menu.SEPARATOR,
            item(t("sign_out"), lambda _icon, _item: on_action(("sign_out",))),
            item(t("quit"), lambda _icon, _item: on_action(("quit",))),
        )

    def start(self, on_action: Callable[[Action], None]) -> None:
        self._icon = self._pystray.Icon("ctid-launcher", image("offline"), "ctid", menu=self._menu(on_action))

        def setup(icon) -> None:
            icon.visible = True
            self.visible.set()

        self._thread = threading.Thread(target=self._icon.run, kwargs={"setup": setup}, name="ctid-tray", daemon=True)
        self._thread.start()

    def show(self, icon: str, tooltip: str) -> None:
        if icon in STATUSES:
            self.status = icon
        if self._icon is not None:
            self._icon.icon = image(icon)
            self._icon.title = tooltip
            try:
                self._icon.update_menu()
            except NotImplementedError:  # xorg: no menu
                pass

    @property
    def HAS_NOTIFICATION(self) -> bool:  # noqa: N802 - pystray's name
        return bool(self._icon is not None and getattr(self._icon, "HAS_NOTIFICATION", False))

    def notify(self, title: str, text: str) -> None:
        if self.HAS_NOTIFICATION:
            self._icon.notify(text, title)

    def stop(self) -> None:
        if self._icon is not None:
            self._icon.stop()
        if self._thread is not None:
            self._thread.join(5)
