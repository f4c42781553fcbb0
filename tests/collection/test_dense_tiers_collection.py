"""Compressed and ANN search tiers inside collections: exactness with full oversampling, filters, persistence,
merges, garbage collection, bad specs."""

from __future__ import annotations

import numpy as np
import pytest
from toy_encoder import ToyEncoder

from retrievekit import Collection, RetrievekitError
from retrievekit.index.dense.compressed import parse_vectors, tier_folder
from retrievekit.index.dense.segment import vectors_file

DOCS = [{"id": f"d{i}", "text": f"document {i} about topic {i % 13} and thing {i % 7}",
         "metadata": {"even": i % 2 == 0}} for i in range(600)]
QUERIES = [f"topic {i} thing {i % 5}" for i in range(25)]


@pytest.fixture(scope="module")
def exact(tmp_path_factory):
    c = Collection.create(tmp_path_factory.mktemp("exact") / "c", dense="toy:bow")
    c.add(DOCS)
    return c


def build(path, tier, batches=(DOCS,)):
    c = Collection.create(path, dense="toy:bow", vectors=tier)
    for batch in batches:
        c.add(batch)
    return c


def overlap(a, b, k=10):
    return float(np.mean([len(set(x[:k]) & set(y[:k])) / k for x, y in zip(a.ids.tolist(), b.ids.tolist())]))


@pytest.mark.parametrize("tier", ["binary+rescore:1000", "int8+rescore:1000", "pq:16+rescore:1000",
                                  "leanvec-ood:32+rescore:1000"])
def test_rescoring_with_full_oversampling_is_exact(tmp_path, exact, tier):
    c = build(tmp_path / "c", tier)
    got, ref = c.search(QUERIES, k=10, mode="dense"), exact.search(QUERIES, k=10, mode="dense")
    assert got.ids.tolist() == ref.ids.tolist()
    assert np.allclose(got.scores, ref.scores, atol=1e-5)


@pytest.mark.parametrize(("tier", "minimum"), [("float16", 0.99), ("int8", 0.95), ("binary+rescore:10", 0.85),
                                               ("hnsw", 0.95), ("ivf:nlist=8,nprobe=8", 0.95)])
def test_tiers_find_the_exact_neighbours(tmp_path, exact, tier, minimum):
    c = build(tmp_path / "c", tier, batches=(DOCS[:300], DOCS[300:]))  # two segments, each with its own tier
    assert overlap(c.search(QUERIES, k=10, mode="dense"), exact.search(QUERIES, k=10, mode="dense")) >= minimum


@pytest.mark.parametrize("tier", ["int8", "binary+rescore", "hnsw"])
def test_filters_apply_inside_tiers(tmp_path, tier):
    c = build(tmp_path / "c", tier)
    res = c.search(QUERIES, k=10, mode="dense", filter={"even": True})
    ids = [d for row in res.ids.tolist() for d in row if d is not None]
    assert ids and all(int(d[1:]) % 2 == 0 for d in ids)


def test_tier_persists_merges_and_is_collected(tmp_path):
    c = build(tmp_path / "c", "int8+rescore", batches=(DOCS[:300], DOCS[300:]))
    before = c.search(QUERIES, k=5, mode="dense")
    again = Collection(c.path)
    assert again.search(QUERIES, k=5, mode="dense").ids.tolist() == before.ids.tolist()
    calls = ToyEncoder.calls
    c.delete(["d1"])
    c.optimize()
    assert ToyEncoder.calls == calls  # the merged segment's tier is rebuilt from stored vectors
    config = c.config["dense"]["default"]
    (seg,) = c.snapshot().segments
    assert (seg.folder / tier_folder(vectors_file(config))).is_dir()
    info = c.info()["dense"]["default"]
    assert info["vectors"]["tier"] == "int8" and info["tiers"]["int8"]["memory_bytes"] > 0
    assert info["tiers"]["int8"]["bytes_per_vector"] < 4 * 64 / 2
    c.drop_dense_index()
    with c.writer():
        pass
    assert not (seg.folder / tier_folder(vectors_file(config))).exists()


def test_small_segments_fall_back_to_exact_search(tmp_path, exact):
    c = build(tmp_path / "c", "pq:16", batches=(DOCS[:100],))  # PQ needs 256 training vectors
    sub = exact.search(QUERIES, k=5, mode="dense", filter={"even": {"in": [True, False]}})
    assert c.search(QUERIES, k=5, mode="dense").ids.shape == sub.ids.shape


def test_bad_vector_specs_are_clear():
    assert parse_vectors("float32") is None
    assert parse_vectors("binary+rescore:8") == {"tier": "binary", "rescore": True, "oversample": 8.0}
    assert parse_vectors("hnsw") == {"ann": "hnsw"}
    for bad in ("bogus", "hnsw+rescore", "binary+rescore:lots"):
        with pytest.raises(RetrievekitError):
            parse_vectors(bad)
