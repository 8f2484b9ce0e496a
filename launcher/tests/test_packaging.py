"""Packaging: the pynsist installer configuration is valid (the full Windows build needs python.org's
embeddable zip, see README "Windows installer"). The wheel is built and installed by
scripts/wheel-smoke with every other distribution."""

from __future__ import annotations

import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def test_the_installer_configuration_is_valid():
    from nsist.configreader import read_and_validate

    cfg = read_and_validate(str(HERE / "packaging" / "installer.cfg"))
    assert cfg["Application"]["entry_point"] == "ctid_launcher.cli:main_gui"
    assert cfg["Application"]["console"] == "false"  # no console window at logon
    assert cfg["Python"]["bitness"] == "64"
    from ctid_launcher import __version__
    from ctid_launcher.cli import main, main_gui

    assert cfg["Application"]["version"] == __version__ and callable(main) and callable(main_gui)
    script = HERE / "packaging" / "build-windows-installer.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
