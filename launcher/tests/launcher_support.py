"""What the launcher's tests share: constants of their ``ctid serve`` fixture (tests/conftest.py) and
the real launcher run as a subprocess (the end-to-end tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

SECRET = "e2e-webhook-secret"
PASSWORDS = {"alice": "alice-pw", "super": "super-pw"}


class LauncherProcess:
    def __init__(self, tmp_path: Path, server_url: str):
        self.home = tmp_path / "launcher"
        self.session = tmp_path / "session.txt"
        self.opened = tmp_path / "opened.txt"
        self.log = tmp_path / "launcher.log"
        self.session.write_text("")
        self.env = {**os.environ, "CTID_LAUNCHER_HOME": str(self.home), "CTID_LAUNCHER_KEYRING": "file",
                    "CTID_LAUNCHER_LANG": "en", "RECORDER_FILE": str(self.opened),
                    "BROWSER": f"{sys.executable} {HERE / 'browser_recorder.py'} %s"}
        self.server_url = server_url
        self.proc: subprocess.Popen | None = None

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ctid_launcher", *args], input=stdin, env=self.env,
                              capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        with self.log.open("a") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "ctid_launcher", "run", "--no-tray",
                                          "--session-source", f"fake:{self.session}"],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def session_event(self, line: str) -> None:
        with self.session.open("a") as out:
            out.write(line + "\n")

    def urls(self) -> list[str]:
        return self.opened.read_text().splitlines() if self.opened.exists() else []
