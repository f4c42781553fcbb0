"""PDF through pypdfium2 (PDFium, the engine of Chrome's viewer; Apache-2.0/BSD): the text layer page by page, the
outline (bookmarks) as sections, the document information as metadata. A page without a text layer (a scan) is
OCR'd by tesseract when that program is installed (``pages_ocr``; at most ``DocumentLimits.ocr_pages`` per
document), else reported in ``pages_without_text``; a document with no text at all cannot be indexed."""

from __future__ import annotations

import logging
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from retrievekit.core.errors import require
from retrievekit.ingest.documents.base import (
    DocumentLimits,
    DocumentParser,
    ParsedDocument,
    TextBuilder,
    UnreadableDocument,
)

# PDFium marks soft hyphens and unknown glyphs with these; NUL can come from broken fonts
_JUNK = re.compile("[\x00\x02\ufffe\uffff]")
_INFO_FIELDS = {"Title": "title", "Author": "author", "Subject": "subject", "Keywords": "keywords",
                "CreationDate": "created", "ModDate": "modified", "Creator": "creator", "Producer": "producer"}
OCR_DPI = 300  # tesseract reads best at about 300 dpi
OCR_MAX_PIXELS = 40_000_000  # a poster-sized page is rendered at a lower resolution instead of gigabytes
logger = logging.getLogger(__name__)
_PDF_DATE = re.compile(r"D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?")


def page_text(raw: str) -> str:
    """PDFium's text of a page with ``\\n`` line ends, marker characters removed and lines right-trimmed."""
    text = _JUNK.sub("", raw.replace("\r\n", "\n").replace("\r", "\n"))
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def pdf_date(value: str) -> str:
    """``D:20240131120000Z`` -> ``2024-01-31T12:00:00`` (as much as is given); other strings unchanged."""
    match = _PDF_DATE.match(value)
    if match is None:
        return value
    year, month, day, hour, minute, second = match.groups()
    out = year + (f"-{month}" if month else "") + (f"-{day}" if month and day else "")
    if day and hour:
        out += f"T{hour}:{minute or '00'}:{second or '00'}"
    return out


class PDFParser(DocumentParser):
    format = "pdf"

    def parse(self, data: bytes, path: Path, limits: DocumentLimits) -> list[ParsedDocument]:
        pdfium = require("pypdfium2", "documents")
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            message = str(exc)
            if "password" in message.lower():
                raise UnreadableDocument("encrypted PDF (needs a password)") from None
            raise UnreadableDocument(f"corrupt or truncated PDF ({message})") from None
        try:
            return [self._read(pdf, pdfium, limits)]
        finally:
            pdf.close()

    def _read(self, pdf: Any, pdfium: Any, limits: DocumentLimits) -> ParsedDocument:
        n_pages = len(pdf)
        if n_pages > limits.max_pages:
            raise UnreadableDocument(f"{n_pages:,} pages (over max_pages {limits.max_pages:,})")
        builder = TextBuilder(limits)
        empty: list[int] = []
        ocr: list[int] = []
        tesseract = shutil.which("tesseract") if limits.ocr_pages > 0 else None
        for number in range(n_pages):
            start = len(builder)
            try:
                page = pdf[number]
                try:
                    textpage = page.get_textpage()
                    text = page_text(textpage.get_text_range())
                    textpage.close()
                    if not text and tesseract is not None and len(ocr) < limits.ocr_pages and has_image(page):
                        text = ocr_page(page, tesseract, limits)
                        if text:
                            ocr.append(number + 1)
                finally:
                    page.close()
            except pdfium.PdfiumError as exc:
                raise UnreadableDocument(f"corrupt PDF: page {number + 1} cannot be read ({exc})") from None
            if not text:
                empty.append(number + 1)
            builder.add(text)
            builder.page(start)
        if not len(builder):
            hint = "no OCR found any text either" if tesseract else "install tesseract to OCR it"
            raise UnreadableDocument(f"no text layer on any of its {n_pages:,} pages (a scanned PDF? {hint})"
                                     if n_pages else "a PDF without pages")
        self._outline(pdf, builder, n_pages)
        metadata = self._info(pdf)
        title = str(metadata.pop("title", "") or "")
        warnings = []
        if empty:
            warnings.append(f"{len(empty):,} of {n_pages:,} pages have no text layer (scanned or blank"
                            + ("" if tesseract else "; tesseract is not installed to OCR them") + "): pages "
                            + _numbers(empty))
        if ocr:
            warnings.append(f"{len(ocr):,} of {n_pages:,} pages have no text layer and were OCR'd by tesseract: "
                            f"pages {_numbers(ocr)}")
        return builder.result("pdf", title=title, metadata=metadata, pages_without_text=empty, pages_ocr=ocr,
                              warnings=warnings)

    @staticmethod
    def _outline(pdf: Any, builder: TextBuilder, n_pages: int) -> None:
        """Bookmarks as headings, each placed where its title appears on its page (else at the page's start)."""
        text = builder.text
        try:
            entries = list(pdf.get_toc(max_depth=8))
        except Exception:  # a broken outline costs the sections, not the document
            return
        for entry in entries[:10_000]:
            try:
                dest = entry.get_dest()
                index = dest.get_index() if dest is not None else None
                title = " ".join(entry.get_title().split())
            except Exception:  # an undecodable title, a broken destination: that entry is no section
                continue
            if index is None or not 0 <= index < n_pages or not title:
                continue
            start, end = builder.pages[index]
            found = _find_words(text, title, start, end)
            builder.heading_at(found if found >= 0 else start, entry.level + 1, title)

    @staticmethod
    def _info(pdf: Any) -> dict[str, Any]:
        try:
            info = pdf.get_metadata_dict(skip_empty=True)
        except Exception:
            return {}
        out: dict[str, Any] = {}
        for key, name in _INFO_FIELDS.items():
            value = " ".join(str(info.get(key) or "").split())
            if value:
                out[name] = pdf_date(value) if name in ("created", "modified") else value
        return out


def has_image(page: Any) -> bool:
    """Whether a page holds an image (a scan does; a blank page or one of vector drawings only has nothing to OCR)."""
    import pypdfium2.raw as pdfium_c

    return next(iter(page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,))), None) is not None


def ocr_page(page: Any, tesseract: str, limits: DocumentLimits) -> str:
    """The text tesseract reads on a page rendered at ``OCR_DPI`` in grey (fewer pixels for a huge page), "" when
    it reads nothing, fails or runs out of ``limits.ocr_seconds``. The bitmap goes to tesseract as PGM on its
    standard input: no image library, no temporary file."""
    width, height = page.get_size()  # points
    scale = min(OCR_DPI / 72, math.sqrt(OCR_MAX_PIXELS / max(width * height, 1.0)))
    pixels = page.render(scale=scale, grayscale=True).to_numpy()
    rows, cols = pixels.shape[:2]
    image = b"P5\n%d %d\n255\n" % (cols, rows) + pixels.reshape(rows, cols).tobytes()
    try:
        done = subprocess.run([tesseract, "stdin", "stdout", "-l", limits.ocr_languages], input=image,
                              capture_output=True, timeout=limits.ocr_seconds, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("OCR of a page failed: %s", exc)
        return ""
    if done.returncode != 0:
        logger.warning("tesseract failed (%d): %s", done.returncode, done.stderr.decode("utf-8", "replace")[-300:])
        return ""
    return page_text(done.stdout.decode("utf-8", "replace"))


def _numbers(pages: list[int], shown: int = 20) -> str:
    return ", ".join(map(str, pages[:shown])) + (", ..." if len(pages) > shown else "")


def _find_words(text: str, words: str, start: int, end: int) -> int:
    """Where ``words`` occur in ``text[start:end]`` with any whitespace between them; -1 if they do not."""
    pattern = r"\s+".join(map(re.escape, words.split()))
    match = re.compile(pattern, re.IGNORECASE).search(text, start, end)
    return match.start() if match else -1
