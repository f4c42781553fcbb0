"""A full disk while writing: remove everything the failed write left at once and say so plainly.

Without this, the ``OSError`` of whichever write hit the limit surfaced as a traceback, the cleanup failed with the
same error (closing a file flushes it) and the partial segment kept the disk full until the next writer opened.
"""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from retrievekit.core.errors import CollectionError
from retrievekit.core.files import tree_bytes
from retrievekit.storage.manifest import Manifest

logger = logging.getLogger(__name__)

DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})  # no space left, disk quota exceeded


def _mb(n: int) -> str:
    return f"{n / 1e6:,.0f}" if n >= 10e6 else f"{n / 1e6:.1f}"


class DiskFullError(CollectionError):
    """The disk holding a collection filled up during a write. The write's partial files are already removed and
    nothing of it was committed: the previous commit is intact. ``written``: the bytes it had written when the
    disk filled; ``needed``: an estimate of what the whole write needs (at least ``written``)."""

    def __init__(self, collection: str, written: int, needed: int | None = None) -> None:
        self.collection, self.written = collection, written
        self.needed = max(needed or 0, written)
        need = f"~{_mb(self.needed)} MB" if needed else f"more than {_mb(written)} MB"
        super().__init__(
            f"no space left on the disk of collection {collection!r} (needed {need}): nothing of this write was "
            f"committed and its {_mb(written)} MB of partial files were removed; the previous commit is intact. "
            "Free disk space and try again"
        )


class _Writer(Protocol):
    folder: Path

    def rollback(self) -> None: ...


W = TypeVar("W", bound=_Writer)
P = ParamSpec("P")
R = TypeVar("R")


def frees_space_when_full(method: Callable[Concatenate[W, P], R]) -> Callable[Concatenate[W, P], R]:
    """A writer method that, when the disk fills up, drops everything uncommitted (freeing its space now) and
    raises ``DiskFullError``. Other errors pass unchanged."""

    @functools.wraps(method)
    def wrapper(self: W, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise
            before = tree_bytes(self.folder)
            try:
                self.rollback()
            except Exception:  # the disk-full error is the one to report; the next writer removes the rest
                logger.exception("cleaning up after a full disk failed")
            raise DiskFullError(self.folder.name, max(0, before - tree_bytes(self.folder))) from None

    return wrapper


def estimate_need(folder: Path, input_bytes: int | None) -> int | None:
    """Disk space an ingest of ``input_bytes`` takes: the stored documents (about the input's size) times this
    collection's ratio of all its files to its stored documents (indexes, offsets, vectors), or 2 for a collection
    too small to tell."""
    if not input_bytes:
        return None
    try:
        segments = Manifest.read(folder).segments
    except CollectionError:
        return None
    total = stored = 0
    for entry in segments:
        total += tree_bytes(folder / entry.name)
        try:
            stored += (folder / entry.name / "docs.jsonl").stat().st_size
        except OSError:
            pass
    ratio = total / stored if stored >= 1 << 20 else 2.0
    return int(input_bytes * ratio)
