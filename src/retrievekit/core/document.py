"""The document record shared by ingest, storage and search."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: How deeply a metadata value may nest lists and objects. One limit for every way in (Python, CLI ingest, HTTP),
#: far below what every reader of the stored JSON copes with: HTTP/MCP responses fail near 255 levels, pickling a
#: batch for an ingest worker near 900.
MAX_METADATA_DEPTH = 32


@dataclass(frozen=True)
class Document:
    """One document: a unique id, optional title, text and a flat metadata dict (JSON values)."""

    id: str
    text: str = ""
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "text": self.text, "metadata": self.metadata}

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as its four fields (a parallel ingest sends every document to a worker process): the default,
        # a state dict per document, took 1.7x as long to pickle and unpickle.
        return (type(self), (self.id, self.text, self.title, self.metadata))

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Document:
        return cls(id=obj["id"], text=obj.get("text", ""), title=obj.get("title", ""),
                   metadata=obj.get("metadata") or {})


def index_text(doc: Document, fields: Sequence[str]) -> str:
    """The text the inverted index sees: the chosen fields joined by a space (Pyserini's title + " " + text)."""
    if tuple(fields) == ("title", "text"):
        return doc.title + " " + doc.text if doc.title else doc.text
    parts = []
    for f in fields:
        value = getattr(doc, f, None) if f in ("title", "text") else doc.metadata.get(f)
        if value:
            parts.append(str(value))
    return " ".join(parts)


def document_problem(doc: Document) -> str | None:
    """Why ``doc`` cannot be stored, or None. The one check every document passes (readers, ``as_document``):
    a non-empty id without line breaks or NUL (ids are stored one per line), string title and text, metadata a
    dict of JSON values (string keys, finite numbers, at most ``MAX_METADATA_DEPTH`` levels), and no lone
    surrogate anywhere (it cannot be written as UTF-8)."""
    if not isinstance(doc.id, str) or not doc.id.strip():
        return f"missing or empty document id ({_short(doc.id)}); ids are non-empty strings (or integers)"
    if any(c in doc.id for c in "\n\r\x00"):
        return f"document id {_short(doc.id)} contains a line break (CR/LF) or NUL character, which ids may not"
    for name, value in (("document id", doc.id), ("title", doc.title), ("text", doc.text)):
        if not isinstance(value, str):
            return f"{name} must be a string, got {type(value).__name__}"
        problem = _surrogate(value)
        if problem:
            return f"{name} {problem}"
    if not isinstance(doc.metadata, dict):
        return f"metadata must be a JSON object (dict), got {type(doc.metadata).__name__}"
    return _metadata_problem(doc.metadata) if doc.metadata else None


def _short(value: Any, limit: int = 60) -> str:
    """``repr`` of a value, clipped for an error message (an id may be megabytes long)."""
    if isinstance(value, int) and value.bit_length() > 14_000:  # repr fails past 4,300 digits
        return f"<an integer of about {int(value.bit_length() * 0.30103):,} digits>"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 6] + "…" + text[-5:]


def _surrogate(text: str) -> str | None:
    """Where ``text`` holds a lone surrogate (a code point U+D800-U+DFFF that is not a character), or None."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"contains a lone surrogate {text[exc.start]!r} at character {exc.start}, which is not valid "
                "Unicode (a broken \\uD800-\\uDFFF escape?); strings must be valid Unicode text")
    return None


def _metadata_problem(metadata: dict[str, Any]) -> str | None:
    # The depth check runs first and stops at the limit, so a cyclic or absurdly deep value cannot recurse far.
    problem = _walk(metadata, "", 0, deep=True)
    if problem:
        return problem
    try:  # fast path in C: most metadata is fine
        json.dumps(metadata, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        return _walk(metadata, "", 0, deep=False) or "metadata is not JSON-serialisable"
    return None


def _walk(value: Any, where: str, depth: int, *, deep: bool) -> str | None:
    """The first problem in a metadata value: too deep (``deep``) or not a JSON value (otherwise)."""
    field_name = _short(where.lstrip("."), 80) if where else "metadata"
    if isinstance(value, dict):
        if depth > MAX_METADATA_DEPTH:
            return (f"metadata field {field_name} nests lists/objects more than {MAX_METADATA_DEPTH} levels deep; "
                    f"at most {MAX_METADATA_DEPTH} are accepted")
        for key, item in value.items():
            if not isinstance(key, str):
                return f"metadata keys must be strings, got {type(key).__name__} {_short(key)} in {field_name}"
            if not deep and _surrogate(key):
                return f"metadata key {_short(key)} in {field_name} {_surrogate(key)}"
            if not deep or isinstance(item, (dict, list, tuple)):
                problem = _walk(item, f"{where}.{key}", depth + 1, deep=deep)
                if problem:
                    return problem
        return None
    if isinstance(value, (list, tuple)):
        if depth > MAX_METADATA_DEPTH:
            return (f"metadata field {field_name} nests lists/objects more than {MAX_METADATA_DEPTH} levels deep; "
                    f"at most {MAX_METADATA_DEPTH} are accepted")
        for i, item in enumerate(value):
            if not deep or isinstance(item, (dict, list, tuple)):
                problem = _walk(item, f"{where}[{i}]", depth + 1, deep=deep)
                if problem:
                    return problem
        return None
    if deep or value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            int.__repr__(value)
        except ValueError:  # Python refuses to print integers of more than 4,300 digits
            return f"metadata field {field_name} is an integer of over 4,300 digits; store such a number as a string"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (
            f"metadata field {field_name} is {value}, which JSON cannot store; use a finite number or null")
    if isinstance(value, str):
        problem = _surrogate(value)
        return f"metadata field {field_name} {problem}" if problem else None
    return (f"metadata field {field_name} holds a {type(value).__name__}, which is not a JSON value; use a string, "
            "number, true/false, null, list or object")
