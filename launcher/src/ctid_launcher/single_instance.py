"""One launcher per user session: a named mutex on Windows (``Local\\ctid-launcher-<user>``: several
RDP users of one terminal server each get their own), an ``flock`` elsewhere."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from ctid_launcher.config import config_dir

ERROR_ALREADY_EXISTS = 183


class AlreadyRunning(Exception):
    pass


class SingleInstance:
    def __init__(self, name: str = "ctid-launcher", lock_dir: Path | None = None):
        self.name = name
        self.lock_dir = lock_dir
        self._handle = None

    def acquire(self) -> None:
        if sys.platform == "win32":
            import ctypes

            kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
            handle = kernel32.CreateMutexW(None, False, f"Local\\{self.name}-{getpass.getuser()}")
            if ctypes.get_last_error() == ERROR_ALREADY_EXISTS:
                kernel32.CloseHandle(handle)
                raise AlreadyRunning(self.name)
            self._handle = handle
            return
        import fcntl

        runtime = os.environ.get("XDG_RUNTIME_DIR")
        directory = self.lock_dir or (Path(runtime) if runtime and not os.environ.get("CTID_LAUNCHER_HOME")
                                      else config_dir())
        directory.mkdir(parents=True, exist_ok=True)
        handle = open(directory / f"{self.name}.lock", "a+")  # noqa: SIM115 - held until release
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            raise AlreadyRunning(self.name) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is None:
            return
        if sys.platform == "win32":
            import ctypes

            ctypes.WinDLL("kernel32").CloseHandle(self._handle)  # type: ignore[attr-defined]
        else:
            self._handle.close()
        self._handle = None

    def __enter__(self) -> SingleInstance:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
