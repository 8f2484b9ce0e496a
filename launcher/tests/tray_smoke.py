"""Run under Xvfb + trayer (tests/test_tray_xvfb.py): show the launcher's tray icon through pystray's
xorg backend, switch it through statuses, and save a screenshot of the screen. Prints a JSON line.

Should anything here or in pystray wedge, faulthandler prints every thread's stack to stderr and
ends the run, so the test's failure says where instead of timing out blind."""

from __future__ import annotations

import faulthandler
import json
import logging
import sys
import time

from PIL import Image
from Xlib import X, display

from ctid_launcher.tray.icons import COLOURS
from ctid_launcher.tray.pystray_tray import PystrayTray

WATCHDOG = 50  # seconds; the test waits 90


def screenshot(screen: display.Display, path: str) -> Image.Image:
    root = screen.screen().root
    geometry = root.get_geometry()
    raw = root.get_image(0, 0, geometry.width, geometry.height, X.ZPixmap, 0xFFFFFFFF)
    img = Image.frombytes("RGB", (geometry.width, geometry.height), raw.data, "raw", "BGRX")
    img.save(path)
    return img


def main(path: str) -> None:
    faulthandler.dump_traceback_later(WATCHDOG, exit=True)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(relativeCreated)8.0f ms %(message)s")
    logging.getLogger("ctid_launcher").setLevel(logging.DEBUG)
    started = time.monotonic()

    def say(what: str) -> None:
        print(f"{time.monotonic() - started:6.2f} s {what}", file=sys.stderr, flush=True)

    screen = display.Display()
    tray = PystrayTray()
    tray.start(lambda action: None)
    assert tray.visible.wait(15), "the icon never became visible"
    say("visible")
    seen = {}
    for status in ("available", "dnd", "disconnected", "away"):
        tray.show(status, f"ctid: {status}")
        assert tray.settle(10), f"pystray did not take {status!r} within 10 s"
        deadline = time.monotonic() + 10  # a loaded machine redraws late
        while True:
            img = screenshot(screen, path if status == "away" else path + f".{status}.png")
            counts = {colour: n for n, colour in img.getcolors(img.width * img.height)}
            seen[status] = counts.get(COLOURS[status], 0)
            if seen[status] > 20 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        say(f"{status}: {seen[status]} pixels")
    title = tray._icon.title
    tray.stop()
    say("stopped")
    print(json.dumps({"pixels": seen, "title": title}))


if __name__ == "__main__":
    main(sys.argv[1])
