"""Which format a file is, by its content: magic bytes first, the extension only as a hint for what they cannot
tell (a corrupt file keeps its extension's parser, which then names what is wrong)."""

from __future__ import annotations

import io
import re
import zipfile

EXTENSION_FORMATS = {".pdf": "pdf", ".docx": "docx", ".pptx": "pptx", ".epub": "epub", ".eml": "eml",
                     ".mbox": "mbox"}
DOCUMENT_EXTENSIONS = tuple(EXTENSION_FORMATS)

_ZIP_MAGIC = b"PK\x03\x04"
_PDF_MAGIC = b"%PDF-"
_PDF_SEARCH = 1024
_EPUB_MIMETYPE = b"mimetypeapplication/epub+zip"  # the first, stored member of every EPUB (OCF spec)
# an RFC 822 header line: a field name of printable ASCII but the colon, then a colon
_HEADER = re.compile(rb"[!-9;-~]+:")
_MAIL_FIELDS = (b"from", b"to", b"subject", b"date", b"message-id", b"received", b"return-path", b"mime-version")


def detect_format(data: bytes, extension: str = "") -> str | None:
    """``"pdf"``, ``"docx"``, ``"pptx"``, ``"epub"``, ``"eml"`` or ``"mbox"`` for a file with these bytes, or None when
    it is none of them (plain text, HTML, ...). ``extension`` (lower-case, with the dot) decides only where the
    content does not: an unrecognisable ``.pdf`` stays ``"pdf"`` so its parser can say why it cannot be read."""
    # PDF readers accept the header anywhere in the first kilobyte; a text file that merely mentions it does not count
    if data.startswith(_PDF_MAGIC) or (extension in ("", ".pdf") and _PDF_MAGIC in data[:_PDF_SEARCH]):
        return "pdf"
    if data.startswith(_ZIP_MAGIC):
        if data[30:30 + len(_EPUB_MIMETYPE)] == _EPUB_MIMETYPE:
            return "epub"
        office = _office_kind(data)
        if office is not None:
            return office
    elif data.startswith(b"From ") and _looks_like_mail(data[data.find(b"\n") + 1:]):
        return "mbox"
    elif extension in ("", ".eml") and _looks_like_mail(data):
        return "eml"
    return EXTENSION_FORMATS.get(extension)


def _office_kind(data: bytes) -> str | None:
    """docx or pptx by the part names of an Office Open XML package (it has ``[Content_Types].xml``), or epub."""
    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except Exception:  # BadZipFile, NotImplementedError for an odd version, ...: not an Office package we can read
        return None
    if "META-INF/container.xml" in names and "mimetype" in names:  # an EPUB whose mimetype has an extra field
        return "epub"
    if "[Content_Types].xml" not in names:
        return None
    if "word/document.xml" in names:
        return "docx"
    if "ppt/presentation.xml" in names:
        return "pptx"
    return None


def _looks_like_mail(data: bytes) -> bool:
    """At least two well-known RFC 822 header fields among the header lines at the top."""
    known = 0
    for line in data[:8192].splitlines()[:60]:
        if not line.strip():
            break
        if line[:1] in (b" ", b"\t"):  # a folded continuation line
            continue
        if _HEADER.match(line) is None:
            return False
        if line.split(b":", 1)[0].strip().lower() in _MAIL_FIELDS:
            known += 1
    return known >= 2
