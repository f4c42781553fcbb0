"""The inverted index's builders with bounded memory give exactly the arrays of the straightforward sort: the
builder's counting sort by term (chunks in document order, spilled runs) and the merge's bucketed packed-key sort,
against full argsorts of the same postings, with several chunks, deletions and interleaved (round-robin) document
numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrievekit.analysis import get_analyzer
from retrievekit.index.bm25 import postings as module
from retrievekit.index.bm25.postings import PostingsBuilder, PostingsReader, write_postings

FILES = ("terms.txt", "df.npy", "cf.npy", "offsets.npy", "docs.npy", "tfs.npy", "lengths.npy")


def _texts(rng: np.random.Generator, n: int) -> list[str]:
    words = [f"w{i}" for i in range(300)] + ["the", "of"]  # two stop words: dropped tokens
    return [" ".join(words[min(r - 1, len(words) - 1)] for r in rng.zipf(1.2, size=rng.integers(0, 40)))
            for _ in range(n)]


def _same_files(a: Path, b: Path) -> None:
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _build(folder: Path, texts: list[str]) -> dict:
    builder = PostingsBuilder(get_analyzer("whitespace"))
    for text in texts:
        builder.add(text)
    return builder.write(folder)


@pytest.mark.parametrize("spill", [None, 900])
def test_the_builder_writes_what_a_full_sort_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    spill: int | None) -> None:
    monkeypatch.setattr(module, "_CHUNK_TOKENS", 500)  # many chunks
    if spill:  # several runs spilled to disk, then streamed into the index in term ranges of ~700 postings
        monkeypatch.setattr(module, "SPILL_POSTINGS", spill)
        monkeypatch.setattr(module, "_MERGE_SLICE", 700)
        monkeypatch.setenv("TMPDIR", str(tmp_path / "spills"))
        (tmp_path / "spills").mkdir()
        import tempfile

        monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    texts = _texts(np.random.default_rng(1), 700)
    builder = PostingsBuilder(get_analyzer("whitespace"))
    for text in texts:
        builder.add(text)
    runs = len(builder._runs)
    stats = builder.write(tmp_path / "built")
    assert (runs >= 3) == bool(spill)
    if spill:
        assert not any((tmp_path / "spills").iterdir())  # the runs are gone once written
    # the reference: every (term, doc, tf) of the whole input, sorted at once
    vocab = (tmp_path / "built" / "terms.txt").read_text().split("\n")[:-1]
    term_id = {t: i for i, t in enumerate(vocab)}
    rows, lengths = [], []
    for doc, text in enumerate(texts):
        counts: dict[int, int] = {}
        for token in text.split():
            counts[term_id[token]] = counts.get(term_id[token], 0) + 1
        rows += [(t, doc, tf) for t, tf in counts.items()]
        lengths.append(sum(counts.values()))
    rows.sort()
    array = np.array(rows, np.int64).reshape(-1, 3)
    reference = write_postings(tmp_path / "reference", vocab, array[:, 0], array[:, 1], array[:, 2],
                               np.array(lengths, np.uint32))
    assert stats == reference
    _same_files(tmp_path / "built", tmp_path / "reference")


@pytest.mark.parametrize("slice_postings", [4_000_000, 500])
def test_the_bucketed_merge_equals_the_general_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   slice_postings: int) -> None:
    monkeypatch.setattr(module, "_MERGE_SLICE", slice_postings)  # one bucket, or many (and many source slices)
    rng = np.random.default_rng(2)
    for s in range(3):
        _build(tmp_path / f"s{s}", _texts(rng, 300 + 50 * s))
    readers = []
    for s in range(3):
        folder = tmp_path / f"s{s}"
        n = len(np.load(folder / "lengths.npy"))
        readers.append((PostingsReader(folder, {}), n))
    # round-robin batches of 7 documents, as parallel ingest numbers them; deleted documents (-1) are dropped and
    # the rest numbered densely in that interleaved order
    positions = [((np.arange(n) // 7) * 3 + s) * 7 + np.arange(n) % 7 for s, (_, n) in enumerate(readers)]
    order = np.argsort(np.concatenate(positions), kind="stable")  # merged position -> concatenated index
    bounds = np.cumsum([0] + [n for _, n in readers])
    deleted = rng.random(len(order)) < 0.1
    live_in_order = ~deleted[order]
    dense = np.full(len(order), -1, np.int64)
    dense[order[live_in_order]] = np.arange(int(live_in_order.sum()))
    sources = [(reader, dense[bounds[s]:bounds[s + 1]]) for s, (reader, _) in enumerate(readers)]
    packed = module.merge_postings(tmp_path / "packed", sources)
    remaps = [np.array([{t: i for i, t in enumerate(dict.fromkeys(
        t for r, _ in sources for t in r.vocabulary()))}[t] for t in reader.vocabulary()], np.int64)
        for reader, _ in sources]
    vocabulary = list(dict.fromkeys(t for r, _ in sources for t in r.vocabulary()))
    lengths = np.zeros(int((dense >= 0).sum()), np.uint32)
    for reader, new_doc in sources:
        live = new_doc >= 0
        lengths[new_doc[live]] = np.asarray(reader.lengths)[live]
    general = module._merge_general(tmp_path / "general", sources, remaps, vocabulary, lengths)
    assert packed == general
    _same_files(tmp_path / "packed", tmp_path / "general")
    for reader, _ in sources:
        reader.close()


def test_the_compiled_token_lookup_equals_the_python_one() -> None:
    if module._kernels is None:
        pytest.fail("the C kernels are not built (pip install -e . compiles them)")
    rng = np.random.default_rng(3)
    vocab = [f"t{i}" for i in range(50)]
    table = {t: int(i) - 1 for i, t in enumerate(vocab[:30])}  # -1: a dropped token; t30..t49 are new
    tokens = [vocab[i] for i in rng.integers(0, 50, size=2000)]
    compiled, python = np.empty(len(tokens), np.int64), np.empty(len(tokens), np.int64)
    new_c = module._kernels.token_ids(tokens, table, compiled)
    new_py = module._py_token_ids(tokens, table, python)
    assert new_c == new_py and sorted(new_c) == sorted(set(vocab[30:]) & set(tokens))
    assert np.array_equal(compiled, python)
    assert [new_c[-2 - i] for i in compiled if i <= -2] == [t for t in tokens if t not in table]
    with pytest.raises(ValueError, match="int64 buffer"):
        module._kernels.token_ids(tokens, table, np.empty(len(tokens) - 1, np.int64))


def test_the_index_is_the_same_without_the_compiled_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a stemming analyzer: several raw tokens ("cell", "cells", "Cells") share a term, and stop words drop out
    texts = ["Cells and cell walls", "the CELLS of cells", "", "walls wall walling of the cell", "and the"] * 40
    analyzer = get_analyzer("lucene-english")
    monkeypatch.setattr(module, "_CHUNK_TOKENS", 37)  # many chunks, new tokens in several of them
    built = {}
    for name, kernels in (("compiled", module._kernels), ("python", None)):
        monkeypatch.setattr(module, "_kernels", kernels)
        builder = PostingsBuilder(analyzer)
        for text in texts:
            builder.add(text)
        built[name] = builder.write(tmp_path / name)
    _same_files(tmp_path / "compiled", tmp_path / "python")
    # and the counts are right: "cell" twice in each of documents 0 and 1 (as "Cells", "cell", "CELLS", "cells")
    folder = tmp_path / "python"
    terms = (folder / "terms.txt").read_text().split("\n")[:-1]
    offsets, docs, tfs = (np.load(folder / f"{name}.npy") for name in ("offsets", "docs", "tfs"))
    cell = terms.index("cell")
    postings = dict(zip(docs[offsets[cell]:offsets[cell + 1]].tolist(), tfs[offsets[cell]:offsets[cell + 1]].tolist()))
    assert postings[0] == 2 and postings[1] == 2 and postings[3] == 1 and 2 not in postings and 4 not in postings
    assert "the" not in terms and "and" not in terms
