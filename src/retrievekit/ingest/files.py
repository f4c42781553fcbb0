"""Folder-of-files reader: every text/Markdown/reST/HTML file under a folder becomes one document, and so does every
PDF, Word, PowerPoint, EPUB and e-mail file (one per message of an mbox) through ``ingest.documents`` (the
``documents`` extra). A file that cannot be read as its format is skipped with its reason, never fatal."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from retrievekit.chunking.base import ChunkingError
from retrievekit.chunking.html_text import HTMLText
from retrievekit.core.document import Document, document_problem
from retrievekit.core.errors import InputFormatError
from retrievekit.ingest.base import OnBytes, check_encoding_errors, check_exists, checked
from retrievekit.ingest.code import _bom_encoding, decode_source, file_hash  # the same rules as for code
from retrievekit.ingest.documents import (
    DOCUMENT_EXTENSIONS,
    DocumentLimits,
    ParsedDocument,
    UnreadableDocument,
    as_document,
    detect_format,
    parse_document,
)

logger = logging.getLogger(__name__)

TEXT_EXTENSIONS = (".txt", ".md", ".markdown", ".rst", ".html", ".htm")
DEFAULT_EXTENSIONS = TEXT_EXTENSIONS + DOCUMENT_EXTENSIONS
ENCODINGS = ("utf-8", "auto")
INLINE_PARSES = 8  # document files parsed in this process before parse workers are started
#: ``on_skip(path, reason)`` hears of a file left out; ``on_warning(path, message)`` of a file indexed with a
#: problem (pages without a text layer)
OnSkip = Callable[[Path, str], None]
HTML_EXTENSIONS = frozenset({".html", ".htm", ".xhtml"})
MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown"})


def normalize_extensions(extensions: Iterable[str] | str) -> frozenset[str]:
    """``["md", ".TXT"]`` -> ``{".md", ".txt"}`` (matching is case-insensitive)."""
    if isinstance(extensions, str):
        extensions = [extensions]
    result = set()
    for ext in extensions:
        ext = ext.strip().lower()
        if not ext or ext == ".":
            raise InputFormatError(f"invalid file extension {ext!r} in extensions")
        result.add(ext if ext.startswith(".") else "." + ext)
    return frozenset(result)


def iter_files(root: Path, extensions: frozenset[str], *, recursive: bool = True,
               on_skip: Callable[[Path, str], None] | None = None) -> Iterator[tuple[Path, str]]:
    """Yield ``(path, relative_posix_path)`` of matching files under ``root`` in sorted order.

    Hidden files and folders (name starting with ".") are skipped, and so are symlinks whose target
    lies outside ``root`` (they could leak unrelated files). Each real folder is visited once, so a
    symlink loop cannot recurse forever. ``recursive``: also walk subfolders. ``on_skip(path, reason)`` hears of
    every folder or matching file left out (unreadable, a broken symlink, a symlink leading outside); without it
    they are logged.
    """
    real_root = os.path.realpath(root)
    visited: set[str] = set()

    def skip(path: str, reason: str, level: int = logging.WARNING) -> None:
        if on_skip is not None:
            on_skip(Path(path), reason)
        else:
            logger.log(level, "skipping %s: %s", path, reason)

    def inside(real: str) -> bool:
        return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)

    def matches(name: str) -> bool:
        return os.path.splitext(name)[1].lower() in extensions

    def walk(folder: str, rel: str) -> Iterator[tuple[Path, str]]:
        real_folder = os.path.realpath(folder)
        if real_folder in visited:  # a symlink loop, or a second link to the same folder
            return
        visited.add(real_folder)
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as exc:
            skip(folder, f"unreadable folder: {exc.strerror or exc}")
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            child_rel = f"{rel}/{entry.name}" if rel else entry.name
            try:
                if entry.is_symlink() and not inside(os.path.realpath(entry.path)):
                    if entry.is_dir() or matches(entry.name):
                        skip(entry.path, "a symlink pointing outside the folder; not followed", logging.INFO)
                    continue
                if entry.is_dir():
                    if recursive:
                        yield from walk(entry.path, child_rel)
                elif matches(entry.name):
                    if entry.is_file():
                        yield Path(entry.path), child_rel
                    elif not os.path.exists(entry.path):
                        skip(entry.path, "unreadable: a broken symlink")
            except OSError as exc:  # e.g. a permission problem
                skip(entry.path, f"unreadable: {exc.strerror or exc}")

    yield from walk(os.fspath(root), "")


def read_files(
    root: str | Path,
    *,
    extensions: Iterable[str] | str = DEFAULT_EXTENSIONS,
    encoding_errors: str = "strict",
    on_bytes: OnBytes | None = None,
    on_skip: OnSkip | None = None,
    on_warning: OnSkip | None = None,
    max_pages: int | None = None,
    limits: DocumentLimits | None = None,
    known: Callable[[str, str], bool] | None = None,
    encoding: str = "utf-8",
    ocr: bool = True,
    parse_workers: int = 1,
) -> Iterator[Document]:
    """Stream one document per matching file under ``root`` (recursively, in sorted order).

    id = the path relative to ``root`` in POSIX form; title = the first Markdown ``# `` heading, the
    first reST section title, the HTML ``<title>`` or else the file name without extension; text = the
    file content, with HTML turned into plain text by the one extractor the html chunker uses (``HTMLText``: one
    line per block, table rows as lines, no script/style/svg, boilerplate dropped). Files must be UTF-8:
    invalid bytes raise ``InputFormatError`` unless ``encoding_errors="replace"``. Metadata holds
    ``path``, ``extension`` (lower-case, with the dot) and ``bytes`` (size on disk), and for an HTML page with
    tables ``tables`` (``{start, end, header, rows}`` in the text, as the document parsers record theirs).

    ``root`` may also be one PDF, DOCX, PPTX, EPUB, EML or mbox file (id: its name).

    PDF, DOCX, PPTX, EPUB, EML and mbox files — recognised by their content, the extension only a hint — are parsed
    by ``ingest.documents`` (``as_document``: title and metadata from the file, ``page_spans``, ``sections``,
    ``tables``; one document ``PATH#N`` per message of an mbox). One that cannot be read (encrypted, corrupt, empty,
    a zip bomb, over ``limits``/``max_pages``, the ``documents`` extra missing) is skipped: ``on_skip(path,
    reason)`` hears of it (without it, a warning is logged), and the walk goes on. PDF pages without a text layer
    are OCR'd when the ``tesseract`` program is installed, unless ``ocr=False``. ``parse_workers`` > 1 parses
    document files in that many processes (the documents still come in file order).

    ``known(relative path, content hash)`` (for incremental indexing) is asked about every file once its bytes are
    read; a file it answers True for is not parsed and yields nothing. With it, every document's metadata also
    carries ``file_hash`` (BLAKE2b-128 of the file's bytes, as code indexing hashes files).

    ``encoding="auto"``: a text file that is not UTF-8 is decoded as code indexing decodes source files (a BOM's
    UTF-16/32, else what charset-normalizer detects, else Latin-1), with a warning and ``encoding`` in its metadata;
    one with no detectable text is skipped. The default ``"utf-8"`` applies ``encoding_errors``.
    """
    root = Path(root)
    check_exists(root)
    if not root.is_dir() and os.path.splitext(root.name)[1].lower() not in DOCUMENT_EXTENSIONS:
        raise InputFormatError("the 'files' format reads a folder (or one PDF, Office, EPUB or e-mail file), but "
                               "this is another file", path=root)
    errors = check_encoding_errors(encoding_errors)
    wanted = normalize_extensions(extensions)
    if encoding not in ENCODINGS:
        raise InputFormatError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    limits = limits or DocumentLimits()
    if max_pages is not None:
        if isinstance(max_pages, bool) or not isinstance(max_pages, int) or max_pages < 1:
            raise InputFormatError(f"max_pages must be a positive integer, got {max_pages!r}")
        limits = replace(limits, max_pages=max_pages)
    if not ocr:
        limits = replace(limits, ocr_pages=0)
    if isinstance(parse_workers, bool) or not isinstance(parse_workers, int) or parse_workers < 1:
        raise InputFormatError(f"parse_workers must be a positive integer, got {parse_workers!r}")
    return _iter_files(root, wanted, errors, encoding == "auto", on_bytes, on_skip or _log_skip,
                       on_warning or _log_warning, limits, known, parse_workers)


def _log_skip(path: Path, reason: str) -> None:
    logger.warning("skipping %s: %s", path, reason)


def _log_warning(path: Path, message: str) -> None:
    logger.warning("%s: %s", path, message)


def _iter_files(root: Path, wanted: frozenset[str], errors: str, detect_encoding: bool, on_bytes: OnBytes | None,
                on_skip: OnSkip, on_warning: OnSkip, limits: DocumentLimits,
                known: Callable[[str, str], bool] | None, parse_workers: int) -> Iterator[Document]:
    """The documents of the files in order; document files are parsed in ``parse_workers`` processes when > 1."""
    jobs = _jobs(root, wanted, errors, detect_encoding, on_bytes, on_skip, on_warning, limits, known)
    if parse_workers <= 1:
        for job in jobs:
            if isinstance(job, Document):
                yield job
            else:
                yield from _finish(job, _parse(job.data, job.path, limits), on_skip, on_warning)
        return
    # a bounded window of files in flight, finished in input order: the output equals the serial one. The first
    # few files are parsed here: a folder of a handful of documents does not wait for worker processes to start.
    pending: deque[tuple[Document | _ParseJob, Future[Any] | None]] = deque()
    pool: ProcessPoolExecutor | None = None
    inline = 0
    try:
        for job in jobs:
            future: Future[Any] | None = None
            if isinstance(job, _ParseJob):
                if pool is None and inline < INLINE_PARSES:
                    inline += 1
                    future = Future()
                    future.set_result(_parse(job.data, job.path, limits))
                else:
                    pool = pool or _parse_pool(parse_workers)
                    future = pool.submit(_parse, job.data, job.path, limits)
            pending.append((job, future))
            while len(pending) > 4 * parse_workers or (pending and _done(pending[0][1])):
                yield from _ready(pending.popleft(), on_skip, on_warning)
        while pending:
            yield from _ready(pending.popleft(), on_skip, on_warning)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _parse_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes forked as the storage layer forks its indexing workers (spawn would re-run a caller's
    script without a main guard, or fail from a REPL); spawned where there is no fork."""
    return ProcessPoolExecutor(workers, mp_context=mp.get_context("fork" if "fork" in mp.get_all_start_methods()
                                                                  else "spawn"))


@dataclass(frozen=True)
class _ParseJob:
    """A document file read and waiting for its parser."""

    data: bytes
    path: Path
    rel: str
    extension: str
    stamp: dict[str, str]


def _jobs(root: Path, wanted: frozenset[str], errors: str, detect_encoding: bool, on_bytes: OnBytes | None,
          on_skip: OnSkip, on_warning: OnSkip, limits: DocumentLimits,
          known: Callable[[str, str], bool] | None) -> Iterator[Document | _ParseJob]:
    """Each file in order: a text file's document, or a document file to parse (unchanged and unreadable files
    yield nothing)."""
    # one document file on its own: its name is its id
    files = iter_files(root, wanted, on_skip=on_skip) if root.is_dir() else iter([(root, root.name)])
    for path, rel in files:
        try:
            size = path.stat().st_size
            if size > limits.max_bytes and os.path.splitext(path.name)[1].lower() in DOCUMENT_EXTENSIONS:
                on_skip(path, f"{size:,} bytes (over max_bytes {limits.max_bytes:,})")
                continue
            data = path.read_bytes()
        except OSError as exc:
            raise InputFormatError(f"cannot read the file: {exc.strerror or exc}", path=path) from exc
        if on_bytes is not None:
            on_bytes(len(data))
        stamp: dict[str, str] = {}
        if known is not None:
            stamp["file_hash"] = file_hash(data)
            if known(rel, stamp["file_hash"]):
                continue
        extension = os.path.splitext(path.name)[1].lower()
        if detect_format(data, extension) is not None:
            yield _ParseJob(data, path, rel, extension, stamp)
            continue
        text = None
        if detect_encoding:
            decoded = decode_source(data, _bom_encoding(data))
            if decoded is None:
                on_skip(path, "no text encoding detected (a binary file?)")
                continue
            text, found = decoded
            if found != "utf-8":
                stamp["encoding"] = found
                on_warning(path, f"not UTF-8: decoded as {found}")
        doc = file_to_document(data, path, rel, errors, text=text)
        yield replace(doc, metadata={**doc.metadata, **stamp}) if stamp else doc


def _parse(data: bytes, path: Path, limits: DocumentLimits) -> list[ParsedDocument] | str:
    """The parsed documents of a file, or the reason it cannot be indexed (run in a worker process too)."""
    try:
        return parse_document(data, path, limits)
    except UnreadableDocument as exc:
        return str(exc)


def _done(future: Future[Any] | None) -> bool:
    return future is None or future.done()


def _ready(item: tuple[Document | _ParseJob, Future[Any] | None], on_skip: OnSkip,
           on_warning: OnSkip) -> Iterator[Document]:
    job, future = item
    if isinstance(job, Document):
        yield job
    else:
        assert future is not None
        yield from _finish(job, future.result(), on_skip, on_warning)


def _finish(job: _ParseJob, parsed: list[ParsedDocument] | str, on_skip: OnSkip,
            on_warning: OnSkip) -> Iterator[Document]:
    """The stored documents of a parsed file, its warnings and skip reason told."""
    if isinstance(parsed, str):
        on_skip(job.path, parsed)
        return
    for document in parsed:
        for message in document.warnings:
            on_warning(job.path, message)
        doc = as_document(document, job.rel, job.extension, len(job.data))
        doc = replace(doc, metadata={**doc.metadata, **job.stamp}) if job.stamp else doc
        problem = document_problem(doc)
        if problem is not None:  # what a parsed file holds is the file's problem, not the ingest's
            on_skip(job.path, f"cannot be stored: {problem}")
            continue
        yield doc


def file_to_document(data: bytes, path: Path, rel: str, errors: str = "strict", *, text: str | None = None
                     ) -> Document:
    """Build the document of one file from its bytes (``text``: their decoded text, when decoded already)."""
    try:
        content = data.decode("utf-8", errors) if text is None else text
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputFormatError(
            f"invalid UTF-8 at byte {exc.start} ({exc.reason}); fix the file or read it with "
            "encoding_errors='replace'",
            path=path,
            line=line,
        ) from exc
    content = content.removeprefix("\ufeff")
    extension = os.path.splitext(path.name)[1].lower()
    title = ""
    metadata: dict[str, Any] = {"path": rel, "extension": extension, "bytes": len(data)}
    if extension in HTML_EXTENSIONS:
        try:
            extracted = HTMLText(content, include_title=False, drop_boilerplate=True)
        except ChunkingError as exc:  # the lenient stdlib parser failing is a bug, but name the file
            raise InputFormatError(str(exc), path=path) from exc
        title, text = extracted.title, extracted.text
        if extracted.tables:  # as the document parsers record theirs: span in the text, header cells, rows
            metadata["tables"] = [t.to_json() for t in extracted.tables]
    else:
        text = content
        if extension in MARKDOWN_EXTENSIONS:
            title = markdown_title(content)
        elif extension == ".rst":
            title = rst_title(content)
    if not title:
        title = Path(rel).stem
    # checked: a file name that is not valid UTF-8 (a lone surrogate here) or holds a line break cannot be an id.
    return checked(Document(id=rel, text=text, title=title, metadata=metadata), path, None)


_ATX_H1 = re.compile(r"^ {0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def markdown_title(content: str) -> str:
    """The first level-1 ``# Heading`` outside fenced code blocks ("" if there is none)."""
    in_fence = False
    for line in content.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            match = _ATX_H1.match(line)
            if match:
                return match.group(1).strip()
    return ""


_RST_ADORNMENT = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}\s*$")


def rst_title(content: str) -> str:
    """The first reST section title (a line underlined, optionally overlined, by punctuation)."""
    lines = content.splitlines()[:200]  # titles live near the top; don't scan huge files
    for i in range(len(lines) - 1):
        text, under = lines[i].strip(), lines[i + 1]
        if text and not _RST_ADORNMENT.match(lines[i]) and _RST_ADORNMENT.match(under) \
                and len(under.rstrip()) >= len(text):
            return text
    return ""
