"""Pieces shared by the document readers: id/field coercion, byte streams, strict line decoding."""

from __future__ import annotations

import gzip
import io
import math
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from retrievekit.core.document import Document, document_problem
from retrievekit.core.errors import InputFormatError

#: Progress callback: called with the number of *source* bytes just consumed (an increment, not a total).
#: For a ``.gz`` file the bytes are compressed bytes, so the increments add up to the file size on disk
#: and match :func:`retrievekit.ingest.estimate_size`.
OnBytes = Callable[[int], None]

ENCODING_ERRORS = ("strict", "replace")

# Field names tried, in order, when the caller does not name the field explicitly.
ID_FIELDS = ("_id", "id", "docid")
TEXT_FIELDS = ("text", "contents", "body")
TITLE_FIELD = "title"

_CHUNK = 1 << 20


class SourceNotFoundError(InputFormatError, FileNotFoundError):
    """The file or folder to read does not exist (catchable as ``FileNotFoundError`` too)."""


def check_encoding_errors(value: str) -> str:
    if value not in ENCODING_ERRORS:
        raise InputFormatError(
            f"encoding_errors must be one of {', '.join(map(repr, ENCODING_ERRORS))}, got {value!r}"
        )
    return value


def check_exists(path: Path) -> None:
    if not path.exists():
        raise SourceNotFoundError("no such file or folder", path=path)


def is_gzip(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


class _CountingReader(io.RawIOBase):
    """Wraps a raw file and reports every byte read to ``on_bytes``.

    Used under ``gzip`` so progress is counted in on-disk (compressed) bytes.
    """

    def __init__(self, raw: BinaryIO, on_bytes: OnBytes) -> None:
        super().__init__()
        self._raw = raw
        self._on_bytes = on_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self._on_bytes(n)
        return n or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


def iter_binary_lines(path: Path, on_bytes: OnBytes | None = None) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, raw_line)`` (1-based, line ending kept) from a plain or gzipped file.

    Lines are read one at a time through a buffered reader, so memory is bounded by the longest line
    and a single huge line is read in linear time.
    """
    raw = open(path, "rb")  # noqa: SIM115 - closed in the finally below
    try:
        if is_gzip(path):
            source: Any = raw if on_bytes is None else _CountingReader(raw, on_bytes)
            stream: BinaryIO | gzip.GzipFile = gzip.GzipFile(fileobj=io.BufferedReader(source, _CHUNK), mode="rb")
            count_lines = False
        else:
            stream = raw
            count_lines = on_bytes is not None
        try:
            for number, line in enumerate(stream, start=1):
                if count_lines:
                    on_bytes(len(line))  # type: ignore[misc]
                yield number, line
        except (OSError, EOFError, zlib.error) as exc:
            raise InputFormatError(f"cannot read the file: {exc}", path=path) from exc
    finally:
        raw.close()


def decode_line(raw: bytes, path: Path, line: int, errors: str) -> str:
    """Decode one line as UTF-8; with ``errors="strict"`` invalid bytes raise ``InputFormatError``."""
    try:
        text = raw.decode("utf-8", errors)
    except UnicodeDecodeError as exc:
        raise InputFormatError(
            f"invalid UTF-8 at byte {exc.start} of the line ({exc.reason}); "
            "fix the file or read it with encoding_errors='replace'",
            path=path,
            line=line,
        ) from exc
    if line == 1 and text.startswith("\ufeff"):
        text = text[1:]  # UTF-8 byte order mark written by some editors
    return text


def coerce_id(value: Any, field: str, path: Path, line: int | None) -> str:
    """Turn an id value into a non-empty string; ints are accepted (``7`` -> ``"7"``)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputFormatError(
            f"id field {field!r} must be a string or an integer, got {type(value).__name__}",
            path=path,
            line=line,
        )
    text = value if isinstance(value, str) else _number_text(value, field, path, line)
    if not text.strip():
        raise InputFormatError(f"id field {field!r} is empty", path=path, line=line)
    return text


def coerce_text(value: Any, field: str, path: Path, line: int | None) -> str:
    """A title/text value: a string, a number (its decimal form: a title ``0`` is ``"0"``, as in ``as_document``),
    or null/absent meaning empty."""
    if value is None:
        return ""
    if (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and math.isfinite(value)):
        return _number_text(value, field, path, line)
    if not isinstance(value, str):
        raise InputFormatError(
            f"field {field!r} must be a string, got {type(value).__name__}", path=path, line=line
        )
    return value


def _number_text(value: int | float, field: str, path: Path, line: int | None) -> str:
    try:
        return str(value)
    except ValueError:  # Python will not print an integer of more than 4,300 digits
        raise InputFormatError(f"field {field!r} is an integer of over 4,300 digits; write it as a string",
                               path=path, line=line) from None


def checked(doc: Document, path: Path, line: int | None) -> Document:
    """``doc`` if it can be stored (``core.document.document_problem``), else an error naming the file and line:
    readers check here, so a bad record is reported where it is, not as its position in a later batch."""
    problem = document_problem(doc)
    if problem is not None:
        raise InputFormatError(problem, path=path, line=line)
    return doc


def pick_field(available: Sequence[str] | set[str] | dict[str, Any], explicit: str | None,
               candidates: Sequence[str]) -> str | None:
    """The explicit field name, else the first candidate present in ``available`` (None if none is)."""
    if explicit is not None:
        return explicit
    for name in candidates:
        if name in available:
            return name
    return None


class DuplicateIds:
    """Remembers the line of every id seen in one source so a repeat can name both lines."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen: dict[str, int | None] = {}

    def check(self, doc_id: str, line: int | None) -> None:
        if doc_id not in self._seen:
            self._seen[doc_id] = line
            return
        first = self._seen[doc_id]
        where = f"line {first}" if first is not None else "an earlier record"
        raise InputFormatError(f"duplicate id {doc_id!r} (first seen on {where})", path=self._path, line=line)


def file_size(path: Path) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None
