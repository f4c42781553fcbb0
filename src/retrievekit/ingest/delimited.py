"""CSV / TSV reader: a header row naming the columns, then one document per row."""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from retrievekit.core.document import Document
from retrievekit.core.errors import InputFormatError
from retrievekit.ingest.base import (
    ID_FIELDS,
    TITLE_FIELD,
    DuplicateIds,
    OnBytes,
    check_encoding_errors,
    check_exists,
    decode_line,
    iter_binary_lines,
    pick_field,
)
from retrievekit.ingest.jsonl import record_to_document

logger = logging.getLogger(__name__)

QUOTING = {"minimal": csv.QUOTE_MINIMAL, "none": csv.QUOTE_NONE}

_field_limit_raised = False


def _raise_field_size_limit() -> None:
    """Lift the csv module's 128 KiB field limit so huge document texts can be read.

    The limit is process-wide and must fit a C long, which is 32 bits on Windows, so we back off from
    ``sys.maxsize`` until it is accepted. It is only ever raised, never lowered.
    """
    global _field_limit_raised
    if _field_limit_raised:
        return
    limit = sys.maxsize
    while limit > csv.field_size_limit():
        try:
            csv.field_size_limit(limit)
            break
        except OverflowError:
            limit //= 2
    _field_limit_raised = True


def default_delimiter(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    return "\t" if name.endswith((".tsv", ".tab")) else ","


def read_delimited(
    path: str | Path,
    *,
    delimiter: str | None = None,
    id_field: str | None = None,
    title_field: str = TITLE_FIELD,
    text_field: str | None = None,
    quoting: str = "minimal",
    encoding_errors: str = "strict",
    on_bytes: OnBytes | None = None,
) -> Iterator[Document]:
    """Stream documents from a CSV or TSV file (optionally gzipped) with a header row.

    ``delimiter`` defaults to a tab for ``.tsv``/``.tab`` files and a comma otherwise. The id column is
    ``id_field`` or else the first of ``_id``/``id``/``docid`` in the header; ``title`` and
    ``text`` (or ``contents``/``body``) give the content; every other column goes to ``metadata`` as a
    string. ``quoting="minimal"`` (default) understands CSV double quotes, which also reads plain TSV
    unless a field *starts* with a quote; ``quoting="none"`` treats quotes as ordinary characters.
    Errors (bad quoting, wrong number of fields, missing/duplicate ids, invalid UTF-8) carry the line.
    """
    path = Path(path)
    check_exists(path)
    errors = check_encoding_errors(encoding_errors)
    if quoting not in QUOTING:
        raise InputFormatError(f"quoting must be one of {', '.join(map(repr, QUOTING))}, got {quoting!r}")
    if delimiter is None:
        delimiter = default_delimiter(path)
    if len(delimiter) != 1:
        raise InputFormatError(f"delimiter must be a single character, got {delimiter!r}")
    _raise_field_size_limit()
    return _iter_delimited(path, delimiter, id_field, title_field, text_field, QUOTING[quoting], errors,
                           on_bytes)


def _iter_delimited(path: Path, delimiter: str, id_field: str | None, title_field: str,
                    text_field: str | None, quoting: int, errors: str,
                    on_bytes: OnBytes | None) -> Iterator[Document]:
    def lines() -> Iterator[str]:
        for number, raw in iter_binary_lines(path, on_bytes):
            yield decode_line(raw, path, number, errors)

    reader = csv.reader(lines(), delimiter=delimiter, quotechar='"', quoting=quoting,  # type: ignore[arg-type]
                        doublequote=True, strict=True)
    header: list[str] | None = None
    seen = DuplicateIds(path)
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            kind = "TSV" if delimiter == "\t" else "CSV"
            where = f" (in the record starting on line {start})" if reader.line_num > start else ""
            raise InputFormatError(f"malformed {kind}: {exc}{where}", path=path, line=reader.line_num) from exc
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if header is None:
            header = _check_header(row, path, start, id_field)
            continue
        if len(row) != len(header):
            raise InputFormatError(f"expected {len(header)} fields (as in the header), got {len(row)}",
                                   path=path, line=start)
        record = dict(zip(header, row))
        doc = record_to_document(record, path, start, id_field=id_field, title_field=title_field,
                                 text_field=text_field)
        seen.check(doc.id, start)
        yield doc
    if header is None:
        raise InputFormatError("the file is empty; a header row naming the columns is required", path=path)


def _check_header(row: list[str], path: Path, line: int, id_field: str | None) -> list[str]:
    header = [name.strip() for name in row]
    if any(not name for name in header):
        raise InputFormatError(f"the header row has an empty column name: {row!r}", path=path, line=line)
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise InputFormatError(f"the header row repeats column(s) {duplicates}", path=path, line=line)
    id_key = pick_field(header, id_field, ID_FIELDS)
    if id_key is None or id_key not in header:
        wanted = repr(id_field) if id_field is not None else " or ".join(map(repr, ID_FIELDS))
        raise InputFormatError(
            f"a header row naming an id column ({wanted}) is required; the first row is {row!r}",
            path=path,
            line=line,
        )
    return header
