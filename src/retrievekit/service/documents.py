"""Documents by id: get, add (replacing an existing id), update (fields left out keep their values) and delete.
Ids are opaque: looked up in the collection, never used as paths.

Writes take an open ``CollectionWriter`` (the caller decides how it is locked and when it commits):

    with col.writer() as w:
        add_documents(w, [{"id": "a", "text": "..."}])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retrievekit.service.types import ServiceError

if TYPE_CHECKING:
    from retrievekit.collection import Collection
    from retrievekit.core.document import Document
    from retrievekit.storage.writer import CollectionWriter

__all__ = ["DocumentPatch", "add_documents", "delete_documents", "get_document", "update_document"]


def _check_id(doc_id: Any) -> str:
    if not isinstance(doc_id, str) or not doc_id:
        raise ServiceError("bad_request", "id must be a non-empty string", param="id")
    return doc_id


def _missing(doc_id: str, hint: str = "") -> ServiceError:
    return ServiceError("not_found", f"no document with id {doc_id!r}{hint}", param="id")


def get_document(col: Collection, doc_id: str) -> Document:
    doc = col.get(_check_id(doc_id))
    if doc is None:
        raise _missing(doc_id)
    return doc


def add_documents(w: CollectionWriter, documents: Iterable[Mapping[str, Any]]) -> int:
    """Add documents (an existing id is replaced); the number added."""
    return int(w.add([dict(d) for d in documents]))


@dataclass
class DocumentPatch:
    """Changes to a document: fields left None keep their values; ``metadata`` replaces the whole dict."""

    title: str | None = None
    text: str | None = None
    metadata: dict[str, Any] | None = None

    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in (("title", self.title), ("text", self.text), ("metadata", self.metadata))
                if v is not None}


def update_document(col: Collection, w: CollectionWriter, doc_id: str, patch: DocumentPatch, *,
                    hint: str = " (add it first)") -> None:
    """Change an existing document. ``col`` must show the writer's latest commit (nobody else commits while the
    writer is held)."""
    doc = col.get(_check_id(doc_id))
    if doc is None:
        raise _missing(doc_id, hint)
    w.add([{**doc.to_json(), **patch.changes()}])


def delete_documents(w: CollectionWriter, ids: Sequence[str], *, require: bool = False) -> int:
    """Delete documents by id; the number deleted. ``require``: a missing id (one id asked) is not_found."""
    for doc_id in ids:
        _check_id(doc_id)
    deleted = int(w.delete(list(ids)))
    if require and not deleted and len(ids) == 1:
        raise _missing(ids[0])
    return deleted
