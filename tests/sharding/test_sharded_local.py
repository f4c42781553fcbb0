"""Sharded collections with shards in this process: rankings equal one collection's (BM25 with global statistics,
dense, hybrid), writes are atomic across shards, and a writer that died between shard commits is undone."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from paths import shared_data

from retrievekit import Collection
from retrievekit.core.errors import CollectionError
from retrievekit.sharding import ShardedCollection, shard_of
from retrievekit.sharding.manifest import ClusterManifest


def _scifact() -> tuple[list[dict[str, str]], list[str]]:
    folder = shared_data("scifact")
    docs = []
    with (folder / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            obj = json.loads(line)
            docs.append({"id": obj["_id"], "title": obj.get("title") or "", "text": obj.get("text") or ""})
    with (folder / "queries.jsonl").open(encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for line in f]
    return docs, queries


def _assert_same(a, b) -> None:
    assert a.ids.shape == b.ids.shape
    for i in range(len(a)):
        assert list(a.ids[i]) == list(b.ids[i]), f"query {i}: ranked ids differ"
    finite = np.isfinite(a.scores)
    assert (finite == np.isfinite(b.scores)).all()
    assert np.abs(a.scores[finite] - b.scores[finite]).max(initial=0.0) <= 1e-6


@pytest.fixture(scope="module")
def scifact_pair(tmp_path_factory):
    """scifact in one collection and over 3 shards, both with a static (wordllama) dense index."""
    pytest.importorskip("wordllama")
    docs, queries = _scifact()
    root = tmp_path_factory.mktemp("scifact")
    single = Collection.create(root / "single", dense="wordllama")
    single.add(docs)
    sharded = ShardedCollection.create(root / "sharded", 3, dense="wordllama")
    sharded.add(docs)
    yield single, sharded, queries[:400]
    sharded.close()


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_rankings_over_three_shards_equal_one_collection(scifact_pair, mode):
    single, sharded, queries = scifact_pair
    assert len(sharded) == len(single)
    _assert_same(single.search(queries, 100, mode=mode), sharded.search(queries, 100, mode=mode))


def test_bm25_scorers_and_filters_match(scifact_pair):
    single, sharded, queries = scifact_pair
    _assert_same(single.search(queries[:50], 20, scorer="robertson", k1=1.2, b=0.75),
                 sharded.search(queries[:50], 20, scorer="robertson", k1=1.2, b=0.75))


def test_every_shard_holds_part_of_the_documents(scifact_pair):
    _, sharded, _ = scifact_pair
    info = sharded.info()
    counts = [s["documents"] for s in info["shards"]]
    assert len(counts) == 3 and min(counts) > 0.25 * sum(counts) and sum(counts) == len(sharded)


def test_documents_are_routed_by_a_stable_hash(tmp_path):
    col = ShardedCollection.create(tmp_path / "s", 4)
    ids = [f"doc-{i}" for i in range(200)]
    col.add({"id": i, "text": f"text {i}"} for i in ids)
    for s in range(4):
        held = {d.id for d in col.pool.call(s, "documents", col.snapshot().generations[s])}
        assert held == {i for i in ids if shard_of(i, 4) == s}
    assert shard_of("doc-7", 4) == shard_of("doc-7", 4) and 0 <= shard_of("é", 3) < 3
    col.close()


def test_updates_deletes_and_ties_follow_one_collection(tmp_path):
    # identical texts score the same: one collection ranks them in insertion order, and so must the shards
    docs = [{"id": f"d{i}", "text": "same words here"} for i in range(30)] + [{"id": "x", "text": "other words"}]
    single = Collection.create(tmp_path / "one")
    sharded = ShardedCollection.create(tmp_path / "many", 3)
    for col in (single, sharded):
        col.add(docs)
        col.add([{"id": "d3", "text": "same words here"}])  # an update moves d3 to the end
        col.delete(["d5", "x"])
    _assert_same(single.search(["same words"], 40), sharded.search(["same words"], 40))
    assert sharded.get("d5") is None and sharded.get("d3").text == "same words here"
    assert sharded.get_many(["d1", "d2"]) == single.get_many(["d1", "d2"])  # title, text, metadata intact
    assert "_rk_seq" not in sharded.get("d3").metadata
    sharded.close()


def test_a_multi_shard_write_is_visible_whole_or_not_at_all(tmp_path):
    col = ShardedCollection.create(tmp_path / "s", 3)
    reader = ShardedCollection(tmp_path / "s")
    batches, size = 12, 30
    seen_partial: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            cut = reader.snapshot()
            for b in range(batches):
                docs = reader.get_many([f"b{b}-{i}" for i in range(size)], cut)
                present = sum(d is not None for d in docs)
                if present not in (0, size):
                    seen_partial.append(f"batch {b}: {present} of {size} at cut {cut.generation}")
            hits = {d for d, _ in reader.search("payload", 1000).hits(0)}
            for b in range(batches):
                present = sum(f"b{b}-{i}" in hits for i in range(size))
                if present not in (0, size):
                    seen_partial.append(f"search: batch {b}: {present} of {size}")

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for b in range(batches):
            col.add([{"id": f"b{b}-{i}", "text": f"payload {b}"} for i in range(size)])
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not seen_partial, seen_partial[:3]
    assert len(col) == batches * size
    counts = [len(col.search(f"payload {b}", 1000).hits(0)) for b in range(batches)]
    assert counts == [batches * size] * batches  # every document matches "payload"
    col.close()
    reader.close()


def test_a_writer_that_died_between_shard_commits_is_undone(tmp_path):
    col = ShardedCollection.create(tmp_path / "s", 3)
    col.add([{"id": f"keep{i}", "text": "kept"} for i in range(20)])
    before = sorted(d.id for d in col.iter_documents())
    # A writer commits every shard, then dies before the cluster manifest records them.
    w = col.writer()
    w.add([{"id": f"lost{i}", "text": "lost"} for i in range(20)])
    targets = [s for s in range(3) if w._calls[s]]
    col.pool.scatter("commit", [(w._transaction, w._calls[s]) for s in targets], shards=targets)
    w._lock.release()  # what the kernel does when the process dies
    w.closed = True
    col.pool.scatter("close_writer", None)
    # readers still see the last recorded cut
    assert sorted(d.id for d in col.iter_documents()) == before
    assert col.search("lost", 10).hits(0) == []
    # the next writer undoes the unrecorded shard commits before writing
    col.add([{"id": "new", "text": "new"}])
    assert sorted(d.id for d in col.iter_documents()) == sorted(before + ["new"])
    for s in range(3):  # the shards on their own agree: nothing of the dead writer is left
        shard = Collection(ClusterManifest.read(col.path).shard_path(col.path, s))
        assert not any(d.id.startswith("lost") for d in shard.iter_documents())
    col.close()


def test_bad_input_is_refused_with_a_clear_error(tmp_path):
    with pytest.raises(CollectionError, match="at least 1 shard"):
        ShardedCollection.create(tmp_path / "zero", 0)
    col = ShardedCollection.create(tmp_path / "s", 2)
    with pytest.raises(CollectionError, match="already exists"):
        ShardedCollection.create(tmp_path / "s", 2)
    with pytest.raises(CollectionError, match="reserve"):
        col.add([{"id": "a", "text": "x", "metadata": {"_rk_seq": 1}}])
    with pytest.raises(Exception, match="item 1: missing or empty document id"):
        col.add([{"id": "a", "text": "x"}, {"id": "", "text": "y"}])
    assert len(col) == 0  # the failed transaction left nothing
    with pytest.raises(CollectionError, match="not a sharded"):
        ShardedCollection(tmp_path)
    (tmp_path / "s" / "cluster.json").write_text("{not json")
    with pytest.raises(CollectionError, match="cluster.json"):
        ShardedCollection(tmp_path / "s")
    col.close()


def test_a_filter_on_a_field_only_some_shards_have_works_and_bad_filters_fail_clearly(tmp_path):
    from retrievekit.core.filters import FilterError

    docs = [{"id": f"d{i}", "text": "shared words"} for i in range(9)]
    docs[4]["metadata"] = {"year": 2000}
    single = Collection.create(tmp_path / "one")
    single.add(docs)
    sharded = ShardedCollection.create(tmp_path / "many", 3)
    sharded.add(docs)
    _assert_same(single.search(["shared"], 10, filter={"year": 2000}),
                 sharded.search(["shared"], 10, filter={"year": 2000}))
    assert sharded.search(["shared"], 10, filter={"year": 2000}).hits(0)[0][0] == "d4"
    with pytest.raises(FilterError, match="nosuchfield") as err:
        sharded.search(["shared"], 10, filter={"nosuchfield": 1})
    assert "_rk_seq" not in str(err.value)
    sharded.close()


def test_statistics_are_gathered_once_per_cut_and_term(tmp_path):
    docs = [{"id": f"d{i}", "text": f"alpha beta word{i % 7}"} for i in range(60)]
    single = Collection.create(tmp_path / "one")
    single.add(docs)
    sharded = ShardedCollection.create(tmp_path / "many", 3)
    sharded.add(docs)
    calls: list[list[str]] = []
    original = sharded.pool.scatter

    def counting(method, args=None, **kw):
        if method == "term_stats":
            calls.append(list(args[0][0]))
        return original(method, args, **kw)

    sharded.pool.scatter = counting  # type: ignore[method-assign]
    for _ in range(3):
        _assert_same(single.search(["alpha word3"], 20), sharded.search(["alpha word3"], 20))
    assert calls == [["alpha", "word3"]]  # later searches of the same cut reuse the gathered statistics
    _assert_same(single.search(["beta word3"], 20), sharded.search(["beta word3"], 20))
    assert calls[-1] == ["beta"]  # only the new term is asked for
    for col in (single, sharded):
        col.add([{"id": "new", "text": "alpha alpha"}])  # a new cut: gathered afresh
    _assert_same(single.search(["alpha word3"], 20), sharded.search(["alpha word3"], 20))
    assert calls[-1] == ["alpha", "word3"]
    sharded.close()
