"""Durable file writing: every file a commit depends on is fsynced before the manifest points at it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def fsync_write_text(path: Path, text: str) -> None:
    fsync_write_bytes(path, text.encode("utf-8"))


def fsync_write_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_array(path: Path, array: np.ndarray) -> None:
    """Write a ``.npy`` file that appears complete or not at all."""
    tmp = path.with_name(path.name + ".tmp")
    fsync_write_array(tmp, array)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` atomically: readers see the old or the new content, never a mix, even after SIGKILL."""
    tmp = path.with_name(path.name + ".tmp")
    fsync_write_text(tmp, text)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def load_array(path: Path) -> np.ndarray:
    """Memory-map a ``.npy`` file (a small or empty one is read into memory)."""
    if path.stat().st_size < 1 << 16:
        return np.load(path, allow_pickle=False)
    # A plain ndarray view of the map: numpy.memmap's subclass hooks cost microseconds per indexing call.
    return np.load(path, mmap_mode="r", allow_pickle=False).view(np.ndarray)


def tree_bytes(path: Path, name: str | None = None) -> int:
    """Bytes of the files under ``path`` (only the entry ``name`` in it, if given); files and folders removed while
    it counts (by a concurrent commit or merge) are skipped, never an error."""
    total = 0
    try:
        entries = [e for e in os.scandir(path) if name is None or e.name == name]
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                total += tree_bytes(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            pass
    return total
