"""SIGKILL a real writer process at random moments, many times: the collection must always open at its last
committed state, with nothing committed lost and no half-written state visible."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from crash_writer import DOCS_PER_BATCH
from paths import TESTS

from retrievekit import Collection

HERE = TESTS


def expected_ids(last: int) -> set[str]:
    ids = {f"b{b}-{i}" for b in range(last + 1) for i in range(DOCS_PER_BATCH)}
    return ids - {f"b{b}-1" for b in range(last - 1)}


def committed_batch(col: Collection) -> int:
    b = -1
    while f"b{b + 1}-2" in col:
        b += 1
    return b


def test_sigkill_during_ingest_and_commit_never_loses_committed_data(tmp_path: Path) -> None:
    path, log = tmp_path / "col", tmp_path / "log"
    Collection.create(path)
    log.write_text("")
    rng = random.Random(1234)
    kills, last = 0, -1
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    deadline = time.monotonic() + 75
    while kills < 30 and time.monotonic() < deadline:
        proc = subprocess.Popen([sys.executable, str(HERE / "crash_writer.py"), str(path), str(log), str(last + 1)],
                                env=env)
        time.sleep(rng.uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        logged = [int(x) for x in log.read_text().split()]
        col = Collection(path)  # must open
        previous, last = last, committed_batch(col)
        acknowledged = max(logged[-1] if logged else -1, previous)
        # nothing acknowledged is lost; at most the one batch whose commit raced the kill is there unlogged
        assert acknowledged <= last <= acknowledged + 1
        ids = {d.id for d in col.iter_documents()}
        assert ids == expected_ids(last), f"after kill {kills}: state is not batches 0..{last}"
        assert len(col) == len(ids)
        if last >= 1:
            assert col.get(f"b{last - 1}-0").text == f"updated by batch{last}"  # type: ignore[union-attr]
            hits = col.search(f"batch{last}", k=5 * DOCS_PER_BATCH).hits(0)
            assert len(hits) == DOCS_PER_BATCH + 1  # the batch plus the document it updated
    assert kills >= 10
    # the next writer removes whatever the killed ones left behind
    col = Collection(path)
    col.writer().close()
    referenced = {s.name for s in col.snapshot().manifest.segments}
    on_disk = {p.name for p in path.iterdir() if p.name.startswith("seg-")}
    assert on_disk == referenced
    assert not (path / "manifest.json.tmp").exists()
