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


@pytest.fixture
def x_display():
    xvfb, trayer = shutil.which("Xvfb"), shutil.which("trayer")
    assert xvfb and trayer, "Xvfb / trayer missing: scripts/setup --test installs Debian's xvfb and trayer"
    number = 90 + os.getpid() % 100
    server = subprocess.Popen([xvfb, f":{number}", "-screen", "0", "640x120x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**os.environ, "DISPLAY": f":{number}"}
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        assert time.monotonic() < deadline, "Xvfb did not start"
        time.sleep(0.05)
    panel = subprocess.Popen([trayer, "--edge", "top", "--align", "right", "--width", "120", "--height", "48",
                              "--widthtype", "pixel", "--heighttype", "pixel", "--transparent", "false"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # trayer takes the tray selection (a real process: nothing to wait on)
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
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"tray screenshot: {shot}")
    assert shot.exists() and shot.stat().st_size > 0
    # each status's colour is on screen while that status is shown (the icon is docked and redrawn)
    assert all(count > 20 for count in result["pixels"].values()), result
    assert result["title"] == "ctid: away"
