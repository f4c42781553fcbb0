"""Sharded collections on a real local multi-node Ray cluster (``ray.cluster_utils.Cluster``: a head and two
worker nodes on this machine, every one bound to 127.0.0.1): rankings equal one collection's, and killing a shard
actor or a whole worker node in the middle of writing loses no acknowledged document."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest
from test_sharded_local import _assert_same, _scifact

from retrievekit import Collection
from retrievekit.core.document import Document
from retrievekit.core.errors import CollectionError
from retrievekit.sharding import ShardedCollection
from retrievekit.sharding.backends.base import CutExpiredError, ShardUnavailableError

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0"  # conftest.py, before Ray was imported
    node = {"node_ip_address": "127.0.0.1", "object_store_memory": 80 * 1024**2}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False, **node})
    workers = [c.add_node(num_cpus=1, **node) for _ in range(2)]
    c.wait_for_nodes(timeout=120)
    ray.init(address=c.address, namespace="retrievekit-tests", log_to_driver=False)
    try:
        yield c, workers
    finally:
        ray.shutdown()
        c.shutdown()


def test_every_node_and_the_driver_are_on_loopback(cluster):
    nodes = [n for n in ray.nodes() if n["Alive"]]
    assert len(nodes) == 3
    assert {n["NodeManagerAddress"] for n in nodes} == {"127.0.0.1"}
    assert ray.util.get_node_ip_address() == "127.0.0.1"


@pytest.fixture(scope="module")
def scifact_on_ray(cluster, tmp_path_factory):
    pytest.importorskip("wordllama")
    c, _ = cluster
    docs, queries = _scifact()
    root = tmp_path_factory.mktemp("ray-scifact")
    single = Collection.create(root / "single", dense="wordllama")
    single.add(docs)
    sharded = ShardedCollection.create(root / "sharded", 3, ray=c.address, dense="wordllama")
    sharded.add(docs)
    return single, sharded, queries[:200]


def test_shards_are_actors_on_the_worker_nodes(scifact_on_ray):
    _, sharded, _ = scifact_on_ray
    pings = [ray.get(a.ping.remote(), timeout=60) for a in sharded.pool.actors]
    assert [p["shard"] for p in pings] == [0, 1, 2]
    assert len({p["pid"] for p in pings}) == 3 and os.getpid() not in {p["pid"] for p in pings}


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_rankings_over_ray_shards_equal_one_collection(scifact_on_ray, mode):
    single, sharded, queries = scifact_on_ray
    _assert_same(single.search(queries, 100, mode=mode), sharded.search(queries, 100, mode=mode))


def _write_while(sharded: ShardedCollection, disrupt, *, transactions: int = 12, size: int = 15,
                 max_seconds: float = 180.0):
    """Write batches of ``size`` documents, one transaction each (retrying one whose commit failed, a bounded number
    of times), while ``disrupt(committed, stop)`` runs in another thread — ``committed()`` is how many transactions
    were acknowledged so far, so a disruption can wait for the writes to be under way instead of guessing a time.
    Writing goes on until ``transactions`` are done and the disruption has finished (bounded by ``max_seconds``);
    returns the ids of acknowledged (committed) documents."""
    acknowledged: list[str] = []
    failures: list[str] = []
    done = [0]
    stop = threading.Event()
    thread = threading.Thread(target=disrupt, args=(lambda: done[0], stop))
    thread.start()
    deadline = time.monotonic() + max_seconds
    t = 0
    try:
        while t < transactions or thread.is_alive():
            if time.monotonic() > deadline:
                raise AssertionError(f"the writes and the disruption took over {max_seconds} s")
            ids = [f"t{t}-{i}" for i in range(size)]
            for _attempt in range(30):
                try:
                    sharded.add([{"id": i, "text": f"batch {t} words"} for i in ids], lock_timeout=30)
                    acknowledged.extend(ids)
                    break
                except (ShardUnavailableError, CollectionError) as exc:
                    failures.append(type(exc).__name__)
                    time.sleep(0.5)
            else:
                raise AssertionError(f"transaction {t} never committed: {failures[-3:]}")
            t += 1
            done[0] = t
    finally:
        stop.set()
        thread.join(timeout=120)
    return acknowledged, failures


def _wait_for(committed, n: int, stop: threading.Event) -> bool:
    """Wait until ``n`` transactions were acknowledged; False if told to stop first."""
    while committed() < n:
        if stop.wait(0.02):
            return False
    return True


def _assert_nothing_acknowledged_is_lost(sharded: ShardedCollection, acknowledged: list[str]) -> None:
    for _ in range(60):  # wait until every shard answers again
        try:
            docs = sharded.get_many(acknowledged)
            break
        except ShardUnavailableError:
            time.sleep(1)
    else:
        raise AssertionError("the shards never came back")
    missing = [i for i, d in zip(acknowledged, docs) if d is None]
    assert not missing, f"{len(missing)} acknowledged documents lost, e.g. {missing[:5]}"
    assert len(sharded) == len(acknowledged)
    hits = sharded.search("words", len(acknowledged) + 10).hits(0)
    assert sorted(d for d, _ in hits) == sorted(acknowledged)


def test_killing_a_shard_actor_mid_write_loses_no_acknowledged_document(cluster, tmp_path):
    c, _ = cluster
    sharded = ShardedCollection.create(tmp_path / "s", 3, ray=c.address)
    kills = []

    def kill_shards(committed, stop: threading.Event) -> None:
        for n in range(3):  # three kills, each after two more acknowledged transactions
            if not _wait_for(committed, 2 + 2 * n, stop):
                return
            sharded.pool.kill(n % 3)  # Ray restarts it from the shard's last commit
            kills.append(n % 3)

    acknowledged, _failures = _write_while(sharded, kill_shards)
    assert kills == [0, 1, 2], "the actors were not all killed during the writes"
    _assert_nothing_acknowledged_is_lost(sharded, acknowledged)


def test_partial_results_are_flagged_and_otherwise_a_dead_shard_fails_clearly(cluster, tmp_path):
    c, _ = cluster
    sharded = ShardedCollection.create(tmp_path / "s", 3, ray=c.address, allow_partial_results=False)
    sharded.add([{"id": f"d{i}", "text": f"common word{i}"} for i in range(60)])
    sharded.pool.kill(1, restart=False)
    with pytest.raises(ShardUnavailableError, match="shard 1"):
        sharded.search("common", 100)
    other = ShardedCollection.create(tmp_path / "other", 2, ray=c.address)
    other.add([{"id": "x", "text": "common"}])
    names = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
    other.shutdown_actors()  # detached on a shared cluster: ended only when asked
    after = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
    assert len(names - after) == 2
    results = sharded.search("common", 100, allow_partial_results=True)
    assert results.missing_shards == (1,) and results.partial
    hits = results.hits(0)
    assert 0 < len(hits) < 60 and all(d not in {f"d{i}" for i in range(60)} - {h for h, _ in hits} for d, _ in hits)


def test_concurrent_writers_and_readers_see_only_whole_multi_shard_commits(cluster, tmp_path):
    c, _ = cluster
    ShardedCollection.create(tmp_path / "s", 3, ray=c.address)
    writers = [ShardedCollection(tmp_path / "s", ray=c.address) for _ in range(2)]
    reader = ShardedCollection(tmp_path / "s", ray=c.address)
    batches, size = 5, 12
    partial: list[str] = []
    cuts: set[int] = set()
    stop = threading.Event()

    def write(w: int) -> None:
        for b in range(batches):
            writers[w].add([{"id": f"w{w}-b{b}-{i}", "text": f"words w{w}b{b}"} for i in range(size)],
                           lock_timeout=60)

    errors: list[BaseException] = []

    def check(hits: set[str], where: str) -> None:
        for w in range(2):
            for b in range(batches):
                n = sum(f"w{w}-b{b}-{i}" in hits for i in range(size))
                if n not in (0, size):
                    partial.append(f"{where}: writer {w} batch {b}: {n} of {size}")

    def read_cuts() -> None:  # an explicit cut: whole commits only, or a clear CutExpiredError once writers move on
        try:
            while not stop.is_set():
                cut = reader.snapshot()
                cuts.add(cut.generation)
                try:
                    hits = {d for d, _ in reader.retriever("bm25", cut=cut).search(["words"], 1000).hits(0)}
                except CutExpiredError:
                    continue
                check(hits, f"cut {cut.generation}")
                assert len(hits) == cut.documents  # the cut's count and its searchable documents agree
        except BaseException as exc:
            errors.append(exc)

    def read_latest() -> None:  # plain searches never fail while writers commit
        try:
            while not stop.is_set():
                check({d for d, _ in reader.search(["words"], 1000).hits(0)}, "latest")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(2)]
    readers = [threading.Thread(target=read_cuts), threading.Thread(target=read_latest)]
    for t in threads + readers:
        t.start()
    for t in threads:
        t.join(timeout=300)
    stop.set()
    for t in readers:
        t.join(timeout=60)
    assert not errors, errors[:3]
    assert not partial, partial[:3]
    assert len(cuts) > 2  # the reader saw several commits go by
    assert len(reader) == 2 * batches * size


def test_distributed_ingest_gives_the_same_collection_as_one_process(cluster, tmp_path):
    pytest.importorskip("wordllama")
    from retrievekit.encoders.cache import EmbeddingCache, default_cache_root
    from retrievekit.sharding.ingest import encode_into_cache

    c, _ = cluster
    docs, queries = _scifact()
    docs = [{**d, "title": f"{d['title']} {tmp_path.name}"} for d in docs[:200]]  # texts no earlier test encoded
    source = tmp_path / "docs.jsonl"
    with source.open("w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"_id": d["id"], "title": d["title"], "text": d["text"]}) + "\n")
    sharded = ShardedCollection.create(tmp_path / "s", 3, ray=c.address, dense="wordllama")
    dense = sharded.config["dense"]
    cache_folder = EmbeddingCache(default_cache_root(), dense["default"]["encoder"]).folder

    def cached() -> tuple[int, int]:
        cache = EmbeddingCache(default_cache_root(), dense["default"]["encoder"])
        return len(cache), len(list(cache_folder.glob("keys-*.npy")))

    before, _ = cached()
    # the encoding half alone: a Ray Data pool of 2 actors fills the shared cache, and a second run adds nothing
    assert encode_into_cache([Document(d["id"], d["text"], d["title"]) for d in docs[:100]], dense, workers=2) == 100
    after_first = cached()
    assert after_first[0] == before + 100
    encode_into_cache([Document(d["id"], d["text"], d["title"]) for d in docs[:100]], dense, workers=2)
    assert cached() == after_first
    # the whole ingest: encode the rest, then the shard writers commit and find every vector cached
    report = sharded.ingest(source, encoders=2)
    assert report["documents"] == 200 and report["encoded_texts"] == 200
    assert cached()[0] == before + 200
    single = Collection.create(tmp_path / "one", dense="wordllama")
    files = cached()[1]
    single.ingest(source, progress=False, workers=1)
    assert cached()[1] == files  # one process finds every vector cached too: nothing was encoded twice
    assert sorted((d.id, d.title, d.text) for d in sharded.iter_documents()) == sorted(
        (d.id, d.title, d.text) for d in single.iter_documents())
    for mode in ("bm25", "dense", "hybrid"):
        _assert_same(single.search(queries[:100], 50, mode=mode), sharded.search(queries[:100], 50, mode=mode))


def test_losing_a_worker_node_mid_write_loses_no_acknowledged_document(cluster, tmp_path):
    c, workers = cluster
    sharded = ShardedCollection.create(tmp_path / "s", 3, ray=c.address)
    sharded.add([{"id": "first", "text": "words first"}])
    removed = []

    def remove_node(committed, stop: threading.Event) -> None:
        if not _wait_for(committed, 3, stop):
            return
        c.remove_node(workers[1])  # every actor there dies; Ray restarts them on the node left
        removed.append(True)

    acknowledged, _ = _write_while(sharded, remove_node)
    assert removed, "the node was not removed during the writes"
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    _assert_nothing_acknowledged_is_lost(sharded, ["first", *acknowledged])
    # the restarted shards serve exact results again
    np.testing.assert_array_equal(sharded.search("words", 5).ids, sharded.search("words", 5).ids)
