"""Documents by id: get, add (replacing an existing id), update (fields left out keep their values) and delete.
Ids are opaque: looked up in the collection, never used as paths.

Writes take an open ``CollectionWriter`` (a sharded collection's ``ShardedWriter``; the caller decides how it is
locked and when it commits):

    with col.writer() as w:
        add_documents(w, [{"id": "a", "text": "..."}])

In a passage collection a document is stored as its passages ``ID#0``, ``ID#1``, ...; every call here addresses
the document by its own id: ``get_document`` reassembles it, ``describe_document`` also lists its passages, and
updates re-chunk it. Passages are read-only views: a write naming a passage id is refused (``read_only``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from retrievekit.core.document import Document
from retrievekit.core.provenance import PAGE, PAGE_END
from retrievekit.service.collections import DocumentReader, document_reader, is_sharded
from retrievekit.service.types import ServiceError
from retrievekit.storage.writer import PASSAGE_END, PASSAGE_HEADING, PASSAGE_OF, PASSAGE_START

if TYPE_CHECKING:
    from retrievekit.service.collections import AnyCollection
    from retrievekit.sharding.collection import ShardedWriter
    from retrievekit.storage.writer import CollectionWriter

    AnyWriter = CollectionWriter | ShardedWriter

__all__ = ["DocumentPatch", "add_documents", "delete_documents", "describe_document", "document_file",
           "get_document", "update_document"]

_SPAN_KEYS = (PASSAGE_OF, PASSAGE_START, PASSAGE_END)


def _check_id(doc_id: Any) -> str:
    if not isinstance(doc_id, str) or not doc_id:
        raise ServiceError("bad_request", "id must be a non-empty string", param="id")
    return doc_id


def _missing(doc_id: str, hint: str = "") -> ServiceError:
    return ServiceError("not_found", f"no document with id {doc_id!r}{hint}", param="id")


def _is_passage_collection(col: AnyCollection) -> bool:
    return bool(col.config.get("passages"))


def _passages_of(snap: DocumentReader, doc_id: str) -> list[Document]:
    """The passages ``doc_id#0``, ``#1``, ... of a document (numbered without gaps), in order."""
    out: list[Document] = []
    while (passage := snap.get(f"{doc_id}#{len(out)}")) is not None and passage.metadata.get(PASSAGE_OF) == doc_id:
        out.append(passage)
    return out


def _owner(snap: DocumentReader, doc_id: str) -> str | None:
    """The document a stored passage id belongs to (None: ``doc_id`` is no passage)."""
    stored = snap.get(doc_id)
    owner = stored.metadata.get(PASSAGE_OF) if stored is not None else None
    return owner if isinstance(owner, str) and owner != doc_id else None


def _read_only(doc_id: str, owner: str) -> ServiceError:
    return ServiceError("read_only", f"{doc_id!r} is a passage of the document {owner!r}; passages are read-only "
                        f"views: address the document {owner!r}", param="id")


def _document_metadata(passages: Sequence[Document]) -> dict[str, Any]:
    """The document's own metadata: the first passage's without the passage span (a ``heading`` the chunker set
    differs between passages; one the document had is on all of them)."""
    meta = {k: v for k, v in passages[0].metadata.items() if k not in _SPAN_KEYS}
    if PASSAGE_HEADING in meta and any(p.metadata.get(PASSAGE_HEADING) != meta[PASSAGE_HEADING] for p in passages):
        del meta[PASSAGE_HEADING]
    pages = [(p.metadata.get(PAGE), p.metadata.get(PAGE_END)) for p in passages]
    if PAGE in meta and all(type(a) is int and type(b) is int for a, b in pages):  # a PDF's: all its pages
        meta[PAGE], meta[PAGE_END] = min(a for a, _ in pages), max(b for _, b in pages)
    return meta


def _joined_text(passages: Sequence[Document]) -> str:
    """The document text from its passages: each passage is the slice [start, end) of it, so they are laid at
    their offsets (overlaps agree); the gaps between them (whitespace the chunker left out) become spaces, so the
    offsets still hold. Passages that are not slices (HTML: offsets into the source) are joined by blank lines."""
    spans = [(p.metadata.get(PASSAGE_START), p.metadata.get(PASSAGE_END), p.text) for p in passages]
    if not all(isinstance(s, int) and isinstance(e, int) and e - s == len(t) for s, e, t in spans):
        return "\n\n".join(p.text for p in passages)
    parts, pos = [], 0
    for start, end, text in sorted(spans, key=lambda span: span[0]):
        if start > pos:
            parts.append(" " * (start - pos))
            pos = start
        if end > pos:
            parts.append(text[pos - start:])
            pos = end
    return "".join(parts)


def _find(col: AnyCollection, doc_id: str) -> tuple[Document, list[Document] | None]:
    """The document and, in a passage collection, its passages (None: stored whole, or a passage id itself)."""
    _check_id(doc_id)
    if _is_passage_collection(col):
        snap = document_reader(col)
        passages = _passages_of(snap, doc_id)
        if passages:
            return Document(id=doc_id, title=passages[0].title, text=_joined_text(passages),
                            metadata=_document_metadata(passages)), passages
        found = snap.get(doc_id)  # a passage id: the passage, read-only
    else:
        found = col.get(doc_id)
    if found is None:
        raise _missing(doc_id)
    return found, None


def get_document(col: AnyCollection, doc_id: str) -> Document:
    """A document by id; in a passage collection reassembled from its passages (a passage id gives the passage)."""
    return _find(col, doc_id)[0]


def describe_document(col: AnyCollection, doc_id: str) -> dict[str, Any]:
    """``get_document`` as JSON; in a passage collection with ``passages``: each passage's id and character span."""
    doc, passages = _find(col, doc_id)
    out = doc.to_json()
    if passages is not None:
        out["passages"] = [{"id": p.id, "start": p.metadata.get(PASSAGE_START), "end": p.metadata.get(PASSAGE_END)}
                           for p in passages]
    return out


def _refuse_passage_ids(col: AnyCollection | None, ids: Iterable[str]) -> None:
    """A write naming a passage (not a document) of a passage collection is refused."""
    if col is None or not _is_passage_collection(col):
        return
    snap = document_reader(col)
    for doc_id in ids:
        owner = _owner(snap, doc_id) if isinstance(doc_id, str) else None
        if owner is not None and not _passages_of(snap, doc_id):
            raise _read_only(doc_id, owner)


def add_documents(w: AnyWriter, documents: Iterable[Mapping[str, Any]], *,
                  col: AnyCollection | None = None) -> int:
    """Add documents (an existing id is replaced); the number added. ``col``: the collection, to refuse a passage
    id of a passage collection as a document id."""
    batch = [dict(d) for d in documents]
    _refuse_passage_ids(col, [d.get("id", d.get("_id")) for d in batch])
    return int(w.add(batch))


@dataclass
class DocumentPatch:
    """Changes to a document: fields left None keep their values; ``metadata`` replaces the whole dict."""

    title: str | None = None
    text: str | None = None
    metadata: dict[str, Any] | None = None

    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in (("title", self.title), ("text", self.text), ("metadata", self.metadata))
                if v is not None}


def update_document(col: AnyCollection, w: AnyWriter, doc_id: str, patch: DocumentPatch, *,
                    hint: str = " (add it first)") -> None:
    """Change an existing document. ``col`` must show the writer's latest commit (nobody else commits while the
    writer is held)."""
    _refuse_passage_ids(col, [_check_id(doc_id)])
    try:
        doc, passages = _find(col, doc_id)
    except ServiceError:
        raise _missing(doc_id, hint) from None
    changes = patch.changes()
    if passages is None or "text" in changes:
        w.add([{**doc.to_json(), **changes}])  # a passage collection re-chunks the new text
        return
    # Title or metadata only: the passages keep their text and spans (re-chunking the reassembled text would turn
    # the whitespace between passages into spaces).
    if is_sharded(col):
        raise ServiceError("unsupported", f"changing only the title or metadata of {doc_id!r} is not supported on a "
                           "sharded passage collection yet (its writer cannot store passages as they are); send the "
                           "document's text too, and it is chunked again", param="text")
    title, metadata = changes.get("title", doc.title), changes.get("metadata", doc.metadata)
    cast("CollectionWriter", w).add_as_is([Document(id=p.id, title=title, text=p.text, metadata={
        **metadata, **{k: v for k, v in p.metadata.items() if k in _SPAN_KEYS or (k == PASSAGE_HEADING
                                                                                  and k not in doc.metadata)}})
        for p in passages])


def delete_documents(w: AnyWriter, ids: Sequence[str], *, require: bool = False,
                     col: AnyCollection | None = None) -> int:
    """Delete documents by id (in a passage collection: all passages of each); the number deleted. ``require``: a
    missing id (one id asked) is not_found. ``col``: the collection, to refuse passage ids of a passage
    collection."""
    for doc_id in ids:
        _check_id(doc_id)
    _refuse_passage_ids(col, ids)
    deleted = int(w.delete(list(ids)))
    if require and not deleted and len(ids) == 1:
        raise _missing(ids[0])
    return deleted


# the source files a server may hand out (as a folder ingest reads them), and how
FILE_MEDIA_TYPES = {".pdf": "application/pdf", ".epub": "application/epub+zip", ".eml": "message/rfc822",
                    ".mbox": "application/mbox",
                    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation"}


def document_file(col: AnyCollection, doc_id: str, roots: Sequence[str | Path]) -> tuple[Path, str]:
    """(path, media type) of the source file of document (or passage) ``doc_id``: its ``path`` metadata, relative to
    one of ``roots`` (the folders a server was told to share: the folders that were indexed), symbolic links
    resolved, a regular PDF, Office, EPUB or e-mail file inside that root. ServiceError ``not_found`` otherwise
    (``forbidden`` when the path leads out of every root). Nothing else a document's metadata names is read."""
    if not roots:
        raise ServiceError("not_found", "this server shares no document files (start it with document roots: "
                           "retrievekit serve --document-root FOLDER)", param="id")
    named = get_document(col, doc_id).metadata.get("path")
    if not isinstance(named, str) or not named or "\x00" in named or os.path.isabs(named):
        raise ServiceError("not_found", f"document {doc_id!r} names no file of a shared folder", param="id")
    media_type = FILE_MEDIA_TYPES.get(os.path.splitext(named)[1].lower())
    if media_type is None:
        raise ServiceError("not_found", f"the file of document {doc_id!r} is not a PDF, Office, EPUB or e-mail "
                           "file", param="id")
    outside = False
    for root in roots:
        base = os.path.realpath(root)
        real = os.path.realpath(os.path.join(base, named))
        if os.path.commonpath([base, real]) != base:
            outside = True
            continue
        if os.path.isfile(real):
            return Path(real), media_type
    if outside:
        raise ServiceError("forbidden", f"the file of document {doc_id!r} lies outside the shared folders",
                           param="id")
    raise ServiceError("not_found", f"the file of document {doc_id!r} is not in the shared folders", param="id")
