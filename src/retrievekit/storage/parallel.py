"""Parallel indexing: worker processes each analyse and index a share of the input into a segment of their own.

The main process reads and validates documents, keeps the id bookkeeping (updates, deletions) and deals batches
round-robin to the workers; analysis and posting construction — most of the cost — run in parallel. The workers'
segments are ordinary uncommitted segments: the writer publishes them at commit, or they are removed as garbage
if anything fails.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import traceback
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..analysis import get_analyzer
from ..document import Document
from ..errors import RetrievekitError
from .manifest import SegmentEntry
from .segment import SegmentWriter

if TYPE_CHECKING:
    from .writer import CollectionWriter

logger = logging.getLogger(__name__)


def _worker(folder: str, analyzer_config: dict[str, Any], fields: list[str], inbox: Any, outbox: Any) -> None:
    parent = os.getppid()
    try:
        writer = SegmentWriter(Path(folder), get_analyzer(analyzer_config), fields)
        while True:
            try:
                batch = inbox.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent:  # the main process died: nothing of this will ever be committed
                    writer.abort()
                    return
                continue
            if batch is None:
                break
            for doc in batch:
                writer.add(doc)
        outbox.put((folder, writer.finish(), None))
    except BaseException:  # report, do not hang the main process
        outbox.put((folder, None, traceback.format_exc()))


def _batches(documents: Iterable[Document | Mapping[str, Any]], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for doc in documents:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _put(inbox: Any, item: Any, process: Any) -> None:
    while True:
        try:
            inbox.put(item, timeout=1.0)
            return
        except queue.Full:
            if not process.is_alive():
                raise RetrievekitError(f"indexing worker {process.pid} died (exit code {process.exitcode})") from None


def index_in_parallel(
    writer: CollectionWriter, documents: Iterable[Document | Mapping[str, Any]], workers: int, batch_size: int
) -> int:
    """Add ``documents`` through ``workers`` processes; returns how many were added (not yet committed)."""
    if workers < 2:
        return sum(writer.add(batch) for batch in _batches(documents, batch_size))
    methods = mp.get_all_start_methods()
    ctx: Any = mp.get_context("fork" if "fork" in methods else "spawn")
    names = [writer._new_segment_name() for _ in range(workers)]
    folders = [str(writer.folder / name) for name in names]
    inboxes = [ctx.Queue(maxsize=4) for _ in names]
    outbox = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(folder, writer._analyzer.config(), writer._fields, inbox, outbox),
                    daemon=True)
        for folder, inbox in zip(folders, inboxes)
    ]
    for p in procs:
        p.start()
    counts = [0] * workers
    total = 0
    try:
        for i, raw in enumerate(_batches(documents, batch_size)):
            docs = writer._prepare(raw)
            w = i % workers
            for doc in docs:
                writer._remove(doc.id)
                writer._pending[doc.id] = (names[w], counts[w])
                counts[w] += 1
            _put(inboxes[w], docs, procs[w])
            total += len(docs)
        for inbox, p in zip(inboxes, procs):
            _put(inbox, None, p)
        results: dict[str, dict[str, Any]] = {}
        while len(results) < workers:
            try:
                folder, info, error = outbox.get(timeout=1.0)
            except queue.Empty:
                dead = [p for p in procs if not p.is_alive() and p.exitcode != 0]
                if dead:
                    pid, code = dead[0].pid, dead[0].exitcode
                    raise RetrievekitError(f"indexing worker {pid} died (exit code {code})") from None
                continue
            if error is not None:
                raise RetrievekitError(f"an indexing worker failed:\n{error}")
            results[folder] = info
        for p in procs:
            p.join()
    except BaseException:
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join()
        raise
    for name, folder in zip(names, folders):
        writer._finished.append(SegmentEntry(name=name, docs=results[folder]["docs"]))
    logger.info("indexed %d documents with %d worker processes", total, workers)
    return total
