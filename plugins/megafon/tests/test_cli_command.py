"""`ctid megafon ...` reaches the plugin's commands through the `ctid.commands` entry point."""

from __future__ import annotations

import subprocess
import sys


def test_ctid_megafon_import_users_is_a_ctid_command():
    result = subprocess.run([sys.executable, "-m", "ctid", "megafon", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "import-users" in result.stdout and "ctid megafon" in result.stdout
    missing = subprocess.run([sys.executable, "-m", "ctid", "megafon", "import-users", "-c", "/nonexistent.yaml"],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
