"""Parallel ingest: same index as a single process; failures and a killed main process leave nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from retrievekit import Collection, InputFormatError


def corpus(path: Path, n: int, start: int = 0) -> Path:
    rng = np.random.default_rng(start)
    words = [f"w{i}" for i in range(300)]
    with path.open("w") as f:
        for i in range(start, start + n):
            f.write(json.dumps({"_id": f"d{i}", "title": f"t{i % 7}", "text": " ".join(rng.choice(words, 30))}) + "\n")
    return path


def test_parallel_equals_single_process(tmp_path: Path) -> None:
    src = corpus(tmp_path / "c.jsonl", 5000)
    one = Collection.create(tmp_path / "one")
    one.ingest(src, progress=False, workers=1)
    two = Collection.create(tmp_path / "two")
    two.ingest(src, progress=False, workers=3, batch_size=300)
    # the workers' segments are merged back into one, in input order: the same collection as a serial ingest
    assert two.info()["segments"] == 1 and len(two) == len(one) == 5000
    assert two.snapshot().segments[0].ids == one.snapshot().segments[0].ids
    queries = ["w1 w2 w3", "w100", "t3 w250 w7"]
    a, b = one.search(queries, k=100), two.search(queries, k=100)
    assert (a.ids == b.ids).all() and np.array_equal(a.scores, b.scores)
    assert two.get("d4321") == one.get("d4321")
    # a re-ingest of the same ids replaces them, wherever they live
    two.ingest(corpus(tmp_path / "c2.jsonl", 10, start=0), progress=False, workers=2)
    assert len(two) == 5000
    # updates inside one parallel ingest: the last version of an id wins
    dup = tmp_path / "dup.jsonl"
    dup.write_text("".join(json.dumps({"_id": f"u{i % 700}", "text": f"version {i}"}) + "\n" for i in range(1400)))
    three = Collection.create(tmp_path / "three")
    with three.writer() as w:
        w.add_parallel(({"id": json.loads(x)["_id"], "text": json.loads(x)["text"]} for x in dup.read_text().split("\n")
                        if x), workers=2, batch_size=100)
    assert len(three) == 700 and three.get("u5").text == "version 705"  # type: ignore[union-attr]


def test_merge_copies_stored_documents_in_bounded_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the merge copies stored documents a run of consecutive ones at a time, in reads of at most _COPY_BYTES:
    # with a few bytes per read and deletions breaking the runs, every document still arrives whole, in order
    import retrievekit.storage.segment as segment

    monkeypatch.setattr(segment, "_COPY_BYTES", 37)
    src = corpus(tmp_path / "c.jsonl", 900)
    one = Collection.create(tmp_path / "one")
    one.ingest(src, progress=False, workers=1)
    two = Collection.create(tmp_path / "two")
    two.ingest(src, progress=False, workers=2, batch_size=50)
    assert two.snapshot().segments[0].ids == one.snapshot().segments[0].ids
    assert [two.get(f"d{i}") for i in range(0, 900, 7)] == [one.get(f"d{i}") for i in range(0, 900, 7)]
    with two.writer() as w:
        w.add_as_is([{"id": "extra", "text": "w1 w2", "metadata": {"k": 1}}])
        w.delete([f"d{i}" for i in range(3, 900, 11)])
    two.optimize()
    kept = [f"d{i}" for i in range(900) if i % 11 != 3] + ["extra"]
    assert two.info()["segments"] == 1 and two.snapshot().segments[0].ids == kept
    assert [two.get(i) for i in kept[:-1:5]] == [one.get(i) for i in kept[:-1:5]]
    assert two.get("extra").metadata == {"k": 1}  # type: ignore[union-attr]


def test_parallel_failure_commits_nothing_and_leaves_no_files(tmp_path: Path) -> None:
    col = Collection.create(tmp_path / "c")
    col.ingest(corpus(tmp_path / "a.jsonl", 100), progress=False, workers=2)
    bad = corpus(tmp_path / "b.jsonl", 3000, start=1000)
    lines = bad.read_text().splitlines()
    lines[2500] = "{not json"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFormatError, match=r"b\.jsonl:2501"):
        col.ingest(bad, progress=False, workers=2, batch_size=200)
    assert len(col) == 100
    referenced = {s.name for s in col.snapshot().manifest.segments}
    assert {p.name for p in col.path.iterdir() if p.name.startswith("seg-")} == referenced


def orphans(marker: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_killed_main_process_workers_exit_and_collection_is_intact(tmp_path: Path) -> None:
    col = Collection.create(tmp_path / "c")
    col.ingest(corpus(tmp_path / "a.jsonl", 200), progress=False, workers=2)
    big = corpus(tmp_path / "big.jsonl", 200_000, start=10_000)
    marker = f"parallel-kill-{os.getpid()}"
    script = textwrap.dedent(f"""
        import sys
        from retrievekit import Collection
        Collection({str(col.path)!r}).ingest({str(big)!r}, progress=False, workers=2)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script, marker])
    time.sleep(2.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while orphans(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert orphans(marker) == [], "worker processes outlived their killed parent"
    again = Collection(col.path)
    assert len(again) == 200
    again.add([{"id": "after", "text": "still writable"}])
    assert len(again) == 201
    referenced = {s.name for s in again.snapshot().manifest.segments}
    assert {p.name for p in again.path.iterdir() if p.name.startswith("seg-")} == referenced
