"""D7: ``Collection.info()`` while another process commits (and merges, deleting old segments) never fails: it
counts what exists at the moment and describes a newer snapshot if the one it holds lost its files. It used to
raise FileNotFoundError with the absolute path of a removed segment (3 in 45 s; 74 HTTP 503s under load)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from retrievekit import Collection

WRITER = textwrap.dedent("""
    import sys, time
    from retrievekit import Collection
    col, b, end = Collection(sys.argv[1]), 0, time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end:
        with col.writer(max_segments=2, lock_timeout=5) as w:  # every commit merges: segments come and go
            w.add([{"id": f"b{b}-{i}", "text": f"batch {b} document {i}"} for i in range(50)])
        b += 1
    print(b)
""")


def test_info_during_commits_and_merges(tmp_path: Path) -> None:
    col = Collection.create(tmp_path / "c")
    col.add([{"id": "first", "text": "x"}])
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(col.path), "4"], stdout=subprocess.PIPE, text=True)
    calls, generations = 0, set()
    try:
        while writer.poll() is None:
            info = col.info()  # must not raise
            calls += 1
            generations.add(info["generation"])
            assert info["disk_bytes"] > 0 and info["documents"] >= 1
    finally:
        out, _ = writer.communicate(timeout=60)
    assert writer.returncode == 0 and int(out) > 5
    assert calls > 50 and len(generations) > 5  # the race was really run
    final = Collection(col.path).info()
    assert final["documents"] == 1 + 50 * int(out) and final["segments"] <= 2
