"""The RAG pipeline over collections: passage collections, selection, citations, cache, safety, CLI and API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from http_helpers import RAG_DOCS, ScriptedGenerator

from retrievekit import Collection
from retrievekit.cli.main import main
from retrievekit.rag.pipeline import RAG, RAGError, RetrievalCache

DOCS = RAG_DOCS


@pytest.fixture()
def passages_col(tmp_path: Path) -> Collection:
    col = Collection.create(tmp_path / "p", passages="sentences:12")
    col.add(DOCS)
    return col


def test_passage_collection_stores_spans_that_round_trip(passages_col: Collection) -> None:
    texts = {d["id"]: d["text"] for d in DOCS}
    stored = list(passages_col.iter_documents())
    assert len(stored) > len(DOCS) and all("#" in d.id for d in stored)
    for doc in stored:
        parent = doc.metadata["passage_of"]
        assert texts[parent][doc.metadata["passage_start"]:doc.metadata["passage_end"]] == doc.text
        assert doc.id.startswith(parent + "#") and doc.title


def test_update_and_delete_replace_all_passages(passages_col: Collection) -> None:
    before = len(passages_col)
    n_bm25 = sum(1 for d in passages_col.iter_documents() if d.metadata["passage_of"] == "bm25")
    assert n_bm25 >= 2
    passages_col.add([{"id": "bm25", "text": "Short now."}])  # fewer passages than before: none may linger
    left = [d for d in passages_col.iter_documents() if d.metadata["passage_of"] == "bm25"]
    assert [d.id for d in left] == ["bm25#0"] and left[0].text == "Short now."
    assert len(passages_col) == before - n_bm25 + 1
    assert passages_col.delete(["cats"]) == 1
    assert not any(d.metadata["passage_of"] == "cats" for d in passages_col.iter_documents())


def test_contexts_only_and_offsets(passages_col: Collection) -> None:
    answer = passages_col.ask("who developed BM25", generator=None, selector="top:3", mode="bm25")
    assert answer.answer == "" and 0 < len(answer.contexts) <= 3
    top = answer.contexts[0]
    assert top.doc_id == "bm25" and "Robertson" in top.text
    assert DOCS[0]["text"][top.start:top.end] == top.text


def test_answer_citations_resolve_to_passages(passages_col: Collection) -> None:
    gen = ScriptedGenerator("Robertson and Sparck Jones developed it [1]. See also [9].")
    answer = RAG(passages_col, generator=gen, selector="top:3", mode="bm25").ask("who developed BM25")
    assert [c.number for c in answer.citations] == [1]  # [9] is not a source
    cited = answer.citations[0]
    assert cited.passage_id == answer.contexts[0].id and cited.doc_id == "bm25"
    assert DOCS[0]["text"][cited.start:cited.end] == answer.contexts[0].text
    messages = gen.prompts[0]
    assert isinstance(messages, list) and "<data" in messages[1]["content"]  # retrieved text marked as data
    assert "[1]" in messages[1]["content"] and not answer.unknown
    out = answer.to_json()
    assert out["citations"][0]["doc_id"] == "bm25" and out["contexts"][0]["number"] == 1


def test_no_context_means_i_dont_know_without_generating(passages_col: Collection) -> None:
    gen = ScriptedGenerator("made up")
    answer = RAG(passages_col, generator=gen, mode="bm25").ask("quantum chromodynamics gluon")
    assert answer.unknown and answer.answer == "I don't know" and gen.prompts == []


def test_safety_flags_allow_list_and_drop(passages_col: Collection) -> None:
    answer = passages_col.ask("BM25 ranking", generator=None, selector="top:10", mode="bm25")
    flagged = {p.id for p in answer.contexts if p.flags}
    assert flagged == {"evil#1"}  # only the passage with the injection, not its innocent neighbour
    dropped = passages_col.ask("BM25 ranking", generator=None, selector="top:10", mode="bm25", drop_flagged=True)
    assert dropped.contexts and not flagged & {p.id for p in dropped.contexts}
    allowed = passages_col.ask("BM25 ranking", generator=None, selector="top:10", mode="bm25",
                               allow={"source": ["wiki"]})
    assert allowed.contexts and {p.doc_id for p in allowed.contexts} <= {"bm25", "cats"}


def test_compression_keeps_exact_spans(passages_col: Collection) -> None:
    answer = passages_col.ask("who developed BM25", generator=None, selector="top:5", compress="lexical:1",
                              mode="bm25")
    texts = {d["id"]: d["text"] for d in DOCS}
    for p in answer.contexts:
        assert p.spans
        pieces = [texts[p.doc_id][s:e] for s, e in p.spans]
        assert " ".join(pieces) == p.text


def test_retrieval_cache_reuses_repeats_and_near_duplicates(passages_col: Collection) -> None:
    rag = RAG(passages_col, generator=None, mode="bm25", cache=RetrievalCache(threshold=0.75))
    first = rag.ask("who developed the BM25 ranking function")
    again = rag.ask("Who developed the BM25 ranking function?")
    near = rag.ask("who developed the BM25 ranking function originally")
    other = rag.ask("how long do cats sleep")
    assert not first.retrieval_cached and again.retrieval_cached and near.retrieval_cached
    assert not other.retrieval_cached
    assert [p.id for p in again.contexts] == [p.id for p in first.contexts]
    assert rag.cache is not None and rag.cache.hits == 2 and rag.cache.misses == 2
    passages_col.add([{"id": "new", "text": "BM25 was also developed further by many others."}])
    assert not rag.ask("who developed the BM25 ranking function").retrieval_cached  # a commit invalidates


def test_multi_query_expansion_fuses_rewrites(passages_col: Collection) -> None:
    gen = ScriptedGenerator("1. how long do cats sleep\n2. vectors inner product")
    rag = RAG(passages_col, generator=gen, mode="bm25", expand="multi-query:2", selector="top:10", cache=False)
    answer = rag.ask("BM25 ranking")
    assert answer.queries == ["BM25 ranking", "how long do cats sleep", "vectors inner product"]
    assert {"bm25", "cats", "dense"} <= {p.doc_id for p in answer.contexts}


def test_bad_settings_are_clear(passages_col: Collection, tmp_path: Path) -> None:
    with pytest.raises(RAGError, match="compress"):
        RAG(passages_col, compress="zip")
    with pytest.raises(RAGError, match="needs a generator"):
        RAG(passages_col, expand="hyde").ask("x y")
    with pytest.raises(RAGError, match="empty"):
        RAG(passages_col).ask("  ")
    with pytest.raises(Exception, match="unknown chunking"):
        Collection.create(tmp_path / "bad", passages="chapters")


def test_whole_document_collection(tmp_path: Path) -> None:
    col = Collection.create(tmp_path / "docs")
    col.add(DOCS)
    answer = col.ask("inner product of vectors", generator=None, selector="top:1")
    p = answer.contexts[0]
    assert (p.id, p.doc_id, p.start, p.end) == ("dense", "dense", 0, len(DOCS[1]["text"]))


def test_cli_ask_json(passages_col: Collection, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", str(passages_col.path), "who developed BM25", "--generator", "none", "--json",
                 "--selector", "top:2", "--compress", "lexical:1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answer"] == "" and out["citations"] == [] and 1 <= len(out["contexts"]) <= 2
    assert out["contexts"][0]["doc_id"] == "bm25" and out["context_tokens"] > 0


def test_answers_without_citations_are_withheld(passages_col: Collection) -> None:
    gen = ScriptedGenerator("Robertson and Sparck Jones developed it.")
    answer = RAG(passages_col, generator=gen, selector="top:3", mode="bm25").ask("who developed BM25")
    assert answer.unknown and answer.answer == "I don't know" and not answer.citations
    assert answer.unsupported == "Robertson and Sparck Jones developed it."
    assert answer.to_json()["unsupported_answer"] == answer.unsupported
    kept = RAG(passages_col, generator=gen, selector="top:3", mode="bm25", require_citations=False)
    assert kept.ask("who developed BM25").answer == "Robertson and Sparck Jones developed it."


@pytest.mark.parametrize("workers", [1, 2])
def test_ingest_into_a_passage_collection(tmp_path: Path, workers: int) -> None:
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    col = Collection.create(tmp_path / f"p{workers}", passages="sentences:12")
    report = col.ingest(source, progress=False, workers=workers)
    assert report["documents"] == len(DOCS)  # documents, not passages
    stored = list(col.iter_documents())
    assert {d.metadata["passage_of"] for d in stored} == {d["id"] for d in DOCS}
    assert all(d.id.count("#") == 1 for d in stored)  # passages are not cut into passages again
