"""Generators of the document fixtures of tests/ingest/test_documents*.py: real files written by real libraries
(fpdf2, python-docx, python-pptx, ebooklib, the stdlib email package), so no binary blobs live in the repository."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from retrievekit.rag.generators.base import Generator


class CitesFirstSource(Generator):
    """A scripted generator for the web UI's answer tests: every answer cites source [1] (page_sentence's words)."""

    backend = "scripted"
    model = "script-1"

    def generate(self, prompt: Any, *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: str | Sequence[str] | None = None) -> str:
        return "It is explained with tenacious rivets [1]."


BRIDGES = [("Name", "City", "Opened"), ("Golden Gate", "San Francisco", "1937"), ("Brooklyn", "New York", "1883")]


def page_sentence(page: int) -> str:
    """A sentence found on one page only (its page number spelled into the words)."""
    return f"Page {page} explains topic{page} with tenacious rivets and careful welds."


def make_pdf(pages: int = 3, *, table_page: int | None = 2, password: str | None = None,
             blank_pages: tuple[int, ...] = (), title: str = "Bridges of the World", author: str = "Ada Builder"
             ) -> bytes:
    """A PDF of ``pages`` pages: each has a bookmarked heading "Chapter N" and ``page_sentence(N)`` three times; the
    bridge table is on ``table_page``; ``blank_pages`` have no text (a drawn rectangle only, like a scan)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_author(author)
    pdf.set_font("helvetica", size=11)
    for page in range(1, pages + 1):
        pdf.add_page()
        if page in blank_pages:
            pdf.rect(20, 20, 100, 100, style="F")
            continue
        pdf.start_section(f"Chapter {page}", level=0)
        pdf.set_font("helvetica", "B", 16)
        pdf.cell(text=f"Chapter {page}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("helvetica", size=11)
        pdf.multi_cell(0, 6, text=" ".join([page_sentence(page)] * 3), new_x="LMARGIN", new_y="NEXT")
        if page == table_page:
            with pdf.table() as table:
                for row in BRIDGES:
                    cells = table.row()
                    for cell in row:
                        cells.cell(cell)
    if password is not None:
        pdf.set_encryption(owner_password=password + "-owner", user_password=password)
    return bytes(pdf.output())


def make_docx() -> bytes:
    """Title, two heading levels, paragraphs and the bridge table; core properties author and subject."""
    import docx

    document = docx.Document()
    document.core_properties.author = "Ada Builder"
    document.core_properties.subject = "bridges"
    document.core_properties.title = "Bridge Report"
    document.add_heading("Bridge Report", level=1)
    document.add_paragraph("Suspension bridges carry roads over wide rivers.")
    document.add_heading("Famous bridges", level=2)
    document.add_paragraph("The table lists two famous bridges.")
    table = document.add_table(rows=len(BRIDGES), cols=len(BRIDGES[0]))
    for r, row in enumerate(BRIDGES):
        for c, cell in enumerate(row):
            table.cell(r, c).text = cell
    document.add_heading("Maintenance", level=1)
    document.add_paragraph("Painting the cables never ends.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_pptx(slides: int = 3) -> bytes:
    """``slides`` slides titled "Slide N" with ``page_sentence(N)``; slide 2 has the bridge table."""
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    layout = deck.slide_layouts[5]  # title only
    for number in range(1, slides + 1):
        slide = deck.slides.add_slide(layout)
        slide.shapes.title.text = f"Slide {number}"
        box = slide.shapes.add_textbox(Inches(1), Inches(2), Inches(8), Inches(1))
        box.text_frame.text = page_sentence(number)
        if number == 2:
            shape = slide.shapes.add_table(len(BRIDGES), len(BRIDGES[0]), Inches(1), Inches(3.5), Inches(8),
                                           Inches(2))
            for r, row in enumerate(BRIDGES):
                for c, cell in enumerate(row):
                    shape.table.cell(r, c).text = cell
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def make_epub(path: Path) -> None:
    """Two chapters with h1/h2 headings."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("bridges-1")
    book.set_title("The Bridge Book")
    book.set_language("en")
    book.add_author("Ada Builder")
    chapters = []
    for number, (head, sub) in enumerate([("Arches", "Stone arches"), ("Cables", "Steel cables")], 1):
        chapter = epub.EpubHtml(title=head, file_name=f"ch{number}.xhtml", lang="en")
        chapter.content = (f"<html><body><h1>{head}</h1><p>Chapter {number} is about {head.lower()}.</p>"
                           f"<h2>{sub}</h2><p>{sub} hold the deck of chapter {number}.</p></body></html>")
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = chapters
    epub.write_epub(str(path), book)


def make_email(subject: str = "Bridge inspection", body: str = "The inspection of the north cable is on Monday.",
               sender: str = "ada@example.org", to: str = "bob@example.org") -> bytes:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = to
    message["Date"] = "Mon, 02 Feb 2026 10:00:00 +0000"
    message["Message-ID"] = f"<{abs(hash(subject))}@example.org>"
    message.set_content(body)
    return message.as_bytes()


def make_mbox(path: Path, messages: list[tuple[str, str]]) -> None:
    """An mbox of (subject, body) messages, written by the stdlib's ``mailbox`` (which escapes body lines that
    start with "From ")."""
    import email
    import email.policy
    import mailbox

    archive = mailbox.mbox(path)
    try:
        for subject, body in messages:
            archive.add(email.message_from_bytes(make_email(subject, body), policy=email.policy.default))
        archive.flush()
    finally:
        archive.close()


def make_zip_bomb(kind: str = "docx", inflated: int = 64 << 20) -> bytes:
    """A package with the right part names whose one member inflates ``inflated`` zero bytes (~1000x)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        if kind == "epub":
            archive.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
            archive.writestr("META-INF/container.xml", "<container/>")
            archive.writestr("OEBPS/bomb.xhtml", b"\0" * inflated)
        else:
            archive.writestr("[Content_Types].xml", "<Types/>")
            archive.writestr("word/document.xml", b"\0" * inflated)
    return out.getvalue()


def make_scanned_pdf(lines: list[str]) -> bytes:
    """Page 1 has a text layer; page 2 is an image of ``lines`` (a scan, no text layer); page 3 only a drawn
    rectangle (nothing to read)."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw, ImageFont

    scan = Image.new("L", (1600, 140 * len(lines) + 80), 255)
    draw = ImageDraw.Draw(scan)
    font = ImageFont.load_default(size=64)
    for i, line in enumerate(lines):
        draw.text((40, 40 + 140 * i), line, fill=0, font=font)
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    pdf.cell(text="A typed first page.")
    pdf.add_page()
    pdf.image(scan, x=10, y=10, w=190)
    pdf.add_page()
    pdf.rect(20, 20, 100, 100, style="F")
    return bytes(pdf.output())
