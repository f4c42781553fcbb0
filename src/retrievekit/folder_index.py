"""Indexing a folder of files incrementally: ``ingest_folder(collection, root)`` (also ``Collection.ingest(folder,
incremental=True)`` and ``retrievekit index FOLDER COL --incremental``).

The documents are those of ``ingest.files.read_files`` (text, Markdown, HTML, PDF, Office, EPUB, e-mail), each
stamped with its file's content hash (``file_hash``) and the folder it was read from (``folder``: the folder's
resolved path, so that another folder's documents in the same collection are never touched). As with code
(``code_index``), the collection is its own state, read back from the metadata at the start of a run:

* a file whose path was indexed from this folder with the same content hash is **unchanged**: not parsed, not
  written;
* a **new or changed** file is parsed and its documents written (replacing by id); documents it no longer yields
  (an mbox that lost messages, a file that became unreadable) are deleted;
* a path indexed before and not found now (deleted, renamed, or no longer matched) loses its documents.

It all happens under the writer lock and lands in one commit; a run that finds nothing to do commits nothing.
Documents added otherwise (without this folder's stamp) are never touched. A change of reader settings
(``max_pages``, ``extensions``) alone does not re-parse unchanged files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrievekit.core.document import Document
from retrievekit.core.errors import InputFormatError
from retrievekit.ingest.files import read_files

if TYPE_CHECKING:
    from retrievekit.collection import Collection
    from retrievekit.storage.snapshot import Snapshot

FOLDER_KEY, HASH_KEY, PASSAGE_OF = "folder", "file_hash", "passage_of"


@dataclass
class FolderIngestReport:
    """What one incremental run did, in files (``seen``: files read; ``added``, ``updated``: parsed into
    documents; ``unchanged``: not parsed; ``deleted``: indexed before and gone, or now unreadable) and in stored
    entries (documents, or passages in a passage collection)."""

    folder: str
    files_seen: int = 0
    files_added: int = 0
    files_updated: int = 0
    files_unchanged: int = 0
    files_deleted: int = 0
    documents_written: int = 0  # documents parsed and written this run
    entries_deleted: int = 0  # stored documents / passages removed (gone files, vanished documents)
    skipped: list[list[str]] = field(default_factory=list)
    warnings: list[list[str]] = field(default_factory=list)
    seconds: float = 0.0
    documents: int = 0  # live entries in the collection after the run
    generation: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Indexed:
    file_hash: str | None  # None when its entries disagree (a run interrupted oddly): parse it again
    ids: list[str] = field(default_factory=list)  # stored ids (documents or passages)
    doc_ids: list[str] = field(default_factory=list)  # the document each stored id belongs to


def indexed_files(snapshot: Snapshot, folder: str) -> dict[str, _Indexed]:
    """Path -> content hash and stored ids of the entries indexed from ``folder``: one pass over the raw metadata
    lines of every segment (no document text)."""
    out: dict[str, _Indexed] = {}
    marker = json.dumps(folder).encode("utf-8")
    for seg, live in zip(snapshot.segments, snapshot.live):
        ids = seg.ids
        for i, line in enumerate(seg.metadata_lines()):
            if marker not in line or b'"file_hash"' not in line or (live is not None and not live[i]):
                continue
            meta = json.loads(line)
            path, digest = meta.get("path"), meta.get(HASH_KEY)
            if meta.get(FOLDER_KEY) != folder or not isinstance(path, str) or not isinstance(digest, str):
                continue
            entry = out.get(path)
            if entry is None:
                entry = out[path] = _Indexed(digest)
            elif entry.file_hash != digest:
                entry.file_hash = None
            entry.ids.append(ids[i])
            of = meta.get(PASSAGE_OF)
            entry.doc_ids.append(of if isinstance(of, str) else ids[i])
    return out


def ingest_folder(collection: Collection, root: str | Path, *, workers: int = 1, batch_size: int = 1000,
                  progress: bool = False, lock_timeout: float = 0.0, **reader_options: Any) -> FolderIngestReport:
    """Index (or re-index) the files under ``root`` into ``collection`` and commit once; only new and changed files
    are parsed and written, and the documents of files that are gone are deleted (see the module docstring).
    ``reader_options`` go to ``read_files`` (``extensions``, ``max_pages``, ``encoding_errors``, ...)."""
    started = time.perf_counter()
    top = Path(root)
    if not top.is_dir():
        raise InputFormatError("incremental indexing reads a folder, but this is not one", path=top)
    folder = str(top.resolve())
    report = FolderIngestReport(folder)
    for name in ("known", "on_skip", "on_warning"):
        if name in reader_options:
            raise TypeError(f"ingest_folder sets {name} itself")
    writer = collection.writer(lock_timeout=lock_timeout, progress=progress)
    try:
        snapshot = collection.snapshot()  # read under the lock: no other commit can land until ours
        indexed = indexed_files(snapshot, folder)
        seen: set[str] = set()
        added: set[str] = set()  # paths not indexed before
        changed: set[str] = set()  # indexed paths whose content changed
        parsed: set[str] = set()  # paths that gave documents this run (the others were skipped as unreadable)
        written: set[str] = set()  # document ids written this run

        def known(rel: str, digest: str) -> bool:
            seen.add(rel)
            old = indexed.get(rel)
            if old is not None and old.file_hash == digest:
                report.files_unchanged += 1
                return True
            (added if old is None else changed).add(rel)
            return False

        def documents() -> Iterator[Document]:
            reader_options.setdefault("parse_workers", workers)
            for doc in read_files(top, known=known, **reader_options,
                                  on_skip=lambda path, reason: report.skipped.append([str(path), reason]),
                                  on_warning=lambda path, message: report.warnings.append([str(path), message])):
                written.add(doc.id)
                parsed.add(doc.metadata["path"])
                report.documents_written += 1
                yield replace(doc, metadata={**doc.metadata, FOLDER_KEY: folder})

        writer.add_parallel(documents(), workers, batch_size)
        stale: list[str] = []
        for path, entry in indexed.items():
            if path not in seen or (path in changed and path not in parsed):  # gone, or now unreadable
                report.files_deleted += 1
                stale.extend(entry.ids)
            elif path in changed:  # re-parsed: entries of documents it no longer yields (the rest were replaced)
                stale.extend(i for i, of in zip(entry.ids, entry.doc_ids) if of not in written)
        report.entries_deleted = writer.delete(stale)
        report.files_seen = len(seen)
        report.files_added, report.files_updated = len(added & parsed), len(changed & parsed)
        if report.documents_written or report.entries_deleted:
            writer.commit()
    finally:
        writer.close()  # releases the lock; anything not committed (a failure) is dropped
    snap = collection.snapshot()
    report.documents, report.generation = snap.live_docs, snap.generation
    report.seconds = round(time.perf_counter() - started, 3)
    return report
