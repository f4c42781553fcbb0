"""keep_freed_memory: glibc serves large blocks from its heap afterwards (not from fresh mmaps), unless opted out."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="the thresholds are glibc's")

# How many blocks glibc has mmapped (mallinfo2's hblks) while a 40 MiB array is alive, after keep_freed_memory():
# one fresh mapping with glibc's own thresholds (max 32 MiB), none once they are raised to 64 MiB.
PROBE = """
import ctypes, json
import numpy as np
from retrievekit.core.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
raised = keep_freed_memory()
before = libc.mallinfo2().hblks
block = np.ones(40 << 20, dtype=np.uint8)
during = libc.mallinfo2().hblks
print(json.dumps({"raised": raised, "again": keep_freed_memory(), "mapped": during - before}))
"""


def probe(**env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120,
                         env={**os.environ, **env})
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_large_blocks_come_from_the_heap_once_raised():
    result = probe(RETRIEVEKIT_MALLOC="")
    assert result == {"raised": True, "again": True, "mapped": 0}


def test_the_allocator_is_left_alone_when_asked():
    result = probe(RETRIEVEKIT_MALLOC="default")
    assert result == {"raised": False, "again": False, "mapped": 1}
