"""CSV / TSV reader: a header row naming the columns, then one document per row.

Metadata columns are typed so that filters compare numbers as numbers: a column whose every non-empty value is
``true``/``false`` becomes booleans, every value an integer (no leading zero: ``007`` stays text) integers,
integers or decimals numbers. One other value keeps the *whole* column text — a column never holds two types, so
``{"year": {"gte": 2000}}`` never silently skips the rows that happened to parse. ``schema`` types columns
explicitly (``"year=int,score=float,flag=bool,zip=str"``); a value it cannot parse is an error with file and line.
In a typed column an empty value leaves the field out of the document (``{"exists": false}`` finds it); in a text
column it stays ``""``. Inference reads the file once more before indexing, stopping early once every column
has shown a text value; ``infer_types=False`` turns it off.
"""

from __future__ import annotations

import csv
import logging
import math
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from retrievekit.core.document import Document
from retrievekit.core.errors import InputFormatError
from retrievekit.ingest.base import (
    ID_FIELDS,
    TEXT_FIELDS,
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
# Column types of a schema, and the names accepted for each.
TYPES = {"int": "int", "integer": "int", "float": "float", "number": "float", "bool": "bool", "boolean": "bool",
         "str": "str", "string": "str", "text": "str"}
_INT = re.compile(r"[+-]?\d{1,18}", re.ASCII)  # beyond 18 digits an id-like code, not a quantity
_PLAIN_INT = re.compile(r"[+-]?(?:0|[1-9]\d{0,17})", re.ASCII)  # inferred: "007" and "0123" stay text
_FLOAT = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+(?=[eE]))(?:[eE][+-]?\d{1,3})?", re.ASCII)
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}

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
    schema: Mapping[str, str] | str | None = None,
    infer_types: bool = True,
) -> Iterator[Document]:
    """Stream documents from a CSV or TSV file (optionally gzipped) with a header row.

    ``delimiter`` defaults to a tab for ``.tsv``/``.tab`` files and a comma otherwise. The id column is
    ``id_field`` or else the first of ``_id``/``id``/``docid`` in the header; ``title`` and
    ``text`` (or ``contents``/``body``) give the content; every other column goes to ``metadata``, typed as
    ``schema`` says (``{"year": "int"}`` or ``"year=int,score=float,flag=bool"``; types int, float, bool, str)
    or else inferred (booleans, integers, numbers; text if any value is not one; see the module docstring).
    ``quoting="minimal"`` (default) understands CSV double quotes, which also reads plain TSV
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
    types = parse_schema(schema)
    _raise_field_size_limit()
    read_rows = _RowReader(path, delimiter, QUOTING[quoting], errors)
    return _iter_delimited(read_rows, id_field, title_field, text_field, types, infer_types, on_bytes)


def parse_schema(schema: Mapping[str, str] | str | None) -> dict[str, str]:
    """``{"year": "int"}`` or ``"year=int,score=float"`` as {column: int|float|bool|str}; errors name the entry."""
    if schema is None:
        return {}
    if isinstance(schema, str):
        pairs: list[tuple[str, str]] = []
        for item in filter(None, (part.strip() for part in schema.split(","))):
            name, sep, kind = item.partition("=")
            if not sep or not name.strip():
                raise InputFormatError(f"schema entry {item!r} is not COLUMN=TYPE (e.g. year=int,score=float)")
            pairs.append((name.strip(), kind.strip()))
    elif isinstance(schema, Mapping):
        pairs = [(str(name), kind) for name, kind in schema.items()]
    else:
        raise InputFormatError(f"schema must be a dict of column -> type or 'col=type,...', got {schema!r}")
    types: dict[str, str] = {}
    for name, kind in pairs:
        if not isinstance(kind, str) or kind.lower() not in TYPES:
            raise InputFormatError(f"schema: column {name!r} has unknown type {kind!r}; valid: int, float, bool, "
                                   "str")
        types[name] = TYPES[kind.lower()]
    return types


def _parse(value: str, kind: str, inferred: bool) -> bool | int | float | None:
    """``value`` as ``kind``, or None when it is not one (inferred integers may not have leading zeros)."""
    if kind == "bool":
        low = value.lower()
        if low in _TRUE and (not inferred or low == "true"):
            return True
        if low in _FALSE and (not inferred or low == "false"):
            return False
        return None
    if (_PLAIN_INT if inferred else _INT).fullmatch(value):
        return int(value)
    if kind == "float" and _FLOAT.fullmatch(value):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


class _RowReader:
    """Parses the file's records: (line the record starts on, fields) per non-blank record; errors carry the
    line. Called once more for type inference, so it reads the file from the start each time."""

    def __init__(self, path: Path, delimiter: str, quoting: int, errors: str) -> None:
        self.path, self.delimiter, self.quoting, self.errors = path, delimiter, quoting, errors

    def __call__(self, on_bytes: OnBytes | None) -> Iterator[tuple[int, list[str]]]:
        path, errors = self.path, self.errors

        def lines() -> Iterator[str]:
            for number, raw in iter_binary_lines(path, on_bytes):
                yield decode_line(raw, path, number, errors)

        reader = csv.reader(lines(), delimiter=self.delimiter, quotechar='"',  # type: ignore[arg-type]
                            quoting=self.quoting, doublequote=True, strict=True)
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                kind = "TSV" if self.delimiter == "\t" else "CSV"
                where = f" (in the record starting on line {start})" if reader.line_num > start else ""
                raise InputFormatError(f"malformed {kind}: {exc}{where}", path=path, line=reader.line_num) from exc
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            yield start, row


def _infer(read_rows: _RowReader, header: list[str], columns: list[str]) -> dict[str, str]:
    """The type of each of ``columns`` (metadata columns without a schema type) that every non-empty value has."""
    index = {name: header.index(name) for name in columns}
    could = {name: {"bool", "int", "float"} for name in columns}
    seen: set[str] = set()
    rows = read_rows(None)
    next(rows, None)  # the header
    for _, row in rows:
        if not could or len(row) != len(header):
            break  # every column is text already; or a bad row, reported with its line by the indexing pass
        for name in list(could):
            value = row[index[name]].strip()
            if not value:
                continue
            seen.add(name)
            kinds = could[name]
            for kind in list(kinds):
                if _parse(value, kind, inferred=True) is None:
                    kinds.discard(kind)
            if not kinds:
                del could[name]
    return {name: next(k for k in ("bool", "int", "float") if k in kinds)
            for name, kinds in could.items() if name in seen}


def _convert(record: dict[str, str], types: Mapping[str, str], schema: Mapping[str, str], path: Path,
             line: int) -> None:
    for name, kind in types.items():
        value = record[name].strip()
        if not value:
            del record[name]  # absent rather than a value of another type
            continue
        parsed = _parse(value, kind, inferred=name not in schema)
        if parsed is None:
            if name in schema:
                accepted = {"int": "an integer of at most 18 digits", "float": "a finite number",
                            "bool": "true/false, 1/0 or yes/no"}[kind]
                raise InputFormatError(f"column {name!r}: {value[:80]!r} is not {accepted} (the schema types "
                                       f"{name!r} as {kind}; use {name}=str to keep it text)", path=path, line=line)
            raise InputFormatError(f"column {name!r}: {value[:80]!r} is not {kind} like the rest of the column "
                                   "(the file changed while it was read?)", path=path, line=line)
        record[name] = parsed  # type: ignore[assignment]


def _iter_delimited(read_rows: _RowReader, id_field: str | None, title_field: str, text_field: str | None,
                    schema: dict[str, str], infer_types: bool, on_bytes: OnBytes | None) -> Iterator[Document]:
    path = read_rows.path
    rows = read_rows(on_bytes)
    header: list[str] | None = None
    types: dict[str, str] = {}
    seen = DuplicateIds(path)
    for start, row in rows:
        if header is None:
            header = _check_header(row, path, start, id_field)
            types = _column_types(read_rows, header, start, id_field, title_field, text_field, schema, infer_types)
            continue
        if len(row) != len(header):
            raise InputFormatError(f"expected {len(header)} fields (as in the header), got {len(row)}",
                                   path=path, line=start)
        record = dict(zip(header, row))
        if types:
            _convert(record, types, schema, path, start)
        doc = record_to_document(record, path, start, id_field=id_field, title_field=title_field,
                                 text_field=text_field)
        seen.check(doc.id, start)
        yield doc
    if header is None:
        raise InputFormatError("the file is empty; a header row naming the columns is required", path=path)


def _column_types(read_rows: _RowReader, header: list[str], line: int, id_field: str | None, title_field: str,
                  text_field: str | None, schema: dict[str, str], infer_types: bool) -> dict[str, str]:
    """{metadata column: int|float|bool} from ``schema`` and, for the other columns, inference."""
    content = {pick_field(header, id_field, ID_FIELDS), title_field, pick_field(header, text_field, TEXT_FIELDS),
               "metadata"}
    for name in schema:
        if name not in header:
            raise InputFormatError(f"schema names column {name!r}, which the header does not have; columns: "
                                   f"{', '.join(header)}", path=read_rows.path, line=line)
        if name in content:
            raise InputFormatError(f"schema types column {name!r}, which is the document's id, title or text; "
                                   "only metadata columns are typed", path=read_rows.path, line=line)
    untyped = [name for name in header if name not in content and name not in schema]
    inferred = _infer(read_rows, header, untyped) if infer_types and untyped else {}
    return {name: kind for name, kind in {**inferred, **schema}.items() if kind != "str"}


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
