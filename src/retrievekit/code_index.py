"""Indexing a code repository into a collection, incrementally: ``ingest_code(collection, root)`` (also
``Collection.ingest_code`` and ``retrievekit index --code``).

Documents are the chunks of ``retrievekit.ingest.code`` (ids ``PATH#QUALNAME``, fields and metadata described
there). The collection is its own state: every code document carries its file's ``path``, ``file_hash`` and
``chunker``, read back from the metadata columns (not the texts) at the start of a run. Then:

* a file whose path is indexed with the same content hash and chunker settings is **unchanged**: not parsed, not
  written;
* a **new or changed** file is parsed again and all its chunks are written (replacing by id); its chunks that are
  gone are deleted. Per chunk, the report counts ``added`` (new id), ``updated`` (text, title or metadata other
  than ``file_hash`` changed: an edit, or lines shifted) and ``unchanged`` (rewritten only to carry the new hash);
* a path indexed before and not found now (deleted, ignored, or now skipped) loses all its chunks;
* a **rename** (a new path whose content hash and language equal those of a path that is gone) reuses the old
  documents under the new path without parsing; their texts do not hold the path, so a dense index finds their
  vectors in the embedding cache instead of running the model.

Everything happens under the collection's writer lock and lands in one commit (a failure commits nothing).
``prefix`` puts a repository under a folder of its own (``prefix="lib/"`` -> ids ``lib/PATH#...``): a run only
deletes documents under its prefix, so several repositories can share a collection. Documents without a
``file_hash`` (added by other means) are never touched.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrievekit.chunking.code import DEFAULT_MAX_CHARS, DEFAULT_MAX_LINES
from retrievekit.chunking.code_languages import language_of
from retrievekit.core.document import Document
from retrievekit.core.errors import CollectionError
from retrievekit.core.progress import progress_bar
from retrievekit.ingest.code import (
    DEFAULT_MAX_BYTES,
    VENDORED_DIRS,
    CodeFile,
    WalkSummary,
    check_root,
    chunker_spec,
    file_documents,
    walk_code,
)

if TYPE_CHECKING:
    from retrievekit.collection import Collection
    from retrievekit.storage.snapshot import Snapshot

logger = logging.getLogger(__name__)

# What a code collection is created with (``Collection.create_code``, ``retrievekit index --code``): the code
# analyzer — identifiers split on camelCase/snake_case/digits with the whole identifier kept, operators dropped,
# language keywords as stop words (analysis/standard.py).
CODE_ANALYZER = "code"
CODE_ANALYZERS = frozenset({"code", "identifier"})  # code-aware presets: no hint when a collection uses one
# ... and multi-field BM25 over the qualified name (title), the docstring and the chunk's text, each field with its
# own statistics. Chosen on tuning splits only (benchmarks/run_field_weights.py: the best mean tuning MRR@10 over
# the stdlib CodeSearchNet-style set and CoSQA of 240 weightings); on their test splits, against BM25 on title + text
# joined: MRR@10 0.3874 vs 0.3377 on the stdlib set (p < 1e-6), 0.3277 vs 0.3281 on CoSQA (no difference).
CODE_FIELD_WEIGHTS: dict[str, float] = {"title": 1.0, "docstring": 1.0, "text": 1.0}


@dataclass
class CodeIngestReport:
    """What one ``ingest_code`` run did. Files: ``seen`` (readable source files found) = ``added`` + ``updated``
    + ``unchanged`` + ``renamed``; ``deleted`` (indexed before, gone now); ``skipped`` by reason (vendored folders
    count once each). Symbols (= chunks, windows included): ``symbols`` now indexed for the files seen, and of the
    chunks written this run ``added``, ``updated``, ``unchanged`` (files re-read but chunk equal), ``moved`` (by
    renames), plus ``deleted``."""

    root: str
    files_seen: int = 0
    files_added: int = 0
    files_updated: int = 0
    files_unchanged: int = 0
    files_renamed: int = 0
    files_deleted: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    symbols: int = 0
    symbols_added: int = 0
    symbols_updated: int = 0
    symbols_unchanged: int = 0
    symbols_moved: int = 0
    symbols_deleted: int = 0
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    documents: int = 0  # live documents in the collection after the commit
    generation: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Indexed:
    file_hash: str | None  # None when the file's chunks disagree (a run was interrupted oddly): re-index it
    chunker: str | None
    ids: list[str] = field(default_factory=list)


def indexed_files(snapshot: Snapshot, prefix: str = "") -> dict[str, _Indexed]:
    """Path -> (content hash, chunker, document ids) of the code documents under ``prefix``: one pass over the raw
    metadata lines of every segment (no document text, no column types)."""
    out: dict[str, _Indexed] = {}
    for seg, live in zip(snapshot.segments, snapshot.live):
        ids = seg.ids
        for i, line in enumerate(seg.metadata_lines()):
            if b'"file_hash"' not in line or (live is not None and not live[i]):
                continue
            path, digest, chunker = _code_fields(line)
            if digest is None or not isinstance(path, str) or not path.startswith(prefix):
                continue
            entry = out.get(path)
            if entry is None:
                entry = out[path] = _Indexed(digest, chunker)
            elif entry.file_hash != digest or entry.chunker != chunker:
                entry.file_hash = entry.chunker = None
            entry.ids.append(ids[i])
    return out


# The metadata line of a code document as ``file_documents`` writes it (json.dumps' default separators, "path"
# first, "file_hash" and "chunker" last): read by two anchored patterns; any other line is parsed as JSON.
_PATH_HEAD = re.compile(rb'\{"path": "([^"\\]*)"')
_HASH_TAIL = re.compile(rb'"file_hash": "([0-9a-f]{32})", "chunker": "([^"\\]*)"\}\s*\Z')


def _code_fields(line: bytes) -> tuple[Any, Any, Any]:
    """(path, file_hash, chunker) of one metadata line."""
    head = _PATH_HEAD.match(line)
    tail = _HASH_TAIL.match(line, max(0, line.rfind(b'"file_hash": "')))
    if head is not None and tail is not None:
        return head.group(1).decode("utf-8"), tail.group(1).decode("ascii"), tail.group(2).decode("utf-8")
    meta = json.loads(line)
    return meta.get("path"), meta.get("file_hash"), meta.get("chunker")


def ingest_code(
    collection: Collection,
    root: str | Path,
    *,
    prefix: str = "",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_lines: int = DEFAULT_MAX_LINES,
    max_chars: int = DEFAULT_MAX_CHARS,
    use_git: bool | None = None,
    vendored: frozenset[str] | set[str] = VENDORED_DIRS,
    workers: int = 1,
    batch_size: int = 1000,
    progress: bool = False,
    lock_timeout: float = 0.0,
) -> CodeIngestReport:
    """Index (or re-index) the source files under ``root`` into ``collection`` by their symbols and commit once;
    only what changed since the last run is parsed and written (see the module docstring). ``workers`` > 1
    analyses documents for BM25 in that many processes. Returns the report of files and symbols."""
    started = time.perf_counter()
    top = check_root(root)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if collection.settings.passages is not None:
        raise CollectionError(f"{collection.path} is a passage collection ({collection.settings.passages.chunker}): "
                              "code is stored as one document per symbol; index it into a collection created "
                              "without passages")
    analyzer = collection.settings.bm25.analyzer
    name = analyzer.get("name") if isinstance(analyzer, dict) else analyzer
    if name not in CODE_ANALYZERS and len(collection) == 0:
        logger.warning("%s uses the %r analyzer, which does not split identifiers; code searches better with the "
                       "code analyzer: create the collection with Collection.create_code(path) (or "
                       "analyzer=%r)", collection.path, name, CODE_ANALYZER)
    report = CodeIngestReport(root=str(top))
    summary = WalkSummary()
    spec = chunker_spec(max_lines, max_chars)
    writer = collection.writer(lock_timeout=lock_timeout, progress=progress)
    try:
        snapshot = collection.snapshot()  # read under the lock: no other commit can land until ours
        indexed = indexed_files(snapshot, prefix)
        changed: list[CodeFile] = []
        seen: set[str] = set()
        for file in walk_code(top, max_bytes=max_bytes, use_git=use_git, vendored=vendored, summary=summary):
            path = prefix + file.path
            seen.add(path)
            old = indexed.get(path)
            if old is not None and old.file_hash == file.file_hash and old.chunker == spec:
                report.files_unchanged += 1
                report.symbols += len(old.ids)
            else:
                changed.append(file)
        report.files_seen = summary.files
        gone = {path: entry for path, entry in indexed.items() if path not in seen}
        renamed = _renames(changed, gone, prefix, spec)

        stale: list[str] = []
        for path, entry in gone.items():
            stale.extend(entry.ids)
            if path not in renamed.values():
                report.files_deleted += 1
                report.symbols_deleted += len(entry.ids)

        def documents() -> Iterator[Document]:
            bar = progress_bar(progress, len(changed), f"indexing {top.name or top}", unit="file")
            try:
                for file in changed:
                    path = prefix + file.path
                    if path in renamed:
                        docs = _moved(snapshot, gone[renamed[path]], renamed[path], path)
                        report.files_renamed += 1
                        report.symbols_moved += len(docs)
                    else:
                        docs = _parsed(file, path, indexed.get(path), snapshot, report, summary, stale,
                                       max_lines, max_chars)
                    report.symbols += len(docs)
                    bar.update(1)
                    yield from docs
            finally:
                bar.close()

        writer.add_parallel(documents(), workers, batch_size)
        writer.delete(stale)  # after the adds: parsing the changed files adds their vanished chunks to ``stale``
        if changed or stale:  # a run that finds nothing to do commits nothing (the generation stays)
            writer.commit()
    finally:
        writer.close()  # releases the lock; anything not committed (a failure) is dropped
    report.skipped = dict(summary.skipped)
    report.skipped_examples = summary.examples
    report.warnings = summary.warnings
    snap = collection.snapshot()
    report.documents, report.generation = snap.live_docs, snap.generation
    report.seconds = time.perf_counter() - started
    return report


def _renames(changed: list[CodeFile], gone: dict[str, _Indexed], prefix: str, spec: str) -> dict[str, str]:
    """New path -> old path for new files whose content and language equal those of a file that is gone."""
    by_hash: dict[str, list[str]] = {}
    for path, entry in gone.items():
        if entry.file_hash is not None and entry.chunker == spec:
            by_hash.setdefault(entry.file_hash, []).append(path)
    out: dict[str, str] = {}
    for file in changed:
        candidates = by_hash.get(file.file_hash)
        if not candidates:
            continue
        language = language_of(file.path, file.text)
        for old in candidates:
            if language_of(old[len(prefix):], file.text) == language:
                out[prefix + file.path] = old
                candidates.remove(old)
                break
    return out


def _moved(snapshot: Snapshot, entry: _Indexed, old_path: str, new_path: str) -> list[Document]:
    """The documents of ``old_path`` under ``new_path``: ids and ``path`` changed, everything else kept."""
    docs = []
    for doc in (snapshot.get(i) for i in entry.ids):
        if doc is not None:
            docs.append(Document(id=new_path + doc.id[len(old_path):], title=doc.title, text=doc.text,
                                 metadata={**doc.metadata, "path": new_path}))
    return docs


def _parsed(file: CodeFile, path: str, old: _Indexed | None, snapshot: Snapshot, report: CodeIngestReport,
            summary: WalkSummary, stale: list[str], max_lines: int, max_chars: int) -> list[Document]:
    """The documents of a new or changed file, counted against its previous chunks (whose leftovers go to
    ``stale``)."""
    if path != file.path:
        file = CodeFile(path, file.full_path, file.text, file.file_hash, file.encoding, file.size)
    docs, result = file_documents(file, max_lines=max_lines, max_chars=max_chars)
    if result.warning:
        summary.warn(result.warning)
    if old is None:
        report.files_added += 1
        report.symbols_added += len(docs)
        return docs
    report.files_updated += 1
    new_ids = {doc.id for doc in docs}
    gone_ids = [i for i in old.ids if i not in new_ids]
    stale.extend(gone_ids)
    report.symbols_deleted += len(gone_ids)
    previous = {i: snapshot.get(i) for i in old.ids if i in new_ids}
    counts: Counter[str] = Counter()
    for doc in docs:
        before = previous.get(doc.id)
        if before is None:
            counts["added"] += 1
        elif _same(before, doc):
            counts["unchanged"] += 1
        else:
            counts["updated"] += 1
    report.symbols_added += counts["added"]
    report.symbols_updated += counts["updated"]
    report.symbols_unchanged += counts["unchanged"]
    return docs


def _same(a: Document, b: Document) -> bool:
    """Equal but for the file hash."""
    strip = {"file_hash": None}
    return a.title == b.title and a.text == b.text and {**a.metadata, **strip} == {**b.metadata, **strip}
