#!/usr/bin/env bash
# Build the Windows installer of ctid-launcher on Linux (pynsist + Debian's nsis):
#   1. the launcher's wheel, and the win_amd64 wheels of its dependencies from PyPI (pip download);
#   2. the tray icon as a Windows .ico (Pillow);
#   3. pynsist installer.cfg → build/nsis/ctid-launcher-setup-<version>.exe.
# pynsist downloads Python's embeddable zip (python-3.11.9-embed-amd64.zip) from python.org unless it
# is already in $PYNSIST_CACHE_DIR (default ~/.cache/pynsist): where python.org cannot be reached, put
# the zip there first. Needs: python3 -m pip install pynsist; apt-get install nsis.
# Usage: launcher/packaging/build-windows-installer.sh
set -euo pipefail
cd "$(dirname "$0")"
rm -rf build && mkdir -p build/wheels
python3 -m pip wheel -q --no-deps -w build/wheels ..
python3 -m pip download -q --only-binary=:all: --platform win_amd64 --python-version 3.11 \
  --implementation cp --abi cp311 --abi none -d build/wheels build/wheels/ctid_launcher-*.whl pywin32-ctypes
# pip evaluates markers such as sys_platform for this Linux machine: keyring's Windows-only dependency
# (pywin32-ctypes) is named above; Linux-only ones it fetched (jeepney, secretstorage, ...) are unused there
rm -f build/wheels/ctid_launcher-*.tar.gz
python3 - <<'PY'
from ctid_launcher.tray.icons import image
image("available", 256).save("build/ctid-launcher.ico", sizes=[(16, 16), (20, 20), (24, 24), (32, 32), (48, 48),
                                                               (256, 256)])
PY
command -v makensis >/dev/null || { echo "makensis missing: apt-get install nsis" >&2; exit 1; }
python3 -m nsist installer.cfg
ls -l build/nsis/*.exe
