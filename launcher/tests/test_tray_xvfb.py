"""The real tray under Xvfb with a real tray manager (Debian's ``xvfb`` and ``trayer``): pystray's
xorg backend docks the launcher's icon, the icon follows the status, and a screenshot is kept as a
test artefact (launcher/tests/artifacts/tray.png, ignored by git)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts"


def _tray_owner(env: dict[str, str]) -> bool:
    """Whether a tray manager owns the XEmbed system tray selection of screen 0 on ``env``'s display."""
    from Xlib import X, display

    screen = display.Display(env["DISPLAY"])
    try:
        return screen.get_selection_owner(screen.intern_atom("_NET_SYSTEM_TRAY_S0")) != X.NONE
    finally:
        screen.close()


@pytest.fixture
def x_display(tmp_path):
    xvfb, trayer = shutil.which("Xvfb"), shutil.which("trayer")
    assert xvfb and trayer, "Xvfb / trayer missing: scripts/setup --test installs Debian's xvfb and trayer"
    # -displayfd: Xvfb takes a free display and writes its number once it accepts connections
    reader, writer = os.pipe()
    log = tmp_path / "xvfb.log"
    with log.open("wb") as sink:
        server = subprocess.Popen([xvfb, "-displayfd", str(writer), "-screen", "0", "640x120x24", "-nolisten", "tcp"],
                                  pass_fds=(writer,), stdout=subprocess.DEVNULL, stderr=sink)
    os.close(writer)
    with os.fdopen(reader) as ready:
        number = ready.readline().strip()
    assert number, f"Xvfb did not start: {log.read_text(errors='replace')[-2000:]}"
    env = {**os.environ, "DISPLAY": f":{number}"}
    panel = subprocess.Popen([trayer, "--edge", "top", "--align", "right", "--width", "120", "--height", "48",
                              "--widthtype", "pixel", "--heighttype", "pixel", "--transparent", "false"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30  # trayer is a separate process: nothing to wait on but the X server
    while not _tray_owner(env):
        assert panel.poll() is None, f"trayer exited with {panel.returncode}"
        assert time.monotonic() < deadline, "trayer did not take the system tray selection within 30 s"
        time.sleep(0.05)
    yield env
    panel.terminate()
    server.terminate()
    panel.wait(5)
    server.wait(5)


def test_tray_icon_docks_and_follows_the_status(x_display):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "tray.png"
    env = {**x_display, "PYSTRAY_BACKEND": "xorg", "CTID_LAUNCHER_LANG": "en"}
    done = subprocess.run([sys.executable, str(Path(__file__).parent / "tray_smoke.py"), str(shot)],
                          env=env, capture_output=True, text=True, timeout=90)
    print(done.stderr)  # the smoke's timings, shown when a later assertion fails
    assert done.returncode == 0, done.stderr  # a wedge shows every thread's stack (tray_smoke's watchdog)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"tray screenshot: {shot}")
    assert shot.exists() and shot.stat().st_size > 0
    # each status's colour is on screen while that status is shown (the icon is docked and redrawn)
    assert all(count > 20 for count in result["pixels"].values()), result
    assert result["title"] == "ctid: away"
