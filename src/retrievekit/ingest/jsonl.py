"""JSON Lines reader (``.jsonl``, ``.ndjson``, optionally gzipped): one JSON object per line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    checked,
    coerce_id,
    coerce_text,
    decode_line,
    iter_binary_lines,
    pick_field,
)

logger = logging.getLogger(__name__)


def read_jsonl(
    path: str | Path,
    *,
    id_field: str | None = None,
    title_field: str = TITLE_FIELD,
    text_field: str | None = None,
    encoding_errors: str = "strict",
    on_bytes: OnBytes | None = None,
) -> Iterator[Document]:
    """Stream documents from a JSON Lines file, one line at a time.

    The id comes from ``id_field`` or else the first of ``_id``/``id``/``docid`` present (integers become
    strings); the title from ``title_field``; the text from ``text_field`` or else the first of
    ``text``/``contents``/``body``. Every other key is kept in ``metadata`` unchanged, except that an
    object under ``"metadata"`` is merged in (so files written from ``Document.to_json()`` read back equal).

    Blank lines are skipped. Malformed JSON, a line that is not an object, a missing/empty/ill-typed id,
    a duplicate id, (with ``encoding_errors="strict"``) invalid UTF-8, or a record that cannot be stored (a
    lone surrogate escape such as ``"\\ud800"``, NaN/Infinity, metadata nested deeper than
    ``MAX_METADATA_DEPTH``, an id with a line break) raise ``InputFormatError`` naming the file and line.
    Empty documents (no title and no text) are yielded: they are stored and can be fetched by id, but match no
    query.
    """
    path = Path(path)
    check_exists(path)  # checked here, at call time, not on the first next()
    errors = check_encoding_errors(encoding_errors)
    return _iter_jsonl(path, id_field, title_field, text_field, errors, on_bytes)


def _iter_jsonl(path: Path, id_field: str | None, title_field: str, text_field: str | None, errors: str,
                on_bytes: OnBytes | None) -> Iterator[Document]:
    seen = DuplicateIds(path)
    for number, raw in iter_binary_lines(path, on_bytes):
        if not raw.strip():
            continue
        obj = _parse_line(raw, path, number, errors)
        doc = record_to_document(obj, path, number, id_field=id_field, title_field=title_field,
                                 text_field=text_field)
        seen.check(doc.id, number)
        yield doc


def _parse_line(raw: bytes, path: Path, number: int, errors: str) -> dict[str, Any]:
    text = decode_line(raw, path, number, errors)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFormatError(f"malformed JSON at column {exc.colno}: {exc.msg}", path=path,
                               line=number) from exc
    except RecursionError as exc:  # absurdly deep nesting; json raises this instead of a decode error
        raise InputFormatError("JSON nested too deeply", path=path, line=number) from exc
    except ValueError as exc:  # an integer of more than 4,300 digits (Python's limit on int <-> text)
        raise InputFormatError("a number has more than 4,300 digits, too many to read; write such a value as a "
                               "string", path=path, line=number) from exc
    if not isinstance(obj, dict):
        raise InputFormatError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=number)
    return obj


def record_to_document(
    obj: dict[str, Any],
    path: Path,
    line: int | None,
    *,
    id_field: str | None,
    title_field: str,
    text_field: str | None,
) -> Document:
    """Map one parsed record (JSON object or CSV row) onto a ``Document``; leftover keys become metadata. The
    document is validated here (``checked``), so every bad value is reported with the file and line."""
    id_key = pick_field(obj, id_field, ID_FIELDS)
    if id_key is None or id_key not in obj:
        wanted = repr(id_field) if id_field is not None else " or ".join(map(repr, ID_FIELDS))
        raise InputFormatError(f"record has no id field ({wanted})", path=path, line=line)
    doc_id = coerce_id(obj[id_key], id_key, path, line)
    title = coerce_text(obj.get(title_field), title_field, path, line)
    text_key = pick_field(obj, text_field, TEXT_FIELDS)
    text = coerce_text(obj.get(text_key), text_key, path, line) if text_key is not None else ""
    used = {id_key, title_field, text_key}
    metadata: dict[str, Any] = {}
    nested = obj.get("metadata")
    if isinstance(nested, dict) and "metadata" not in used:
        # BEIR corpora and Document.to_json() nest metadata under "metadata"; flatten it so that
        # reading back a written corpus gives the same documents. Top-level keys win on a clash.
        metadata.update(nested)
        used.add("metadata")
    metadata.update((key, value) for key, value in obj.items() if key not in used)
    return checked(Document(id=doc_id, text=text, title=title, metadata=metadata), path, line)
