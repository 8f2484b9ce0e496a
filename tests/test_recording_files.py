"""ctid.recordings: a connector's recording files, stored atomically even when two writers race."""

from __future__ import annotations

import os
import threading

import pytest
import trio

from ctid.recordings import RecordingFiles


async def test_saved_recording_is_loaded_with_its_media_type(tmp_path):
    files = RecordingFiles(tmp_path / "rec" / "mf")
    assert await files.load("c1") is None
    path = await files.save("c1", b"RIFFwave", "audio/x-wav")
    assert path == tmp_path / "rec" / "mf" / "c1.wav"
    assert await files.load("c1") == (b"RIFFwave", "audio/wav")
    await files.save("c2", b"ID3", "application/octet-stream")  # unknown types are kept as mp3
    assert await files.load("c2") == (b"ID3", "audio/mpeg")


async def test_two_writers_finishing_together_both_succeed(tmp_path, monkeypatch):
    files = RecordingFiles(tmp_path)
    real_replace, barrier = os.replace, threading.Barrier(2, timeout=5)

    def replace_together(src, dst, *args, **kwargs):
        barrier.wait()  # both temporary files are written before either is moved into place
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace_together)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(files.save, "c1", b"A" * 100_000, "audio/mpeg")
        nursery.start_soon(files.save, "c1", b"B" * 100_000, "audio/mpeg")
    assert [p.name for p in tmp_path.iterdir()] == ["c1.mp3"]
    data, _ = await files.load("c1")
    assert data in (b"A" * 100_000, b"B" * 100_000)  # one whole recording, never a mix


async def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path, monkeypatch):
    files = RecordingFiles(tmp_path)
    await files.save("c1", b"old", "audio/mpeg")

    def refuse(src, dst, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        await files.save("c1", b"new", "audio/mpeg")
    assert [p.name for p in tmp_path.iterdir()] == ["c1.mp3"]
    assert await files.load("c1") == (b"old", "audio/mpeg")
