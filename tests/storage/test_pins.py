"""Pinned generations: readable after later commits and merges, their files kept by garbage collection until
unpinned, and ``restore`` commits an older pinned state as a new generation."""

from __future__ import annotations

import pytest

from retrievekit import Collection
from retrievekit.core.errors import CollectionError
from retrievekit.storage.manifest import pinned_generations, unpin


def _docs(prefix: str, n: int) -> list[dict[str, str]]:
    return [{"id": f"{prefix}{i}", "text": f"word{i} {prefix} common"} for i in range(n)]


def test_pinned_generation_survives_later_commits_and_merges(tmp_path):
    col = Collection.create(tmp_path / "c")
    with col.writer() as w:
        w.add(_docs("a", 5))
        pinned = w.commit(pin=True)
    col.delete(["a0", "a1"])
    col.add(_docs("b", 5))
    col.optimize()  # merges every segment: the pinned generation's segment is no longer current
    assert sorted(d.id for d in col.iter_documents()) == sorted([f"a{i}" for i in range(2, 5)] + [f"b{i}" for i in
                                                                                                  range(5)])
    snap = col.snapshot_at(pinned)
    assert sorted(d.id for d in snap.iter_documents()) == [f"a{i}" for i in range(5)]
    assert len(col.search("common", 20).hits(0)) == 8  # current searches are unaffected
    assert pinned in pinned_generations(col.path)


def test_unpinned_generation_is_collected(tmp_path):
    col = Collection.create(tmp_path / "c")
    with col.writer() as w:
        w.add(_docs("a", 3))
        pinned = w.commit(pin=True)
    col.add(_docs("b", 3))
    col.optimize()
    unpin(col.path, set())
    col.add(_docs("c", 1))  # the next writer collects the garbage
    fresh = Collection(col.path)
    with pytest.raises(CollectionError, match=f"generation {pinned} .* is not pinned"):
        fresh.snapshot_at(pinned)
    segments = {p.name for p in col.path.iterdir() if p.name.startswith("seg-")}
    live = {e.name for e in fresh.snapshot().manifest.segments}
    assert segments == live  # nothing of the unpinned generation is left on disk


def test_restore_commits_the_pinned_contents_as_a_new_generation(tmp_path):
    col = Collection.create(tmp_path / "c")
    with col.writer() as w:
        w.add(_docs("a", 4))
        pinned = w.commit(pin=True)
    col.delete(["a0"])
    col.add(_docs("b", 2))
    before = col.snapshot().generation
    with col.writer() as w:
        restored = w.restore(pinned)
    assert restored == before + 1
    assert sorted(d.id for d in Collection(col.path).iter_documents()) == [f"a{i}" for i in range(4)]
    col.add(_docs("c", 1))  # the restored collection keeps working
    assert len(Collection(col.path)) == 5
