"""Recording files a connector keeps on disk: stored atomically, read back for ``/api/calls/{id}/recording``.

Connectors that copy a PBX's recordings to ctid (MegaFon, CoMagic) keep one file per call in a
directory of their own (``<data_dir>/<recordings_dir>/<instance>/``), named ``<call id>.<ext>``
after its media type. A background download and a user's on-demand fetch of the same call can
finish together. Every write therefore goes through a temporary file with a name of its own in
the same directory, moved into place with ``os.replace`` (atomic on POSIX and Windows): a reader
sees no file, the old one or the new one, never half of one, and neither writer fails because of
the other (the last one to finish wins; both hold the same recording).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import trio

#: Media types ctid stores, and the file extension each is kept under.
EXTENSIONS = {"audio/mpeg": ".mp3", "audio/mp3": ".mp3", "audio/wav": ".wav", "audio/x-wav": ".wav",
              "audio/ogg": ".ogg"}
#: The media type a stored file is served with, by extension (the first type named for it).
MEDIA_TYPES = {ext: media for media, ext in reversed(EXTENSIONS.items())}


class RecordingFiles:
    """The stored recordings of one connector instance: one file per call in ``directory``."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def path_for(self, call_id: str, media: str) -> Path:
        """Where the recording of ``call_id`` in ``media`` is kept (unknown types as ``.mp3``)."""
        return self.directory / f"{call_id}{EXTENSIONS.get(media, '.mp3')}"

    async def load(self, call_id: str) -> tuple[bytes, str] | None:
        """The stored recording of ``call_id`` and its media type, or None when none is stored."""
        for ext, media in MEDIA_TYPES.items():
            path = trio.Path(self.directory / f"{call_id}{ext}")
            try:
                return await path.read_bytes(), media
            except FileNotFoundError:
                continue
        return None

    async def save(self, call_id: str, data: bytes, media: str) -> Path:
        """Store ``data`` as the recording of ``call_id``, atomically; safe to run concurrently."""
        path = self.path_for(call_id, media)
        await trio.to_thread.run_sync(_write_atomically, path, data)
        return path


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temporary name of its own per write (mkstemp), in the target's directory so the replace
    # stays on one file system; a dot first so that no listing takes it for a recording.
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
