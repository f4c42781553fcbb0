"""Parallel indexing: worker processes each analyse and index a share of the input into a segment of their own.

The main process reads and validates documents, keeps the id bookkeeping (updates, deletions) and deals batches
round-robin to the workers; analysis and posting construction — most of the cost — run in parallel. The workers'
segments are ordinary uncommitted segments: the writer publishes them at commit, or they are removed as garbage
if anything fails.

Failure handling: each worker has a pipe of its own for batches and one for its result, and holds no other pipe
end (a forked worker inherits all of them), so a worker that dies — killed, or stopped by an error — closes its
inbox: the main process's next send fails at once instead of blocking forever, and the worker's error message (or
its exit status) is reported. Every worker is killed before the error propagates, so the writer can remove their
folders and release the lock.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import signal
from collections.abc import Iterable, Iterator, Mapping
from multiprocessing.connection import wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retrievekit.core.document import Document
from retrievekit.core.errors import InputFormatError, RetrievekitError
from retrievekit.storage.manifest import SegmentEntry
from retrievekit.storage.segment import SegmentReader, SegmentWriter, index_builders, merge_segments

if TYPE_CHECKING:
    from retrievekit.storage.writer import CollectionWriter

logger = logging.getLogger(__name__)

_MAX_MESSAGE = 2000  # a worker's error message fits the result pipe's buffer: sending it never blocks


def _worker(folder: str, config: dict[str, Any], inbox: Any, results: Any, inherited: list[Any]) -> None:
    # Close every inherited pipe end but our two: a sending end kept here would hide the main process's death
    # (no EOF), a receiving end of another worker would keep that worker's inbox open after it died.
    for conn in inherited:
        if conn is not inbox and conn is not results:
            conn.close()
    parent = os.getppid()
    writer: SegmentWriter | None = None
    doc_id: str | None = None
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
                doc_id = doc.id
                writer.add(doc)
            doc_id = None
        results.send(("done", writer.finish()))
    except BaseException as exc:  # report, do not hang the main process
        inbox.close()  # the main process's next send to us fails now instead of filling the pipe
        if writer is not None:  # its folder stays for the main process: it measures, then removes it
            writer.abort(remove=False)
        code = exc.errno if isinstance(exc, OSError) else None
        message = f"{type(exc).__name__}: {exc}"[:_MAX_MESSAGE]
        try:
            results.send(("error", (message, doc_id, code, isinstance(exc, ValueError | TypeError))))
        except OSError:
            pass


def _batches(documents: Iterable[Document | Mapping[str, Any]], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for doc in documents:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Workers:
    """The worker processes of one parallel ingest and their pipes, seen from the main process."""

    def __init__(self, ctx: Any, folders: list[str], config: dict[str, Any]) -> None:
        inboxes = [ctx.Pipe(duplex=False) for _ in folders]  # (receiving end, sending end)
        results = [ctx.Pipe(duplex=False) for _ in folders]
        inherited = [c for pair in inboxes + results for c in pair] if ctx.get_start_method() == "fork" else []
        self.procs = [
            ctx.Process(target=_worker, args=(folder, config, inbox[0], result[1], inherited), daemon=True)
            for folder, inbox, result in zip(folders, inboxes, results)
        ]
        self.senders = [send for _, send in inboxes]
        self.receivers = [recv for recv, _ in results]
        try:
            for p in self.procs:
                p.start()
        except BaseException:
            for p in self.procs:
                if p.pid is not None:
                    p.kill()
                    p.join()
            raise
        finally:
            for recv, _ in inboxes:
                recv.close()
            for _, send in results:
                send.close()

    def send(self, w: int, item: Any) -> None:
        try:
            self.senders[w].send(item)
        except OSError:  # EPIPE, ECONNRESET: the worker is gone
            raise self._failure(w, wait_s=5.0) from None

    def check(self) -> None:
        """Raise a worker's reported error (or death) now, without waiting for the end of the input."""
        for w, conn in enumerate(self.receivers):
            if conn.poll():
                raise self._failure(w, wait_s=0.0)

    def collect(self) -> list[dict[str, Any]]:
        """Each worker's segment info once all have finished; the first failure raises."""
        infos: dict[int, dict[str, Any]] = {}
        while len(infos) < len(self.procs):
            pending = {id(c): w for w, c in enumerate(self.receivers) if w not in infos}
            for ready in wait([self.receivers[w] for w in pending.values()], timeout=5.0):
                w = pending[id(ready)]
                try:
                    kind, payload = self.receivers[w].recv()
                except (EOFError, OSError):
                    raise self._failure(w, wait_s=5.0) from None
                if kind != "done":
                    raise self._error(w, payload)
                infos[w] = payload
        for p in self.procs:
            p.join()
        return [infos[w] for w in range(len(self.procs))]

    def _failure(self, w: int, wait_s: float) -> BaseException:
        conn = self.receivers[w]
        try:
            if conn.poll(wait_s):
                kind, payload = conn.recv()
                if kind == "error":
                    return self._error(w, payload)
        except (EOFError, OSError):
            pass
        p = self.procs[w]
        p.join(wait_s)
        code = p.exitcode
        if code is not None and code < 0:
            try:
                how = f"was killed by signal {-code} ({signal.Signals(-code).name})"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}" if code is not None else "stopped answering"
        return RetrievekitError(f"indexing worker {w + 1} (pid {p.pid}) {how} before finishing its share; nothing "
                                "of this ingest was committed")

    def _error(self, w: int, payload: tuple[str, str | None, int | None, bool]) -> BaseException:
        message, doc_id, code, bad_value = payload
        if code is not None:  # an OSError: the writer turns ENOSPC into its disk-full error
            return OSError(code, f"indexing worker {w + 1}: {message}")
        if doc_id is not None:
            text = f"document {doc_id!r} could not be indexed ({message})"
            return InputFormatError(text) if bad_value else RetrievekitError(text)
        return RetrievekitError(f"indexing worker {w + 1} failed: {message}")

    def stop(self) -> None:
        """Kill the workers still running (their folders are garbage) and close the pipes."""
        for p in self.procs:
            if p.is_alive():
                p.kill()
        for p in self.procs:
            p.join()
        for conn in self.senders + self.receivers:
            conn.close()


def index_in_parallel(
    writer: CollectionWriter, documents: Iterable[Document | Mapping[str, Any]], workers: int, batch_size: int
) -> int:
    """Add ``documents`` through ``workers`` processes; returns how many were added (not yet committed)."""
    if workers < 2:
        return sum(writer.add_as_is(batch) for batch in _batches(documents, batch_size))
    methods = mp.get_all_start_methods()
    ctx: Any = mp.get_context("fork" if "fork" in methods else "spawn")
    names = [writer._new_segment_name() for _ in range(workers)]
    pool = _Workers(ctx, [str(writer.folder / name) for name in names], writer._manifest.config)
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
            pool.check()
            pool.send(w, docs)
            total += len(docs)
        for w in range(workers):
            pool.send(w, None)
        pool.collect()
    finally:
        pool.stop()
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
