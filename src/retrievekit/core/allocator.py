"""Keep glibc's malloc from handing a model's activations back to the kernel after every batch.

glibc serves a block above its mmap threshold (128 KiB at start, rising with freed blocks to at most 32 MiB) with a
fresh ``mmap`` and returns the free top of its heap to the kernel once it passes the trim threshold. A transformer
batch allocates tens of MiB of activations and frees them again, so every batch page-faults and zeroes its memory
anew. Raising both thresholds once per process keeps that memory for the next batch: torch MiniLM on 2 Xeon cores
encodes 1.14× faster in bf16 and 1.11× in fp32 (the "allocator" rows of benchmarks/results/encoding-speed.json).
The cross-encoder and SPLADE ask for it too (the same pattern of activations; not measured separately); ONNX
Runtime allocates from its own arena. torch's CPU tuning guide gets the same effect by preloading jemalloc or
tcmalloc; two ``mallopt`` calls need no preload. The cost: up to ``TRIM_THRESHOLD`` of freed memory stays with the
process. ``RETRIEVEKIT_MALLOC=default`` leaves the allocator as it is.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import platform

logger = logging.getLogger(__name__)

ENV = "RETRIEVEKIT_MALLOC"
#: blocks below this come from the heap and are reused (a 4,096-token fp32 FFN activation is 25 MiB)
MMAP_THRESHOLD = 64 << 20
#: free memory at the heap's top kept before any is returned to the kernel
TRIM_THRESHOLD = 128 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def left_alone_because() -> str | None:
    """Why ``keep_freed_memory`` leaves this process's allocator alone, or None when it raises the thresholds."""
    if os.environ.get(ENV, "").strip().lower() == "default":
        return f"{ENV}=default"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "not glibc"
    return None


def describe() -> str:
    """One line for ``retrievekit components``: what the first CPU encode does to the allocator here."""
    reason = left_alone_because()
    if reason:
        return f"malloc left as it is ({reason})"
    return (f"glibc malloc thresholds raised on the first CPU encode (mmap {MMAP_THRESHOLD >> 20} MiB, trim "
            f"{TRIM_THRESHOLD >> 20} MiB; {ENV}=default leaves them)")


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once); True when they were raised. Nothing happens
    off glibc (macOS, Windows, musl) or with ``RETRIEVEKIT_MALLOC=default``."""
    if left_alone_because():
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    done = (libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    logger.info("glibc malloc thresholds %s (mmap %d MiB, trim %d MiB)", "raised" if done else "NOT raised",
                MMAP_THRESHOLD >> 20, TRIM_THRESHOLD >> 20)
    return done
