"""Run under Xvfb + trayer (tests/test_tray_xvfb.py): show the launcher's tray icon through pystray's
xorg backend, switch it through statuses, and save a screenshot of the screen. Prints a JSON line."""

from __future__ import annotations

import json
import sys
import time

from PIL import Image
from Xlib import X, display

from ctid_launcher.tray.icons import COLOURS
from ctid_launcher.tray.pystray_tray import PystrayTray


def screenshot(path: str) -> Image.Image:
    d = display.Display()
    root = d.screen().root
    geometry = root.get_geometry()
    raw = root.get_image(0, 0, geometry.width, geometry.height, X.ZPixmap, 0xFFFFFFFF)
    img = Image.frombytes("RGB", (geometry.width, geometry.height), raw.data, "raw", "BGRX")
    img.save(path)
    return img


def main(path: str) -> None:
    tray = PystrayTray()
    tray.start(lambda action: None)
    assert tray.visible.wait(10), "the icon never became visible"
    seen = {}
    for status in ("available", "dnd", "disconnected", "away"):
        tray.show(status, f"ctid: {status}")
        deadline = time.monotonic() + 10  # a loaded machine redraws late
        while True:
            time.sleep(0.2)
            img = screenshot(path if status == "away" else path + f".{status}.png")
            seen[status] = sum(1 for pixel in img.getdata() if pixel == COLOURS[status])
            if seen[status] > 20 or time.monotonic() > deadline:
                break
    title = tray._icon.title
    tray.stop()
    print(json.dumps({"pixels": seen, "title": title}))


if __name__ == "__main__":
    main(sys.argv[1])
