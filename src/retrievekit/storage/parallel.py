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
import shutil
import traceback
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retrievekit.core.document import Document
from retrievekit.core.errors import RetrievekitError
from retrievekit.storage.manifest import SegmentEntry
from retrievekit.storage.segment import SegmentReader, SegmentWriter, index_builders, merge_segments

if TYPE_CHECKING:
    from retrievekit.storage.writer import CollectionWriter

logger = logging.getLogger(__name__)


def _worker(folder: str, config: dict[str, Any], inbox: Any, senders: list[Any], outbox: Any) -> None:
    # Close every inherited sending end, ours included: if the main process dies, even halfway through a
    # message, our receive then fails with EOF instead of waiting forever.
    for conn in senders:
        conn.close()
    parent = os.getppid()
    try:
        writer = SegmentWriter(Path(folder), index_builders(config))  # config: the manifest's, picklable
        while True:
            if not inbox.poll(1.0):
                if os.getppid() != parent:  # the main process died: nothing of this will ever be committed
                    writer.abort()
                    return
                continue
            try:
                batch = inbox.recv()
            except EOFError:
                writer.abort()
                return
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


def _send(conn: Any, item: Any, process: Any) -> None:
    try:
        conn.send(item)
    except (BrokenPipeError, ConnectionResetError, EOFError):
        raise RetrievekitError(f"indexing worker {process.pid} died (exit code {process.exitcode})") from None


def index_in_parallel(
    writer: CollectionWriter, documents: Iterable[Document | Mapping[str, Any]], workers: int, batch_size: int
) -> int:
    """Add ``documents`` through ``workers`` processes; returns how many were added (not yet committed)."""
    if workers < 2:
        return sum(writer._store_batch(batch) for batch in _batches(documents, batch_size))
    methods = mp.get_all_start_methods()
    ctx: Any = mp.get_context("fork" if "fork" in methods else "spawn")
    names = [writer._new_segment_name() for _ in range(workers)]
    folders = [str(writer.folder / name) for name in names]
    pipes = [ctx.Pipe(duplex=False) for _ in names]  # (receiving end, sending end)
    senders = [send for _, send in pipes]
    outbox = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(folder, writer._manifest.config, recv, senders, outbox),
                    daemon=True)
        for folder, (recv, _) in zip(folders, pipes)
    ]
    for p in procs:
        p.start()
    for recv, _ in pipes:
        recv.close()
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
            _send(senders[w], docs, procs[w])
            total += len(docs)
        for send, p in zip(senders, procs):
            _send(send, None, p)
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
    finally:
        for send in senders:
            send.close()
    _merge_worker_segments(writer, names, batch_size)
    logger.info("indexed %d documents with %d worker processes", total, workers)
    return total


def _merge_worker_segments(writer: CollectionWriter, names: list[str], batch_size: int) -> None:
    """One segment in input order from the workers' round-robin batches, so a parallel ingest leaves the same
    collection as a serial one (and searches one segment, not one per worker)."""
    workers = len(names)
    sources: list[tuple[SegmentReader, np.ndarray | None]] = []
    positions = []
    try:
        for w, name in enumerate(names):
            reader = SegmentReader(writer.folder / name)
            deleted = np.zeros(reader.n_docs, bool)
            deleted[list(writer._new_deleted.pop(name, ()))] = True
            sources.append((reader, deleted))
            j = np.arange(reader.n_docs)
            positions.append(((j // batch_size) * workers + w) * batch_size + j % batch_size)
        merged = writer._new_segment_name()
        info, new_docs = merge_segments(writer.folder / merged, sources, writer._manifest.config, positions)
    finally:
        for reader, _ in sources:
            reader.close()
    index = {name: w for w, name in enumerate(names)}
    for doc_id, (name, local) in writer._pending.items():
        source = index.get(name)
        if source is not None:
            writer._pending[doc_id] = (merged, int(new_docs[source][local]))
    writer._finished.append(SegmentEntry(name=merged, docs=info["docs"]))
    for name in names:
        shutil.rmtree(writer.folder / name, ignore_errors=True)
