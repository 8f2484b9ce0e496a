"""scripts/setup on a machine without pip: python3-pip comes from apt first (Debian 12 lacks it)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SETUP = Path(__file__).resolve().parent.parent / "scripts" / "setup"

SHIMS = {
    # python3: `-m pip --version` fails until apt-get made the marker; other pip calls are recorded
    "python3": """#!/bin/sh
echo "python3 $*" >> "$SHIM_LOG"
if [ "$1 $2 $3" = "-m pip --version" ] && [ ! -f "$SHIM_DIR/pip-installed" ]; then
  echo "/usr/bin/python3: No module named pip" >&2; exit 1
fi
exit 0
""",
    "apt-get": """#!/bin/sh
echo "apt-get $*" >> "$SHIM_LOG"
case " $* " in *" python3-pip "*) touch "$SHIM_DIR/pip-installed";; esac
exit 0
""",
    "sudo": """#!/bin/sh
exec "$@"
""",
}


def run_setup(tmp_path: Path, *, pip_present: bool) -> list[str]:
    shims = tmp_path / "bin"
    shims.mkdir()
    for name, text in SHIMS.items():
        (shims / name).write_text(text)
        (shims / name).chmod(0o755)
    if pip_present:
        (shims / "pip-installed").touch()
    log = tmp_path / "log"
    env = {**os.environ, "PATH": f"{shims}:/usr/bin:/bin", "SHIM_LOG": str(log), "SHIM_DIR": str(shims)}
    result = subprocess.run(["bash", str(SETUP)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return log.read_text().splitlines()


def test_missing_pip_is_installed_with_apt_before_pip_is_used(tmp_path: Path) -> None:
    calls = run_setup(tmp_path, pip_present=False)
    installs = [index for index, call in enumerate(calls) if call.startswith("apt-get install")]
    assert len(installs) == 1 and "python3-pip" in calls[installs[0]].split()
    assert "python3-venv" not in calls[installs[0]]
    first_pip_install = calls.index("python3 -m pip install -q -e .")
    assert installs[0] < first_pip_install


def test_present_pip_needs_no_apt(tmp_path: Path) -> None:
    calls = run_setup(tmp_path, pip_present=True)
    assert not [call for call in calls if call.startswith("apt-get")]
    assert "python3 -m pip install -q -e ." in calls
