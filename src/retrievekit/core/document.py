"""The document record shared by ingest, storage and search."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    """One document: a unique id, optional title, text and a flat metadata dict (JSON values)."""

    id: str
    text: str = ""
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "text": self.text, "metadata": self.metadata}

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
