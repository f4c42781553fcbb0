"""D8: a full disk while writing. The write fails with one clear DiskFullError, its partial files are removed at
once (they used to fill the disk until the next writer opened: cleanup failed with the same error when closing a
file flushed it), the previous commit stays intact and the lock is released.

The disk fills for real where unprivileged user namespaces allow a small tmpfs; everywhere else the write path's
``open`` is patched to fail with ENOSPC after a byte budget (and to fail again on close, as a buffered file does)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from retrievekit import Collection
from retrievekit.core import files
from retrievekit.storage import segment
from retrievekit.storage.disk import DiskFullError


class FullDisk:
    """``open`` for the patched modules: files opened for writing share ``budget`` bytes, then raise ENOSPC."""

    def __init__(self, budget: float) -> None:
        self.left = budget
        self.written = 0

    def open(self, path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        f = open(path, mode, *args, **kwargs)  # noqa: SIM115
        return _Limited(f, self) if any(c in mode for c in "wax") else f


class _Limited:
    def __init__(self, f: Any, disk: FullDisk) -> None:
        self._f, self._disk, self._failed = f, disk, False

    def write(self, data: Any) -> int:
        n = len(memoryview(data).cast("B"))
        if n > self._disk.left:
            self._failed = True
            raise OSError(errno.ENOSPC, "No space left on device")
        self._disk.left -= n
        self._disk.written += n
        return self._f.write(data)

    def close(self) -> None:
        self._f.close()
        if self._failed:  # a buffered file flushes on close: on a full disk that fails again
            raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self) -> _Limited:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def docs(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"d{i}", "text": f"document {i} about w{i % 97} w{i % 31} w{i % 7}", "metadata": {"n": i}}
            for i in range(start, start + n)]


def files_of(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_size for p in path.rglob("*") if p.is_file()
            and p.name != "write.lock"}  # holds the pid of an open writer


def make(tmp_path: Path) -> Collection:
    col = Collection.create(tmp_path / "c")
    col.add(docs(300))
    col.delete(["d5"])  # a deletion mask in the committed state too
    return col


def write(col: Collection) -> None:
    """One commit that adds, updates and deletes, writing every kind of file (segment, deletion masks, manifest)."""
    with col.writer(max_segments=1) as w:  # max_segments=1: the commit merges as well
        w.add(docs(2000, start=200))
        w.delete(["d7"])


def test_disk_full_at_any_point_leaves_the_previous_commit_and_no_file(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    probe = make(tmp_path / "probe")
    counting = FullDisk(float("inf"))
    with monkeypatch.context() as m:
        m.setattr(segment, "open", counting.open, raising=False)
        m.setattr(files, "open", counting.open, raising=False)
        write(probe)
    total = counting.written
    assert total > 100_000
    col = make(tmp_path)
    before, ids = files_of(col.path), {d.id for d in col.iter_documents()}
    for fraction in (0.0, 0.05, 0.3, 0.6, 0.9, 0.99, 0.9999):
        disk = FullDisk(int(total * fraction))
        with monkeypatch.context() as m:
            m.setattr(segment, "open", disk.open, raising=False)
            m.setattr(files, "open", disk.open, raising=False)
            with pytest.raises(DiskFullError) as info:
                write(col)
        message = str(info.value)
        assert message.startswith("no space left on the disk of collection 'c' (needed more than "), message
        assert "the previous commit is intact" in message and str(tmp_path) not in message
        assert files_of(col.path) == before, f"files left or changed at {fraction:.0%} of the commit"
        again = Collection(col.path)
        assert {d.id for d in again.iter_documents()} == ids
        again.writer().close()  # the lock is free
    write(col)  # and with space again, the same write succeeds
    assert len(Collection(col.path)) == 2198  # d0..d2199 but d5 and d7


def test_disk_full_in_an_explicit_writer_drops_its_uncommitted_work(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    col = make(tmp_path)
    before = files_of(col.path)
    disk = FullDisk(float("inf"))
    with monkeypatch.context() as m:
        m.setattr(segment, "open", disk.open, raising=False)
        m.setattr(files, "open", disk.open, raising=False)
        w = col.writer(max_buffered_postings=2000)  # small segments: finished ones exist when the disk fills
        w.add(docs(500, start=1000))
        disk.left = 1000
        with pytest.raises(DiskFullError, match="nothing of this write was committed"):
            w.add(docs(500, start=2000))
    assert files_of(col.path) == before
    w.add([{"id": "after", "text": "the writer goes on from the last commit"}])
    w.commit()
    w.close()
    assert len(col) == 300 and "after" in col and "d1000" not in col


def test_ingest_estimates_what_it_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    col = make(tmp_path)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(d) + "\n" for d in docs(3000, start=5000)))
    disk = FullDisk(20_000)
    with monkeypatch.context() as m:
        m.setattr(segment, "open", disk.open, raising=False)
        m.setattr(files, "open", disk.open, raising=False)
        with pytest.raises(DiskFullError) as info:
            col.ingest(source, progress=False, workers=1)
    # the input's size times the collection's ratio of files to stored text (2 when too small to tell)
    assert info.value.needed == 2 * source.stat().st_size
    assert f"(needed ~{2 * source.stat().st_size / 1e6:.1f} MB)" in str(info.value)
    assert len(Collection(col.path)) == 299


def _tmpfs_available() -> bool:
    if not shutil.which("unshare") or not Path("/proc/self/ns/user").exists():
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


REAL_DISK = textwrap.dedent("""
    import json, os, sys
    from retrievekit import Collection
    root, source, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    col = Collection.create(os.path.join(root, "c"))
    col.add([{"id": "keep", "text": "the previous commit"}])
    before = sorted(os.listdir(col.path))
    try:
        col.ingest(source, progress=False, workers=workers)
        error = None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    left = [os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs]
    col.writer().close()
    print(json.dumps({"error": error, "left": sorted(left), "keep": Collection(col.path).get("keep").text}))
""")


@pytest.mark.skipif(not _tmpfs_available(), reason="needs unprivileged user namespaces for a small tmpfs")
@pytest.mark.parametrize("workers", [1, 2])
def test_a_really_full_disk(tmp_path: Path, workers: int) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(d) + "\n" for d in docs(40_000)))  # ~3.5 MB: more than 3 MB can index
    mount = tmp_path / "disk"
    mount.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = (f"mount -t tmpfs -o size=3m tmpfs {mount} && {sys.executable} -c '{REAL_DISK}' {mount} {source} "
           f"{workers}")
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", cmd],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome["error"].startswith("DiskFullError: no space left on the disk of collection 'c' (needed ~")
    assert outcome["keep"] == "the previous commit"
    committed = {f for f in outcome["left"] if "/seg-" in f}
    assert len({f.split("/")[1] for f in committed}) == 1, outcome["left"]  # only the committed segment
