"""A folder of PDF, Office, EPUB and e-mail files into collections: every readable file indexed, every bad one
skipped with its reason, passages on their pages with exact offsets, and citations that resolve to page + offset."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("pypdfium2")
pytest.importorskip("docx")
pytest.importorskip("pptx")
pytest.importorskip("ebooklib")
pytest.importorskip("fpdf")

from document_fixtures import (
    make_docx,
    make_email,
    make_epub,
    make_mbox,
    make_pdf,
    make_pptx,
    make_zip_bomb,
)
from http_helpers import ScriptedGenerator
from paths import required_program

from retrievekit import Collection
from retrievekit.cli.main import main
from retrievekit.core.errors import InputFormatError
from retrievekit.ingest import read_files
from retrievekit.ingest.documents import parse_document
from retrievekit.rag.pipeline import RAG

BAD = {
    "locked.pdf": "encrypted PDF (needs a password)",
    "cut.pdf": "corrupt or truncated PDF",
    "empty.pdf": "empty file (0 bytes)",
    "bomb.docx": "DOCX looks like a zip bomb",
    "bomb.epub": "EPUB looks like a zip bomb",
    "scan.pdf": "no text layer on any of its 2 pages",
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    (root / "papers").mkdir()
    (root / "papers" / "paper.pdf").write_bytes(make_pdf(5, blank_pages=(4,)))
    (root / "report.docx").write_bytes(make_docx())
    (root / "deck.pptx").write_bytes(make_pptx(3))
    make_epub(root / "book.epub")
    (root / "note.eml").write_bytes(make_email())
    make_mbox(root / "list.mbox", [("Cable report", "The south cable shows rust."),
                                   ("Deck report", "The deck needs new asphalt.")])
    (root / "readme.txt").write_text("Plain notes about the bridge project.\n")
    (root / "locked.pdf").write_bytes(make_pdf(password="secret"))
    (root / "cut.pdf").write_bytes(make_pdf(3)[:700])
    (root / "empty.pdf").write_bytes(b"")
    (root / "bomb.docx").write_bytes(make_zip_bomb("docx"))
    (root / "bomb.epub").write_bytes(make_zip_bomb("epub"))
    (root / "scan.pdf").write_bytes(make_pdf(2, blank_pages=(1, 2)))
    return root


EXPECTED_IDS = {"papers/paper.pdf", "report.docx", "deck.pptx", "book.epub", "note.eml", "list.mbox#1",
                "list.mbox#2", "readme.txt"}


def skipped_reasons(report: dict) -> dict[str, str]:
    return {Path(path).name: reason for path, reason in report["skipped"]}


def test_a_folder_indexes_every_readable_file_and_skips_each_bad_one_with_its_reason(folder, tmp_path):
    col = Collection.create(tmp_path / "col")
    report = col.ingest(folder, progress=False, workers=1)
    assert report["documents"] == len(EXPECTED_IDS)
    assert {doc.id for doc in col.iter_documents()} == EXPECTED_IDS
    reasons = skipped_reasons(report)
    assert set(reasons) == set(BAD), reasons
    for name, reason in BAD.items():
        assert reason in reasons[name], f"{name}: {reasons[name]!r} does not say {reason!r}"
    assert [Path(p).name for p, _ in report["warnings"]] == ["paper.pdf"]
    assert "pages 4" in report["warnings"][0][1]
    paper = col.get("papers/paper.pdf")
    assert paper is not None and paper.title == "Bridges of the World"
    assert paper.metadata["path"] == "papers/paper.pdf" and paper.metadata["pages"] == 5
    assert paper.metadata["pages_without_text"] == [4]
    # the stored text is the extracted text, so the stored page spans index it exactly
    parsed = parse_document((folder / "papers" / "paper.pdf").read_bytes(), folder / "papers" / "paper.pdf")[0]
    assert paper.text == parsed.text
    assert paper.metadata["page_spans"] == [list(span) for span in parsed.pages]
    mail = col.get("list.mbox#2")
    assert mail is not None and mail.title == "Deck report" and mail.text == "The deck needs new asphalt."
    assert col.search(["asphalt"], k=1).hits(0)[0][0] == "list.mbox#2"


def test_passages_lie_on_one_page_with_exact_offsets_and_carry_their_heading(folder, tmp_path):
    col = Collection.create(tmp_path / "passages", passages="sentences:24")
    col.ingest(folder, progress=False, workers=1)
    texts = {}
    for name in ("papers/paper.pdf", "deck.pptx"):
        parsed = parse_document((folder / name).read_bytes(), folder / name)[0]
        texts[name] = parsed
    checked = 0
    for doc in col.iter_documents():
        of = doc.metadata.get("passage_of")
        if of not in texts:
            continue
        parsed = texts[of]
        start, end = doc.metadata["passage_start"], doc.metadata["passage_end"]
        assert parsed.text[start:end] == doc.text, f"{doc.id}: offsets {start}-{end} do not give its text"
        page = doc.metadata["page"]
        assert doc.metadata["page_end"] == page, f"{doc.id} spans pages {page}-{doc.metadata['page_end']}"
        page_start, page_end = parsed.pages[page - 1]
        assert page_start <= start and end <= page_end, f"{doc.id} is not inside page {page}"
        assert "page_spans" not in doc.metadata and "sections" not in doc.metadata  # not copied per passage
        if of.endswith(".pdf"):
            assert doc.metadata["heading"] == f"Chapter {page}"
        checked += 1
    assert checked >= 8
    pages = {d.metadata["page"] for d in col.iter_documents() if d.metadata.get("passage_of") == "papers/paper.pdf"}
    assert pages == {1, 2, 3, 5}  # page 4 has no text


def test_ask_cites_the_page_and_offsets_of_the_passage(folder, tmp_path):
    col = Collection.create(tmp_path / "qa", passages="sentences:24")
    col.ingest(folder, progress=False, workers=1)
    generator = ScriptedGenerator("Topic three is explained with rivets [1].")
    answer = RAG(col, generator=generator, selector="top:1", mode="bm25").ask("topic3 tenacious rivets")
    (citation,) = answer.citations
    assert citation.doc_id == "papers/paper.pdf"
    assert str(citation.location) == "papers/paper.pdf p. 3"
    assert citation.location is not None and citation.location.to_json()["page"] == 3
    parsed = parse_document((folder / "papers" / "paper.pdf").read_bytes(), Path("paper.pdf"))[0]
    cited = parsed.text[citation.start:citation.end]
    assert "topic3" in cited and parsed.pages[2][0] <= citation.start < citation.end <= parsed.pages[2][1]
    # the source shown to the model names the page too
    assert "papers/paper.pdf p. 3" in str(generator.prompts[0])


def test_whole_documents_are_cited_by_the_pages_of_what_compression_kept(folder, tmp_path):
    col = Collection.create(tmp_path / "docs")
    col.ingest(folder, progress=False, workers=1)
    whole = col.ask("topic5 tenacious rivets", generator=None, selector="top:1", mode="bm25")
    assert str(whole.contexts[0].location) == "papers/paper.pdf pp. 1-5"
    kept = col.ask("topic5 tenacious rivets", generator=None, selector="top:1", mode="bm25", compress="lexical:1")
    context = kept.contexts[0]
    assert context.spans and all("topic5" in col.get(context.doc_id).text[s:e] for s, e in context.spans)
    assert str(context.location) == "papers/paper.pdf p. 5"


def test_max_pages_and_the_missing_extra_are_reasons_not_errors(folder, tmp_path, monkeypatch):
    skipped: list[tuple[str, str]] = []
    docs = list(read_files(folder, extensions=[".pdf"], max_pages=3,
                           on_skip=lambda path, reason: skipped.append((path.name, reason))))
    assert [d.id for d in docs] == []  # paper.pdf has 5 pages; the others are bad anyway
    assert ("paper.pdf", "5 pages (over max_pages 3)") in skipped
    monkeypatch.setitem(sys.modules, "pypdfium2", None)  # as if the documents extra were not installed
    skipped.clear()
    docs = list(read_files(folder, extensions=[".pdf", ".txt"],
                           on_skip=lambda path, reason: skipped.append((path.name, reason))))
    assert [d.id for d in docs] == ["readme.txt"]
    assert ("paper.pdf", "PDF files need the documents extra: pip install 'retrievekit[documents]'") in skipped


def test_cli_index_lists_skipped_files_and_search_shows_pages(folder, tmp_path, capsys):
    assert main(["index", str(folder), str(tmp_path / "cli"), "--passages", "sentences:24", "--no-progress",
                 "--workers", "1"]) == 0
    out = capsys.readouterr()
    assert "files skipped" in out.out
    assert "skipped: " in out.err and "locked.pdf: encrypted PDF (needs a password)" in out.err
    assert main(["search", str(tmp_path / "cli"), "topic2 tenacious", "-k", "1"]) == 0
    assert "papers/paper.pdf p. 2" in capsys.readouterr().out


def test_text_files_that_are_not_utf8_are_decoded_with_encoding_auto(tmp_path):
    (tmp_path / "latin.txt").write_bytes("Le pont du Gard a été construit par les Romains.".encode("cp1252"))
    (tmp_path / "utf16.txt").write_bytes("Über die Brücke".encode("utf-16"))
    (tmp_path / "plain.txt").write_text("plain ascii", encoding="utf-8")
    warnings: list[tuple[str, str]] = []
    docs = {d.id: d for d in read_files(tmp_path, encoding="auto",
                                        on_warning=lambda path, message: warnings.append((path.name, message)))}
    assert docs["latin.txt"].text == "Le pont du Gard a été construit par les Romains."
    assert docs["utf16.txt"].text == "Über die Brücke" and docs["utf16.txt"].metadata["encoding"] == "utf-16"
    assert "encoding" not in docs["plain.txt"].metadata
    assert {name for name, _ in warnings} == {"latin.txt", "utf16.txt"}
    with pytest.raises(InputFormatError, match="invalid UTF-8"):  # the default stays strict UTF-8
        list(read_files(tmp_path))


def test_one_document_file_is_a_source_of_its_own(folder, tmp_path, capsys):
    col = Collection.create(tmp_path / "one")
    report = col.ingest(folder / "papers" / "paper.pdf", progress=False, workers=1)
    assert report["documents"] == 1 and [d.id for d in col.iter_documents()] == ["paper.pdf"]
    locked = col.ingest(folder / "locked.pdf", progress=False, workers=1)
    assert locked["documents"] == 0 and locked["skipped"][0][1] == "encrypted PDF (needs a password)"
    assert main(["index", str(folder / "report.docx"), str(tmp_path / "cli"), "--no-progress"]) == 0
    assert "indexed 1 documents" in capsys.readouterr().out
    with pytest.raises(InputFormatError, match="reads a folder"):
        list(read_files(folder / "readme.txt"))


def test_mcp_search_hits_carry_the_page_reference_without_span_lists(folder, tmp_path):
    pytest.importorskip("mcp")
    from retrievekit.serve.mcp import CollectionTools

    passages = Collection.create(tmp_path / "passages", passages="sentences:24")
    passages.ingest(folder, progress=False, workers=1)
    hit = CollectionTools(passages).search("topic3 tenacious", k=1, mode="bm25")["hits"][0]
    assert hit["location"] == "papers/paper.pdf p. 3"
    whole = Collection.create(tmp_path / "whole")
    whole.ingest(folder, progress=False, workers=1)
    hit = CollectionTools(whole).search("topic3 tenacious", k=1, mode="bm25")["hits"][0]
    assert hit["location"] == "papers/paper.pdf pp. 1-5"
    assert not {"page_spans", "sections"} & set(hit["metadata"]) and hit["metadata"]["pages"] == 5


def test_ocrd_pages_are_marked_and_cited_like_any_other(tmp_path, capsys):
    required_program("tesseract", "optional OCR; apt-get install tesseract-ocr tesseract-ocr-eng")
    pytest.importorskip("PIL")
    from document_fixtures import make_scanned_pdf

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "scan.pdf").write_bytes(make_scanned_pdf(["Scanned page about rusty", "suspension cables"]))
    col = Collection.create(tmp_path / "col", passages="sentences:24")
    report = col.ingest(tmp_path / "docs", progress=False, workers=1)
    assert any("OCR'd" in message for _, message in report["warnings"])
    answer = col.ask("rusty suspension cables", generator=None, selector="top:1", mode="bm25")
    assert str(answer.contexts[0].location) == "scan.pdf p. 2" and answer.contexts[0].metadata["pages_ocr"] == [2]
    assert main(["index", str(tmp_path / "docs"), str(tmp_path / "plain"), "--no-ocr", "--no-progress"]) == 0
    assert "pages 2, 3" in capsys.readouterr().err  # reported, not OCR'd


def test_parse_workers_give_the_serial_documents_in_the_same_order(tmp_path):
    for i in range(14):  # more than the files parsed before workers start
        (tmp_path / f"doc-{i:02d}.pdf").write_bytes(make_pdf(2 + i % 3, table_page=None))
    (tmp_path / "doc-05b.pdf").write_bytes(make_pdf(password="x"))
    (tmp_path / "doc-11b.docx").write_bytes(make_docx())
    (tmp_path / "doc-12b.txt").write_text("text between documents")

    def run(workers: int) -> tuple[list, list[tuple[str, str]]]:
        skipped: list[tuple[str, str]] = []
        docs = list(read_files(tmp_path, parse_workers=workers,
                               on_skip=lambda path, reason: skipped.append((path.name, reason))))
        return docs, skipped

    runs = [run(1), run(2)]
    assert runs[0] == runs[1] and len(runs[0][0]) == 16
    assert [d.id for d in runs[1][0]] == sorted(d.id for d in runs[1][0])
    assert runs[1][1] == [("doc-05b.pdf", "encrypted PDF (needs a password)")]
