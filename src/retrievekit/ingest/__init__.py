"""Document readers: stream ``Document`` objects from JSONL, BEIR folders, CSV/TSV or a folder of files.

Readers never hold a whole corpus in memory: they read one line / row / file at a time. Use
:func:`read_documents` to pick the reader from the source's name, or call a reader directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retrievekit.core.document import Document
from retrievekit.core.errors import InputFormatError
from retrievekit.ingest.base import OnBytes, SourceNotFoundError, check_exists, file_size
from retrievekit.ingest.beir import corpus_path, find_corpus, read_beir
from retrievekit.ingest.delimited import read_delimited
from retrievekit.ingest.documents import DOCUMENT_EXTENSIONS
from retrievekit.ingest.files import DEFAULT_EXTENSIONS, iter_files, normalize_extensions, read_files
from retrievekit.ingest.jsonl import read_jsonl

__all__ = [
    "FORMATS",
    "OnBytes",
    "SourceNotFoundError",
    "detect_format",
    "estimate_size",
    "read_beir",
    "read_delimited",
    "read_documents",
    "read_files",
    "read_jsonl",
    "report_file_problems",
]

FORMATS = ("jsonl", "beir", "csv", "tsv", "files")

_SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".tab": "tsv"}


def _check_format(format: str) -> str:
    if format not in FORMATS:
        raise InputFormatError(f"unknown format {format!r}; valid formats are: {', '.join(FORMATS)}")
    return format


def detect_format(source: str | Path) -> str:
    """Guess the format of ``source``: a folder with ``corpus.jsonl`` is BEIR, another folder is
    ``files``; a file is named by its extension (``.jsonl``/``.ndjson``, ``.csv``, ``.tsv``, each
    optionally ``.gz``; a ``.pdf``, ``.docx``, ``.pptx``, ``.epub``, ``.eml`` or ``.mbox`` file is ``files``)."""
    path = Path(source)
    check_exists(path)
    if path.is_dir():
        return "beir" if find_corpus(path) is not None else "files"
    if os.path.splitext(path.name)[1].lower() in DOCUMENT_EXTENSIONS:
        return "files"  # one PDF, Office, EPUB or e-mail file
    name = path.name.lower().removesuffix(".gz")
    fmt = _SUFFIX_FORMATS.get(os.path.splitext(name)[1])
    if fmt is None:
        raise InputFormatError(
            f"cannot tell the format from the file name; pass format= one of: {', '.join(FORMATS)}",
            path=path,
        )
    return fmt


def report_file_problems(source: Any, format: str | None, options: dict[str, Any], *,
                         parse_workers: int | None = None) -> tuple[list[list[str]], list[list[str]]]:
    """(skipped, warnings): lists of ``[path, reason]`` that reading ``source`` with ``options`` fills when it is a
    folder of files (their ``on_skip``/``on_warning`` are set unless the caller set them; with ``parse_workers``,
    document files parse in that many processes); for any other source they stay empty."""
    skipped: list[list[str]] = []
    warnings: list[list[str]] = []
    if isinstance(source, str | Path) and (format or detect_format(source)) == "files":
        options.setdefault("on_skip", lambda path, reason: skipped.append([str(path), reason]))
        options.setdefault("on_warning", lambda path, message: warnings.append([str(path), message]))
        if parse_workers is not None:
            options.setdefault("parse_workers", parse_workers)
    return skipped, warnings


def read_documents(source: str | Path, format: str | None = None, **options: Any) -> Iterator[Document]:
    """Stream the documents of ``source``, detecting its format unless ``format`` is given.

    ``options`` go to the reader (``read_jsonl``, ``read_beir``, ``read_delimited``, ``read_files``),
    e.g. ``id_field``, ``text_field``, ``encoding_errors="replace"``, ``extensions`` or ``on_bytes``.
    A missing source, an unknown format or an option the reader does not take fail at call time.
    """
    path = Path(source)
    check_exists(path)
    fmt = _check_format(format) if format is not None else detect_format(path)
    if fmt in ("jsonl", "csv", "tsv") and path.is_dir():
        raise InputFormatError(f"the {fmt!r} format reads a file, but this is a folder", path=path)
    try:
        if fmt == "jsonl":
            return read_jsonl(path, **options)
        if fmt == "beir":
            return read_beir(path, **options)
        if fmt in ("csv", "tsv"):
            options.setdefault("delimiter", "," if fmt == "csv" else "\t")
            return read_delimited(path, **options)
        return read_files(path, **options)
    except TypeError as exc:
        # An unexpected keyword: say which format rejected it rather than only naming the function.
        raise TypeError(f"format {fmt!r}: {exc}") from exc


def estimate_size(source: str | Path, format: str | None = None, **options: Any) -> int | None:
    """Total bytes a reader will consume (what ``on_bytes`` callbacks add up to), for progress bars.

    Returns None when the size cannot be known cheaply (or the source does not exist).
    """
    path = Path(source)
    try:
        fmt = _check_format(format) if format is not None else detect_format(path)
        if fmt == "beir":
            return file_size(corpus_path(path))
        if fmt == "files" and path.is_file():
            return file_size(path)
        if fmt == "files":
            wanted = normalize_extensions(options.get("extensions", DEFAULT_EXTENSIONS))
            return sum(file.stat().st_size for file, _ in iter_files(path, wanted))
        return file_size(path)
    except (OSError, InputFormatError):
        return None
