"""D1: a parallel ingest whose worker fails or dies must end promptly with the error, its workers gone, the lock
released and nothing committed (it used to block forever writing to the dead worker's pipe: the other workers held
its receiving end). Each ingest runs in a child process under a timeout, so a regression fails instead of hanging."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from retrievekit import Collection

# Run by a child process: ingest SOURCE into COLLECTION with WORKERS processes, after patching the segment writer so
# that in one worker (forked: the patch is inherited) its document number AFTER fails as FAULT says. Prints the outcome.
SCRIPT = textwrap.dedent("""
    import errno, json, os, signal, sys
    from retrievekit import Collection
    from retrievekit.storage import segment
    path, source, fault, after, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    main, seen, original = os.getpid(), [0], segment.SegmentWriter.add

    def first(marker=path + ".fault"):  # only one worker fails: the others go on, as in real life
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
            return True
        except FileExistsError:
            return False

    def add(self, doc):
        if os.getpid() != main:
            seen[0] += 1
            if seen[0] == after and first():
                if fault == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                if fault == "raise":
                    raise RuntimeError("injected analyser failure")
                if fault == "enospc":
                    raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, doc)

    if fault != "none":
        segment.SegmentWriter.add = add
    import multiprocessing
    try:
        Collection(path).ingest(source, progress=False, workers=workers, batch_size=250)
        outcome = {"error": None}
    except Exception as exc:
        outcome = {"error": type(exc).__name__, "message": str(exc)}
    print(json.dumps({**outcome, "workers_left": len(multiprocessing.active_children())}))
""")


def corpus(path: Path, n: int, bad_line: int | None = None) -> Path:
    with path.open("w") as f:
        for i in range(n):
            if i + 1 == bad_line:  # a JSON-escaped lone surrogate: valid JSON, not encodable as UTF-8
                f.write(json.dumps({"_id": f"d{i}", "text": "bad \ud800 text"}) + "\n")  # escaped by dumps
            else:
                f.write(json.dumps({"_id": f"d{i}", "text": f"document {i} about w{i % 97} and w{i % 13}"}) + "\n")
    return path


def ingest(col: Collection, source: Path, fault: str = "none", after: int = 0, workers: int = 2) -> dict:
    """The outcome printed by SCRIPT; its workers must all be gone when the ingest returns."""
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(col.path), str(source), fault, str(after), str(workers)],
                          capture_output=True, text=True, timeout=90)  # a deadlock fails here
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome.pop("workers_left") == 0
    return outcome


def assert_nothing_committed(col: Collection, before: int) -> None:
    again = Collection(col.path)
    assert len(again) == before
    referenced = {s.name for s in again.snapshot().manifest.segments}
    assert {p.name for p in again.path.iterdir() if p.name.startswith("seg-")} == referenced
    again.writer().close()  # the lock is free: this would raise CollectionLockedError


@pytest.fixture
def col(tmp_path: Path) -> Collection:
    col = Collection.create(tmp_path / "c")
    col.add([{"id": "old", "text": "committed before"}])
    return col


def test_late_bad_record_in_a_large_file_fails_with_its_location(col: Collection, tmp_path: Path) -> None:
    source = corpus(tmp_path / "c.jsonl", 15_000, bad_line=1501)
    outcome = ingest(col, source)
    assert outcome["error"] is not None
    # validated in the main process (c.jsonl:1501) or, failing that, named by the worker that met it ('d1500')
    assert "c.jsonl:1501" in outcome["message"] or "'d1500'" in outcome["message"], outcome
    assert_nothing_committed(col, 1)


@pytest.mark.parametrize("workers", [2, 3])
def test_worker_killed_by_sigkill_reports_it_and_releases_the_lock(col: Collection, tmp_path: Path,
                                                                  workers: int) -> None:
    source = corpus(tmp_path / "c.jsonl", 15_000)
    outcome = ingest(col, source, "kill", after=1500, workers=workers)
    assert outcome["error"] == "RetrievekitError"
    assert "killed by signal 9 (SIGKILL)" in outcome["message"] and "nothing of this ingest was committed" in \
        outcome["message"]
    assert_nothing_committed(col, 1)


def test_worker_exception_names_the_document(col: Collection, tmp_path: Path) -> None:
    source = corpus(tmp_path / "c.jsonl", 6_000)
    outcome = ingest(col, source, "raise", after=1200)
    assert outcome["error"] == "RetrievekitError"
    assert "could not be indexed (RuntimeError: injected analyser failure)" in outcome["message"]
    assert_nothing_committed(col, 1)


def test_worker_disk_full_is_a_disk_full_error(col: Collection, tmp_path: Path) -> None:
    source = corpus(tmp_path / "c.jsonl", 6_000)
    outcome = ingest(col, source, "enospc", after=1200)
    assert outcome["error"] == "DiskFullError", outcome  # was "indexing worker N died (exit code 0)"
    assert outcome["message"].startswith("no space left on the disk of collection 'c' (needed ~")
    assert_nothing_committed(col, 1)


def test_a_healthy_parallel_ingest_still_commits(col: Collection, tmp_path: Path) -> None:
    assert ingest(col, corpus(tmp_path / "c.jsonl", 3_000), workers=3) == {"error": None}
    assert len(Collection(col.path)) == 3_001
