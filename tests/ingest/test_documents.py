"""Document parsers (retrievekit.ingest.documents) on files generated here by real libraries: text, page spans,
sections, tables and metadata exact; bad files refused with their reason."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("pypdfium2")
pytest.importorskip("docx")
pytest.importorskip("pptx")
pytest.importorskip("ebooklib")
pytest.importorskip("fpdf")

from document_fixtures import (
    BRIDGES,
    make_docx,
    make_email,
    make_epub,
    make_mbox,
    make_pdf,
    make_pptx,
    make_zip_bomb,
    page_sentence,
)
from paths import required_program

from retrievekit.core.provenance import page_range
from retrievekit.ingest.documents import (
    DocumentLimits,
    UnreadableDocument,
    detect_format,
    parse_document,
)


def only(data: bytes, name: str, limits: DocumentLimits | None = None):
    docs = parse_document(data, Path(name), limits)
    assert len(docs) == 1, f"{name}: expected one document, got {len(docs)}"
    return docs[0]


def test_pdf_pages_are_exact_spans_of_the_text():
    doc = only(make_pdf(4), "paper.pdf")
    assert doc.format == "pdf" and len(doc.pages) == 4
    for number, (start, end) in enumerate(doc.pages, 1):
        page = doc.text[start:end]
        assert page.startswith(f"Chapter {number}\n"), f"page {number} starts with {page[:30]!r}"
        assert " ".join(page.split()).count(page_sentence(number)) == 3, f"page {number}: {page!r}"
        for other in range(1, 5):
            if other != number:
                assert f"topic{other} " not in page, f"page {number} holds text of page {other}"
        assert page_range(doc.pages, start, end) == (number, number)
    assert all(a[1] <= b[0] for a, b in zip(doc.pages, doc.pages[1:])), "page spans overlap"


def test_pdf_outline_becomes_sections_at_their_headings_and_metadata_is_read():
    doc = only(make_pdf(3, title="Bridges of the World", author="Ada Builder"), "paper.pdf")
    assert [s.path for s in doc.sections] == [("Chapter 1",), ("Chapter 2",), ("Chapter 3",)]
    for section, (page_start, _) in zip(doc.sections, doc.pages):
        assert section.start == page_start and doc.text[section.start:].startswith(section.path[0])
    assert doc.sections[0].end == doc.sections[1].start
    assert doc.title == "Bridges of the World" and doc.metadata["author"] == "Ada Builder"
    assert doc.metadata["created"][:4].isdigit()  # an ISO date, not PDF's "D:2026..."


def test_pdf_table_text_stays_on_its_page_in_row_order():
    doc = only(make_pdf(3, table_page=2), "paper.pdf")
    start, end = doc.pages[1]
    lines = [" ".join(line.split()) for line in doc.text[start:end].splitlines()]
    rows = [" ".join(row) for row in BRIDGES]
    positions = [lines.index(row) for row in rows]  # each row is one line, in order
    assert positions == sorted(positions)
    assert "Golden Gate" not in doc.text[: doc.pages[0][1]]


def test_pdf_pages_without_text_are_reported_and_a_textless_pdf_is_refused():
    doc = only(make_pdf(4, blank_pages=(2, 4)), "scan.pdf")
    assert doc.pages_without_text == [2, 4]
    assert doc.pages[1][0] == doc.pages[1][1] and doc.pages[3][0] == doc.pages[3][1]
    assert doc.warnings and "pages 2, 4" in doc.warnings[0]
    with pytest.raises(UnreadableDocument, match="no text layer on any of its 2 pages"):
        parse_document(make_pdf(2, blank_pages=(1, 2)), Path("scan.pdf"))


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("locked.pdf", lambda: make_pdf(password="secret"), "encrypted PDF"),
    ("cut.pdf", lambda: make_pdf(3)[:600], "corrupt or truncated PDF"),
    ("garbage.pdf", lambda: b"%PDF-1.7\nthis is not a pdf at all", "corrupt or truncated PDF"),
    ("empty.pdf", lambda: b"", "empty file"),
    ("bomb.docx", lambda: make_zip_bomb("docx"), "zip bomb"),
    ("bomb.epub", lambda: make_zip_bomb("epub"), "zip bomb"),
    ("broken.docx", lambda: make_docx()[:2000], "corrupt DOCX"),
    ("renamed.pptx", lambda: b"PK\x03\x04 not really a zip", "corrupt PPTX"),
])
def test_bad_files_are_refused_with_their_reason(name, data, reason):
    with pytest.raises(UnreadableDocument, match=reason):
        parse_document(data(), Path(name))


def test_zip_limits_read_the_directory_not_the_members():
    bomb = make_zip_bomb("docx", inflated=64 << 20)
    assert len(bomb) < 200_000  # what makes it a bomb: ~1000x
    started = time.perf_counter()
    with pytest.raises(UnreadableDocument, match="ratio over max_zip_ratio"):
        parse_document(bomb, Path("bomb.docx"))
    assert time.perf_counter() - started < 0.5, "the bomb was inflated before it was refused"
    with pytest.raises(UnreadableDocument, match="max_unzipped_bytes"):  # many members, each ordinary
        parse_document(make_docx(), Path("a.docx"), DocumentLimits(max_unzipped_bytes=10_000))


def test_page_and_text_limits():
    huge = make_pdf(30, table_page=None)
    started = time.perf_counter()
    with pytest.raises(UnreadableDocument, match=r"30 pages \(over max_pages 20\)"):
        parse_document(huge, Path("huge.pdf"), DocumentLimits(max_pages=20))
    assert time.perf_counter() - started < 0.5
    with pytest.raises(UnreadableDocument, match="max_chars"):
        parse_document(huge, Path("huge.pdf"), DocumentLimits(max_chars=1_000))
    with pytest.raises(UnreadableDocument, match=r"3 slides \(over max_pages 2\)"):
        parse_document(make_pptx(3), Path("deck.pptx"), DocumentLimits(max_pages=2))
    with pytest.raises(UnreadableDocument, match="max_bytes"):
        parse_document(huge, Path("huge.pdf"), DocumentLimits(max_bytes=1_000))


def test_docx_headings_tables_and_properties():
    doc = only(make_docx(), "report.docx")
    assert doc.title == "Bridge Report"
    assert doc.metadata["author"] == "Ada Builder" and doc.metadata["subject"] == "bridges"
    assert [s.path for s in doc.sections] == [("Bridge Report",), ("Bridge Report", "Famous bridges"),
                                              ("Maintenance",)]
    for section in doc.sections:
        assert doc.text[section.start:].startswith(section.path[-1])
    famous, maintenance = doc.sections[1], doc.sections[2]
    assert famous.end == maintenance.start and doc.sections[0].end == maintenance.start
    (table,) = doc.tables
    assert table.header == BRIDGES[0] and table.rows == tuple(BRIDGES[1:])
    assert doc.text[table.start:table.end] == "\n".join(" | ".join(row) for row in BRIDGES)
    assert famous.start < table.start < famous.end  # the table is inside its section


def test_pptx_slides_are_pages_with_titles_as_headings():
    doc = only(make_pptx(3), "deck.pptx")
    assert len(doc.pages) == 3
    for number, (start, end) in enumerate(doc.pages, 1):
        slide = doc.text[start:end]
        assert slide.startswith(f"Slide {number}\n\n{page_sentence(number)}"), slide
        assert slide.count(f"Slide {number}") == 1  # the title once, not again as a shape
    assert [s.path for s in doc.sections] == [("Slide 1",), ("Slide 2",), ("Slide 3",)]
    (table,) = doc.tables
    assert table.header == BRIDGES[0] and doc.pages[1][0] < table.start < table.end <= doc.pages[1][1]


def test_epub_chapters_in_spine_order_with_headings(tmp_path):
    make_epub(tmp_path / "book.epub")
    doc = only((tmp_path / "book.epub").read_bytes(), "book.epub")
    assert doc.title == "The Bridge Book" and doc.metadata["author"] == "Ada Builder"
    assert doc.text.index("Chapter 1 is about arches") < doc.text.index("Chapter 2 is about cables")
    assert [s.path for s in doc.sections] == [("Arches",), ("Arches", "Stone arches"), ("Cables",),
                                              ("Cables", "Steel cables")]
    for section in doc.sections:
        assert doc.text[section.start:].startswith(section.path[-1])


def test_email_and_mbox(tmp_path):
    doc = only(make_email(), "note.eml")
    assert doc.title == "Bridge inspection" and doc.text == "The inspection of the north cable is on Monday."
    assert doc.metadata["from"] == "ada@example.org" and doc.metadata["to"] == "bob@example.org"
    assert doc.metadata["date"] == "2026-02-02T10:00:00+00:00"
    make_mbox(tmp_path / "archive.mbox", [("one", "first body"), ("two", "From the start, second body")])
    docs = parse_document((tmp_path / "archive.mbox").read_bytes(), Path("archive.mbox"))
    assert [(d.key, d.title, d.text) for d in docs] == [("1", "one", "first body"),
                                                        ("2", "two", "From the start, second body")]


def test_detection_by_content_with_the_extension_as_a_hint(tmp_path):
    make_epub(tmp_path / "book.epub")
    make_mbox(tmp_path / "a.mbox", [("a", "b")])
    cases = {"pdf": make_pdf(1), "docx": make_docx(), "pptx": make_pptx(1),
             "epub": (tmp_path / "book.epub").read_bytes(), "mbox": (tmp_path / "a.mbox").read_bytes()}
    for expected, data in cases.items():
        assert detect_format(data, ".bin") == expected, expected
        assert detect_format(data, ".pdf" if expected != "pdf" else ".docx") == expected, expected
    assert detect_format(make_email(), "") == "eml"
    assert detect_format(b"plain words", ".txt") is None
    assert detect_format(b"# How %PDF-1.4 headers look\n", ".md") is None  # a text about PDFs is text
    assert detect_format(b"garbage", ".pdf") == "pdf"  # the hint: its parser says what is wrong
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("a.txt", "x")
    assert detect_format(plain_zip.getvalue(), ".zip") is None
    # a renamed Word file is parsed as Word
    doc = only(make_docx(), "report.pdf")
    assert doc.format == "docx"


def test_page_range_gives_separators_and_empty_pages_to_the_next_page_with_text():
    pages = [(0, 10), (12, 20), (22, 22), (24, 30)]  # page 3 is empty (a scan)
    assert page_range(pages, 0, 10) == (1, 1)
    assert page_range(pages, 5, 15) == (1, 2)
    assert page_range(pages, 10, 12) == (2, 2)  # the separator after page 1
    assert page_range(pages, 20, 24) == (4, 4)  # after page 2: page 3 holds nothing, so page 4
    assert page_range(pages, 25, 99) == (4, 4)
    assert page_range(pages, 3, 3) == (1, 1)


def test_damaged_files_never_raise_anything_but_unreadable_document(tmp_path):
    """Truncations, overwritten bytes and inserted junk (seeded): each file parses or is refused with a reason."""
    import random

    make_epub(tmp_path / "book.epub")
    make_mbox(tmp_path / "a.mbox", [("a", "b"), ("c", "d")])
    seeds = {"x.pdf": make_pdf(3), "x.docx": make_docx(), "x.pptx": make_pptx(2),
             "x.epub": (tmp_path / "book.epub").read_bytes(), "x.eml": make_email(),
             "x.mbox": (tmp_path / "a.mbox").read_bytes()}
    rng = random.Random(1)
    outcomes: dict[str, set[str]] = {}
    for name, original in seeds.items():
        for trial in range(300):
            data = bytearray(original)
            if trial % 3 == 0:
                data = data[: rng.randrange(len(data))]
            elif trial % 3 == 1:
                for _ in range(rng.randint(1, 20)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            else:
                at = rng.randrange(len(data))
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))
            try:
                parse_document(bytes(data), Path(name))
                outcomes.setdefault(name, set()).add("parsed")
            except UnreadableDocument as exc:
                assert str(exc), f"{name} trial {trial}: an empty reason"
                outcomes.setdefault(name, set()).add("refused")
    assert all("refused" in kinds for kinds in outcomes.values()), outcomes


def test_raw_8bit_mail_headers_and_lone_surrogates_become_storable_text():
    from retrievekit.core.document import document_problem
    from retrievekit.ingest.documents import as_document, valid_text

    raw = (b"From: J\xc3\xbcrgen <j@example.org>\nTo: b@example.org\nSubject: Br\xc3\xbccke \xff\n"
           b"Date: Mon, 02 Feb 2026 10:00:00 +0000\n\nbody text\n")
    doc = as_document(only(raw, "m.eml"), "m.eml", ".eml", len(raw))
    assert document_problem(doc) is None and doc.title.startswith("Brücke")
    assert valid_text("a\udcc3\udcbcb") == "aüb"  # surrogate-escaped UTF-8 bytes decode
    assert valid_text("a\ud800b", keep_length=True) == "a\ufffdb"


def test_scanned_pages_are_ocrd_when_tesseract_is_installed():
    required_program("tesseract", "optional OCR; apt-get install tesseract-ocr tesseract-ocr-eng")
    pytest.importorskip("PIL")
    from document_fixtures import make_scanned_pdf

    data = make_scanned_pdf(["Scanned page about rusty", "suspension cables"])
    doc = only(data, "scan.pdf")
    assert doc.pages_ocr == [2] and doc.pages_without_text == [3]  # page 3 holds no image: nothing to read
    start, end = doc.pages[1]
    assert " ".join(doc.text[start:end].split()).lower() == "scanned page about rusty suspension cables"
    assert any("OCR'd by tesseract: pages 2" in w for w in doc.warnings)
    off = only(data, "scan.pdf", DocumentLimits(ocr_pages=0))
    assert off.pages_ocr == [] and off.pages_without_text == [2, 3]


def test_a_2001_page_pdf_is_refused_by_default_and_parsed_page_by_page_when_allowed():
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=8)
    for number in range(1, 2002):
        pdf.add_page()
        pdf.cell(text=f"page{number}")
    data = bytes(pdf.output())
    started = time.perf_counter()
    with pytest.raises(UnreadableDocument, match=r"2,001 pages \(over max_pages 2,000\)"):
        parse_document(data, Path("manual.pdf"))
    assert time.perf_counter() - started < 1.0, "the page count is known before any page is read"
    doc = only(data, "manual.pdf", DocumentLimits(max_pages=3_000))
    assert len(doc.pages) == 2001
    assert all(doc.text[s:e] == f"page{n}" for n, (s, e) in enumerate(doc.pages, 1))


def test_passage_provenance_of_a_long_document_is_exact_and_not_quadratic():
    from retrievekit.core.provenance import Provenance

    spans, sections, position = [], [], 0
    for number in range(1, 2001):
        spans.append([position, position + 500])
        sections.append({"heading": f"Part {number // 100} > Chapter {number}", "start": position,
                         "end": position + 502})
        position += 502
    provenance = Provenance({"path": "big.pdf", "page_spans": spans, "sections": sections, "pages": 2000})
    started = time.perf_counter()
    metadata = [provenance.passage_metadata(s + k * 100, s + k * 100 + 90) for s, _ in spans for k in range(5)]
    assert time.perf_counter() - started < 2.0  # 12 s when every passage re-read the document's lists
    assert metadata[7] == {"path": "big.pdf", "pages": 2000, "page": 2, "page_end": 2,
                           "heading": "Part 0 > Chapter 2"}
    assert metadata[-1]["page"] == 2000 and metadata[-1]["heading"] == "Part 20 > Chapter 2000"
    assert provenance.regions(position) == [tuple(s) for s in spans]
