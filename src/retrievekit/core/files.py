"""Durable file writing: every file a commit depends on is fsynced before the manifest points at it."""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Literal

import numpy as np

# CPython 3.11 keeps the AST constructor's recursion depth in interpreter-wide state, so two threads building ASTs
# at once can fail with "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905). numpy
# parses every .npy header with ast.literal_eval, and concurrent readers open segments from several threads: every
# AST this package builds (.npy headers, parsed Python source) is built under this lock.
AST_LOCK = threading.Lock()


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


def read_npy(path: Path, mmap: bool = False) -> np.ndarray:
    """Read a ``.npy`` file into memory, or memory-map it read-only (an empty array is always read): ``np.load``
    with the header parsed under :data:`AST_LOCK`, and a truncated file an error rather than a short array."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            read_header = np.lib.format.read_array_header_1_0
        elif version == (2, 0):
            read_header = np.lib.format.read_array_header_2_0
        else:
            raise ValueError(f"{path}: .npy format version {version} is not supported (1.0 and 2.0 are)")
        with AST_LOCK:
            shape, fortran_order, dtype = read_header(f)
        if dtype.hasobject:
            raise ValueError(f"{path}: holds Python objects, which are never loaded")
        order: Literal["C", "F"] = "F" if fortran_order else "C"
        count = math.prod(shape)
        offset = f.tell()
        held = (os.fstat(f.fileno()).st_size - offset) // dtype.itemsize if dtype.itemsize else count
        if held < count:
            raise ValueError(f"{path}: truncated: its header promises {count} values, the file holds {held}")
        if mmap and count:
            # A plain ndarray view of the map: numpy.memmap's subclass hooks cost microseconds per indexing call.
            return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order).view(np.ndarray)
        return np.fromfile(f, dtype=dtype, count=count).reshape(shape, order=order)


def load_array(path: Path) -> np.ndarray:
    """Memory-map a ``.npy`` file (a small or empty one is read into memory)."""
    return read_npy(path, mmap=path.stat().st_size >= 1 << 16)


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
