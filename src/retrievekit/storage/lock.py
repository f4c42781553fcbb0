"""One writer at a time: an exclusive ``flock`` on ``write.lock``. The kernel releases it when the process dies,
even by SIGKILL, so a crashed writer never leaves the collection locked."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from retrievekit.core.errors import CollectionLockedError

LOCK_FILE = "write.lock"


class WriterLock:
    def __init__(self, folder: Path, timeout: float = 0.0) -> None:
        self.path = folder / LOCK_FILE
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(self._fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
                    os.close(self._fd)
                    raise CollectionLockedError(
                        f"collection {folder} is being written by another process (pid {holder}); only one writer "
                        "at a time is allowed — wait for it to finish or pass a lock timeout"
                    ) from None
                time.sleep(0.05)
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1
