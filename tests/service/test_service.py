"""The service layer shared by the CLI, the HTTP API and MCP: defaults (RAGConfig), validation errors naming the
parameter, mode checks, hit formatting, documents, info, and the cached pipeline behind /api/ask."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from http_helpers import ScriptedGenerator

from retrievekit import Collection
from retrievekit.core.errors import RetrievekitError
from retrievekit.rag.config import RAGConfig
from retrievekit.rag.pipeline import RAG
from retrievekit.service import (
    HTML_HITS,
    MODES,
    PLAIN_HITS,
    UNSET,
    Asker,
    AskRequest,
    DocumentPatch,
    SearchRequest,
    ServiceError,
    add_documents,
    collection_info,
    delete_documents,
    get_document,
    search,
    search_batch,
    update_document,
)
from retrievekit.service.search import html_snippet

DOCS = [
    {"id": "bm25", "title": "BM25", "text": "Okapi BM25 is a ranking function. It was developed by Robertson and "
     "Sparck Jones.", "metadata": {"source": "wiki", "year": 1994}},
    {"id": "cats", "title": "Cats <b>", "text": "Cats sleep for most of the day. They are popular pets.",
     "metadata": {"source": "blog", "year": 2020}},
    {"id": "notext", "title": "Ranking title only", "text": "", "metadata": {}},
]


@pytest.fixture
def col(tmp_path: Path) -> Collection:
    c = Collection.create(tmp_path / "col")
    c.add(DOCS)
    return c


def error(fn: Any, *args: Any, **kwargs: Any) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        fn(*args, **kwargs)
    return info.value


# -- search -----------------------------------------------------------------------------------------------------
def test_search_defaults_and_html_hits(col: Collection) -> None:
    response = search(col, SearchRequest("ranking function"))
    out = response.to_json()
    assert (out["query"], out["mode"], out["k"], out["offset"]) == ("ranking function", "bm25", 10, 0)
    hit = out["hits"][0]
    assert set(hit) == {"rank", "id", "score", "title", "snippet", "metadata"}
    assert hit["rank"] == 1 and hit["id"] == "bm25" and hit["metadata"] == DOCS[0]["metadata"]
    assert "<mark>ranking</mark>" in hit["snippet"] and out["took_ms"] >= 0
    titled = next(h for h in out["hits"] if h["id"] == "notext")
    assert "<mark>Ranking</mark>" in titled["snippet"]  # no text: the snippet comes from the title


def test_plain_hits_round_scores_and_drop_marks(col: Collection) -> None:
    response = search(col, SearchRequest("ranking function", k=1))
    plain = response.to_json(PLAIN_HITS)["hits"][0]
    html = response.to_json(HTML_HITS)["hits"][0]
    assert "<mark>" not in plain["snippet"] and "ranking" in plain["snippet"]
    assert plain["score"] == round(html["score"], 6)


def test_offsets_rank_from_the_whole_ranking(col: Collection) -> None:
    full = [h.id for h in search(col, SearchRequest("ranking cats", k=3)).hits]
    page = search(col, SearchRequest("ranking cats", k=2, offset=1)).hits
    assert [h.id for h in page] == full[1:3] and [h.rank for h in page] == [2, 3]


def test_html_snippet_escapes_and_highlights(col: Collection) -> None:
    assert html_snippet("a <b>cat</b>", "cat", col.analyzer) == "a &lt;b&gt;<mark>cat</mark>&lt;/b&gt;"
    assert "<mark>" not in html_snippet("a cat", "cat", col.analyzer, highlight=False)


@pytest.mark.parametrize("request_, param, words", [
    (SearchRequest(""), "query", "non-empty"),
    (SearchRequest("q" * 5000), "query", "limit is 4096"),
    (SearchRequest("x", k=0), "k", "from 1 to 1000"),
    (SearchRequest("x", k=True), "k", "integer"),
    (SearchRequest("x", k=101, max_k=100), "k", "from 1 to 100"),
    (SearchRequest("x", offset=-1), "offset", "from 0"),
    (SearchRequest("x", mode="telepathy"), "mode", "bm25, dense, hybrid, sparse"),
    (SearchRequest("x", mode="dense"), "mode", "dense index"),
    (SearchRequest("x", filter={"year": {"near": 1}}), "filter", "near"),
    (SearchRequest("x", filter=["year"]), "filter", "object"),  # type: ignore[arg-type]
])
def test_search_validation_names_the_parameter(col: Collection, request_: SearchRequest, param: str,
                                               words: str) -> None:
    exc = error(search, col, request_)
    assert exc.param == param and words in str(exc)
    assert exc.code == {"mode": "mode_unavailable", "filter": "bad_filter"}.get(param, "bad_request")


def test_batch_search_and_the_default_mode(col: Collection) -> None:
    first, second = search_batch(col, ["okapi", "cats"], SearchRequest("", k=1))
    assert first.mode == second.mode == col.default_mode == "bm25"
    assert [h.id for h in first.hits] == ["bm25"] and [h.id for h in second.hits] == ["cats"]
    assert tuple(MODES) == ("bm25", "dense", "hybrid", "sparse")


# -- documents and info -----------------------------------------------------------------------------------------
def test_documents_get_add_update_delete(col: Collection) -> None:
    assert get_document(col, "bm25").title == "BM25"
    assert error(get_document, col, "nope").code == "not_found"
    assert error(get_document, col, "").param == "id"
    with col.writer() as w:
        assert add_documents(w, [{"id": "new", "text": "fresh"}]) == 1
    with col.writer() as w:
        update_document(col, w, "new", DocumentPatch(title="Fresh"))
    doc = get_document(col, "new")
    assert (doc.title, doc.text) == ("Fresh", "fresh")  # fields left out keep their values
    with col.writer() as w:
        assert error(update_document, col, w, "absent", DocumentPatch(text="x")).code == "not_found"
    with col.writer() as w:
        assert delete_documents(w, ["new", "absent"]) == 1
    with col.writer() as w:
        assert error(delete_documents, w, ["new"], require=True).code == "not_found"


def test_info(col: Collection) -> None:
    info = collection_info(col).to_json()
    assert info["modes"] == ["bm25"] and info["default_mode"] == "bm25" and info["collection"]["documents"] == 3
    assert error(collection_info, col, default_mode="hybrid").code == "mode_unavailable"


# -- ask --------------------------------------------------------------------------------------------------------
def test_rag_defaults_come_from_rag_config() -> None:
    config = RAGConfig()
    params = inspect.signature(RAG).parameters
    for name in RAGConfig.names():
        assert params[name].default == getattr(config, name), name
    assert Asker().defaults() == {"depth": config.depth, "selector": config.selector, "compress": config.compress,
                                  "drop_flagged": config.drop_flagged, "max_tokens": config.max_tokens}
    assert RAGConfig.from_json(config.to_json()) == config
    assert RAGConfig.from_json({"depth": 5}).depth == 5
    with pytest.raises(RetrievekitError, match="accepted: mode, depth"):
        RAGConfig.from_json({"dept": 5})
    server = Asker(options={"selector": "top:1", "allow": {"source": ["wiki"]}})
    assert server.defaults()["selector"] == "top:1"


def test_ask_options_layer_request_over_server_over_config(col: Collection) -> None:
    asker = Asker(RAGConfig(depth=7), options={"selector": "top:2"})
    options = asker.rag_options(col, AskRequest("q"))
    assert (options["depth"], options["selector"], options["mode"]) == (7, "top:2", "bm25")
    assert "compress" not in options and "filter" not in options
    options = asker.rag_options(col, AskRequest("q", depth=3, selector="top:5", compress=None, filter={}))
    assert (options["depth"], options["selector"], options["compress"], options["filter"]) == (3, "top:5", None,
                                                                                               None)
    assert AskRequest("q").compress is UNSET


@pytest.mark.parametrize("request_, code, param", [
    (AskRequest("   "), "bad_request", "question"),
    (AskRequest("q", selector="best:3"), "bad_selector", "selector"),
    (AskRequest("q", selector="gap+mmr:3"), "bad_selector", "selector"),
    (AskRequest("q", compress="lexical:0"), "bad_compress", "compress"),
    (AskRequest("q", compress="dense"), "bad_compress", "compress"),
    (AskRequest("q", mode="dense"), "mode_unavailable", "mode"),
    (AskRequest("q", depth=0), "bad_request", "depth"),
    (AskRequest("q", filter={"year": {"zz": 1}}), "bad_filter", "filter"),
])
def test_ask_validation_happens_before_any_generation(col: Collection, request_: AskRequest, code: str,
                                                      param: str) -> None:
    gen = ScriptedGenerator("unused [1]")
    loaded: list[bool] = []

    def load() -> ScriptedGenerator:
        loaded.append(True)
        return gen

    exc = error(Asker().ask, col, request_, generator=load)
    assert (exc.code, exc.param) == (code, param)
    assert loaded == [] and gen.calls == []


def test_ask_uses_the_collections_cached_pipeline(col: Collection) -> None:
    gen = ScriptedGenerator("Robertson and Sparck Jones [1].")
    asker = Asker()
    first = asker.ask(col, AskRequest("who developed BM25", selector="top:1"), generator=gen)
    again = asker.ask(col, AskRequest("who developed BM25", selector="top:1"), generator=gen)
    assert first.to_json()["generator"] == gen.config() and first.answer.citations[0].doc_id == "bm25"
    assert not first.answer.retrieval_cached and again.answer.retrieval_cached
    request = AskRequest("who developed BM25", selector="top:1")
    assert asker.pipeline(col, request, gen) is asker.pipeline(col, request, gen)
    assert asker.pipeline(col, request, gen) is not asker.pipeline(col, AskRequest("x", selector="top:2"), gen)


def test_a_failing_generator_is_generator_unavailable(col: Collection) -> None:
    from retrievekit.rag.generators.base import GenerationError

    gen = ScriptedGenerator("", fail=GenerationError("endpoint down"))
    exc = error(Asker().ask, col, AskRequest("who developed BM25"), generator=gen)
    assert exc.code == "generator_unavailable" and "endpoint down" in str(exc)
