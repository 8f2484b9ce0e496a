"""The tray icon with pystray (Windows, Linux; macOS would need the main thread, see README).
Menu: the four statuses, open panel, sign out, quit. pystray's xorg backend has no menu (the
reference, §2.1): there the icon shows the status and the panel does the rest.

The launcher never waits on the desktop. On xorg every pystray setter is a round trip through
pystray's own X event loop with no timeout, so a wedged or slow tray manager would otherwise freeze
the launcher's Trio loop, and with it presence, the lease and screen pops. Here one thread of ours,
the painter, makes every pystray call; ``show`` and ``notify`` only leave the latest wish for it and
return at once. A watchdog nudges a painter stuck in pystray (python-xlib can lose a wake-up under
load, see ``_nudge``) and logs one stuck for ``stall_after`` seconds, once per stall; a stuck pystray
holds no thread that keeps the process from exiting."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial

from ctid_launcher.i18n import t
from ctid_launcher.policy import STATUSES
from ctid_launcher.tray.base import Action
from ctid_launcher.tray.icons import image

log = logging.getLogger(__name__)


class PystrayTray:
    def __init__(self, stall_after: float = 10.0, stop_within: float = 5.0, nudge_after: float = 1.0,
                 first_refresh: float = 1.0, refresh_every: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        import pystray  # imported here: it needs a display on Linux

        self._pystray = pystray
        self._icon = None
        self._stall_after = stall_after
        self._clock = clock
        self._stop_within = stop_within
        self._nudge_after = nudge_after
        self._first_refresh, self._refresh_every = first_refresh, refresh_every
        self._reported: float | None = None  # the stall already logged
        self.status = "offline"
        #: set once pystray's loop runs and the icon has been made visible
        self.visible = threading.Event()
        self._cond = threading.Condition()
        self._wanted: tuple[str, str] | None = None  # the latest (icon, tooltip) asked for
        self._painted: tuple[str, str] | None = None  # the latest one on screen
        self._notes: deque[tuple[str, str]] = deque(maxlen=20)
        self._stopping = False
        self._busy_since: float | None = None  # when the painter entered its current pystray call
        self._ready = threading.Event()  # pystray's loop is running
        self._threads: list[threading.Thread] = []

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

    # -- the caller's side: never blocks on pystray ------------------------------------------------
    def start(self, on_action: Callable[[Action], None]) -> None:
        self._icon = self._pystray.Icon("ctid-launcher", image("offline"), "ctid", menu=self._menu(on_action))
        # pystray runs ``setup`` in a thread of its own that is not a daemon: it only says "ready", so
        # that thread ends at once and a wedged pystray call (made by the painter, a daemon) can never
        # keep the process alive
        loop = threading.Thread(target=self._icon.run, kwargs={"setup": lambda _icon: self._ready.set()},
                                name="ctid-tray", daemon=True)
        painter = threading.Thread(target=self._paint, name="ctid-tray-paint", daemon=True)
        watchdog = threading.Thread(target=self._watch, name="ctid-tray-watch", daemon=True)
        self._threads = [loop, painter, watchdog]
        for thread in self._threads:
            thread.start()

    def show(self, icon: str, tooltip: str) -> None:
        if icon in STATUSES:
            self.status = icon
        with self._cond:
            self._wanted = (icon, tooltip)
            self._cond.notify_all()

    @property
    def HAS_NOTIFICATION(self) -> bool:  # noqa: N802 - pystray's name
        return bool(self._icon is not None and getattr(self._icon, "HAS_NOTIFICATION", False))

    def notify(self, title: str, text: str) -> None:
        if self.HAS_NOTIFICATION:
            with self._cond:
                self._notes.append((title, text))
                self._cond.notify_all()

    def settle(self, timeout: float) -> bool:
        """Wait until the icon shows the latest state asked for; False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._painted != self._wanted:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + self._stop_within  # all three are daemons: a wedged one is left behind
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        for thread in self._threads:
            if thread.is_alive() and thread.name != "ctid-tray-watch":
                log.warning("tray: thread %s did not end within %g s of stop; leaving it", thread.name,
                            self._stop_within)

    # -- the painter: the only thread that calls pystray -----------------------------------------------
    def _call(self, what: Callable[[], object]) -> bool:
        with self._cond:
            self._busy_since = self._clock()
        try:
            what()
            return True
        except NotImplementedError:  # xorg: no menu
            return True
        except Exception:
            log.exception("tray: pystray failed")
            return False
        finally:
            with self._cond:
                self._busy_since = None

    def _paint(self) -> None:
        while not self._ready.wait(0.5):
            if self._stopping:
                return
        icon = self._icon

        def make_visible() -> None:
            icon.visible = True

        if self._call(make_visible):
            self.visible.set()
        refresh_at = time.monotonic() + self._first_refresh
        while True:
            with self._cond:
                while not self._stopping and self._wanted == self._painted and not self._notes:
                    left = refresh_at - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                stopping, wanted, notes = self._stopping, self._wanted, list(self._notes)
                self._notes.clear()
            if not stopping and time.monotonic() >= refresh_at:
                self._call(partial(self._reassert, icon))
                refresh_at = time.monotonic() + self._refresh_every
            if wanted is not None and wanted != self._painted:
                self._call(partial(self._apply, icon, *wanted))
                with self._cond:
                    self._painted = wanted
                    self._cond.notify_all()
            for title, text in notes:
                self._call(partial(icon.notify, text, title))
            if stopping:  # what was asked before stop is still shown first
                break
        self._call(icon.stop)

    @staticmethod
    def _reassert(icon) -> None:
        """Set the icon again: a second after it became visible, then every ``refresh_every`` seconds.
        On X11 the tray manager embeds the icon's window asynchronously and a picture drawn meanwhile
        is lost (trayer under load: about one start in ten), and a restarted tray manager drops the
        icon (pystray issue #186); pystray re-docks and redraws on every set."""
        icon.icon = icon.icon

    @staticmethod
    def _apply(icon, name: str, tooltip: str) -> None:
        icon.icon = image(name)
        icon.title = tooltip
        icon.update_menu()  # the menu's radio marks follow self.status

    def _watch(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                self._cond.wait(min(1.0, self._nudge_after, self._stall_after / 4))
            self.check_stall()

    def check_stall(self) -> bool:
        """The watchdog's round (each second): nudge a painter stuck in pystray for ``nudge_after`` seconds,
        and log one stuck for ``stall_after`` seconds, once per stall. True when it logged."""
        with self._cond:
            since = self._busy_since
        if since is None:
            return False
        stuck = self._clock() - since
        if stuck >= self._nudge_after:
            log.debug("tray: pystray has been busy for %.1f s: nudging the X connection", stuck)
            self._nudge()
        if since == self._reported or stuck < self._stall_after:
            return False
        log.warning("tray: the tray icon has not answered for %.0f s (the desktop's tray manager may be stuck); "
                    "the launcher goes on without it", stuck)
        self._reported = since
        return True

    def _nudge(self) -> None:
        """Work around a lost wake-up in python-xlib 0.33 (pystray's xorg backend, seen under load): a
        thread that only flushed leaves ``send_and_recv`` by its early return without releasing the
        thread queued for a reply, so pystray's X loop waits for ever on a reply already in the socket
        and every pystray call waits with it. Any later ``send_and_recv`` from another thread takes
        over receiving and releases the waiters on its way out; a flush is one, and is harmless when
        nothing is stuck. Other backends have no X display: nothing to do."""
        display = getattr(self._icon, "_display", None)  # pystray's xorg Icon keeps its Xlib display here
        if display is None or not hasattr(display, "flush"):
            return
        try:
            display.flush()
        except Exception:
            log.debug("tray: nudging the X connection failed", exc_info=True)
