"""Exact (brute-force) maximum-inner-product search over per-segment float32 matrices.

Why it is fast without a C kernel:

* Scores come from BLAS ``sgemm`` computed as ``chunk @ queries.T`` (documents × queries), which OpenBLAS runs
  faster than the queries × documents shape for small batches. One query goes through ``np.vecdot`` (``np.einsum``
  before numpy 2) instead: numpy's SIMD dot loop streams the matrix at memory speed, where OpenBLAS ``sgemv`` is
  about half as fast.
* Documents are scanned in chunks whose score block fits a fixed memory budget, so a million-row segment never
  materialises a queries × documents matrix; very large query batches are split too.
* Top-k is kept per query with a running threshold (the current k-th best score): after the first chunks almost
  every score fails one vectorised ``>`` comparison, and only the few survivors are merged. Chunks grow
  geometrically from a small first one so the threshold is established cheaply; a query whose chunk still has
  many survivors is cut to its k best by ``np.partition`` before the merge. Nothing is ever fully sorted.
* ``threads`` workers pull chunks from a shared queue (numpy releases the GIL in BLAS, vecdot and comparisons),
  with BLAS itself held to one thread so that the two levels of parallelism do not oversubscribe the cores.
  The limit applies to every BLAS library loaded in the process (threadpoolctl cannot tell whose it is) while a
  batched search runs; it is reference-counted, so concurrent searches restore it only when the last one ends.

Ties are broken by the lower global document number: each worker sees its chunks in increasing document order,
so a later document only enters when its score is strictly above the threshold, and every merge sorts by
(score descending, document ascending).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrievekit.core.errors import RetrievekitError

__all__ = ["DenseSearchError", "exact_search"]

logger = logging.getLogger(__name__)

# Score block of one worker: small enough to stay in cache between the sgemm that writes it and the comparison
# that reads it (all workers together stay far below the ~64 MB a 1000 x 1M problem would otherwise need per step).
WORKER_SCORE_BYTES = 4 << 20
MAX_CHUNK_ROWS = 65536  # one query: 256 KB of scores, stays in L2 between scoring and comparing
MIN_CHUNK_ROWS = 256
MAX_QUERY_BLOCK = 1024
RAMP_START_SCORES = 1 << 14  # scores in the first chunk of each worker
# A block with fewer allowed rows than this share is scored on its gathered allowed rows only.
GATHER_FRACTION = 0.25
GATHER_BYTES = 8 << 20
# Below this many multiply-adds a call is not worth starting threads for.
MIN_PARALLEL_WORK = 1 << 24


class DenseSearchError(RetrievekitError, ValueError):
    """Bad input to a dense search: wrong shape, dtype, k, mask or thread count; the message says which."""


def exact_search(
    queries: np.ndarray,
    blocks: Sequence[np.ndarray],
    k: int,
    *,
    allowed: Sequence[np.ndarray | None] | None = None,
    threads: int = 1,
    chunk_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` documents of highest inner product with each query, over all ``blocks``.

    ``queries``: float (m, d), converted to float32, must be finite. ``blocks``: one float32 (n_i, d) matrix per
    segment (np.memmap and read-only views are fine, nothing is copied); document numbers are global: the rows of
    block i are numbered from ``n_0 + ... + n_{i-1}``. ``allowed``: per block None (every row may be returned) or a
    bool/uint8 mask of shape (n_i,), nonzero = may be returned (live and matching the filter). ``threads``: worker
    threads; BLAS is held to one thread during the call. ``chunk_rows``: rows scored per step (default: from
    ``WORKER_SCORE_BYTES``; each thread holds about chunk_rows × min(m, MAX_QUERY_BLOCK) × 5 bytes of scores and
    flags).

    Returns ``(docs, scores)``: int64 and float32 arrays of shape (m, k), best first, ties by lower document
    number; past the last hit (fewer than k allowed documents) ``docs`` is -1 and ``scores`` is -inf. Scores of
    non-finite document vectors are undefined.
    """
    q = _check_queries(queries)
    mats = _check_blocks(blocks, q.shape[1])
    masks = _check_allowed(allowed, mats)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DenseSearchError(f"k must be a positive integer, got {k!r}")
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise DenseSearchError(f"threads must be a positive integer, got {threads!r}")
    if chunk_rows is not None and (not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1):
        raise DenseSearchError(f"chunk_rows must be a positive integer or None, got {chunk_rows!r}")
    k, threads = int(k), int(threads)
    m, d = q.shape
    out_docs = np.full((m, k), -1, np.int64)
    out_scores = np.full((m, k), -np.inf, np.float32)
    total_rows = sum(len(x) for x in mats)
    if m == 0 or total_rows == 0:
        return out_docs, out_scores
    if total_rows * d * min(m, MAX_QUERY_BLOCK) < MIN_PARALLEL_WORK:
        threads = 1
    qb = min(m, MAX_QUERY_BLOCK)
    if chunk_rows is None:
        rows = WORKER_SCORE_BYTES // (qb * 4)
        rows = max(MIN_CHUNK_ROWS, min(MAX_CHUNK_ROWS, rows))
    else:
        rows = int(chunk_rows)
    kk = min(k, total_rows)  # no working arrays wider than the collection, whatever k was asked for
    tasks = list(_plan(mats, masks, rows, kk, qb, threads, d))
    with _single_threaded_blas() if m > 1 else contextlib.nullcontext():  # one query never calls BLAS
        for lo in range(0, m, qb):
            block = q[lo:lo + qb]
            s, dd = _search_block(block, tasks, kk, rows, threads, d)
            out_scores[lo:lo + len(block), :kk] = s
            out_docs[lo:lo + len(block), :kk] = dd
    return out_docs, out_scores


# ---------------------------------------------------------------------------------------------------- validation


def _check_queries(queries: np.ndarray) -> np.ndarray:
    q = np.asarray(queries)
    if q.ndim != 2:
        raise DenseSearchError(f"queries must be a 2-D (n_queries, dim) array, got shape {q.shape}")
    if not np.issubdtype(q.dtype, np.floating):
        raise DenseSearchError(f"queries must be floating point, got dtype {q.dtype}")
    q = np.ascontiguousarray(q, dtype=np.float32)
    if not np.isfinite(q).all():
        raise DenseSearchError("queries contain NaN or infinite values")
    return q


def _check_blocks(blocks: Sequence[np.ndarray], dim: int) -> list[np.ndarray]:
    mats = []
    for i, b in enumerate(blocks):
        a = np.asarray(b)  # a memmap becomes a plain view: no copy, cheaper slicing
        if a.ndim != 2 or a.shape[1] != dim:
            raise DenseSearchError(f"block {i} must have shape (n, {dim}) like the queries, got {a.shape}")
        if a.dtype != np.float32:
            raise DenseSearchError(f"block {i} must be float32 (it is not converted: it may be large), "
                                   f"got {a.dtype}")
        mats.append(a)
    return mats


def _check_allowed(allowed: Sequence[np.ndarray | None] | None, mats: list[np.ndarray]) -> list[np.ndarray | None]:
    if allowed is None:
        return [None] * len(mats)
    if len(allowed) != len(mats):
        raise DenseSearchError(f"allowed has {len(allowed)} entries for {len(mats)} blocks")
    out: list[np.ndarray | None] = []
    for i, (mask, mat) in enumerate(zip(allowed, mats)):
        if mask is None:
            out.append(None)
            continue
        a = np.asarray(mask)
        if a.shape != (len(mat),):
            raise DenseSearchError(f"allowed[{i}] must have shape ({len(mat)},) like block {i}, got {a.shape}")
        if a.dtype == np.bool_:
            out.append(a)
        elif a.dtype == np.uint8:
            out.append(a != 0)
        else:
            raise DenseSearchError(f"allowed[{i}] must be a bool or uint8 mask, got dtype {a.dtype}")
    return out


# ---------------------------------------------------------------------------------------------------- planning


@dataclass(frozen=True, eq=False)
class _Task:
    """Rows ``start:stop`` of ``matrix`` (or, when ``rows`` is set, of the gathered rows ``rows[start:stop]``)."""

    matrix: np.ndarray
    start: int
    stop: int
    base: int  # global number of the matrix's row 0
    rows: np.ndarray | None = None
    blocked: np.ndarray | None = None  # True = not allowed, for matrix rows start:stop; None: all allowed


def _chunk_sizes(rows: int, k: int, m: int, threads: int) -> Iterator[int]:
    """Small first chunks, doubling up to ``rows``: cheap thresholds before the big chunks arrive."""
    size = min(rows, max(MIN_CHUNK_ROWS, 8 * k, RAMP_START_SCORES // m))
    while size < rows:
        for _ in range(threads):
            yield size
        size *= 2
    while True:
        yield rows


def _plan(mats: list[np.ndarray], masks: list[np.ndarray | None], rows: int, k: int, m: int, threads: int,
          dim: int) -> Iterator[_Task]:
    sizes = _chunk_sizes(rows, k, m, threads)
    gather_rows = max(1, min(rows, GATHER_BYTES // (4 * dim)))
    base = 0
    for mat, mask in zip(mats, masks):
        n = len(mat)
        if mask is not None:
            n_allowed = int(np.count_nonzero(mask))
            if n_allowed == n:
                mask = None
            elif n_allowed < GATHER_FRACTION * n:
                # Few allowed rows: gathering them reads less memory than scoring the whole block.
                picked = np.flatnonzero(mask)
                start = 0
                while start < n_allowed:
                    stop = min(n_allowed, start + min(next(sizes), gather_rows))
                    yield _Task(mat, start, stop, base, rows=picked)
                    start = stop
                base += n
                continue
        blocked = None if mask is None else ~mask
        start = 0
        while start < n:
            stop = min(n, start + next(sizes))
            part = None if blocked is None or not blocked[start:stop].any() else blocked[start:stop]
            yield _Task(mat, start, stop, base, blocked=part)
            start = stop
        base += n


# ---------------------------------------------------------------------------------------------------- scanning


class _Scanner:
    """One worker's running top-k of a query block, its pending candidates and its reusable buffers.

    Candidates that beat the (possibly stale) threshold are collected and merged into the top-k only once there
    are about as many of them as top-k entries, so the cost of a merge is paid per candidate, not per chunk.
    """

    def __init__(self, queries: np.ndarray, k: int, rows: int, dim: int) -> None:
        self.queries = queries
        self.queries_t = queries.T  # F-ordered view: BLAS reads it transposed, no copy
        m = len(queries)
        self.k = k
        self.top_scores = np.full((m, k), -np.inf, np.float32)
        self.top_docs = np.full((m, k), -1, np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_count = 0
        self._flush_at = m * k
        self._scores = np.empty(rows * m, np.float32)
        self._flags = np.empty(rows * m, np.bool_)
        self._gathered: np.ndarray | None = None
        self._dim = dim

    def scan(self, task: _Task) -> None:
        m, k = len(self.queries), self.k
        c = task.stop - task.start
        if task.rows is None:
            x = task.matrix[task.start:task.stop]
        else:
            if self._gathered is None or len(self._gathered) < c:
                self._gathered = np.empty((c, self._dim), np.float32)
            x = np.take(task.matrix, task.rows[task.start:task.stop], axis=0, out=self._gathered[:c], mode="clip")
        scores = self._scores[:c * m].reshape(c, m)  # documents × queries
        if m == 1:
            _matvec(x, self.queries[0], scores.reshape(c))
        else:
            np.matmul(x, self.queries_t, out=scores)
        if task.blocked is not None:
            np.copyto(scores, -np.inf, where=task.blocked[:, None])
        flags = self._flags[:c * m].reshape(c, m)
        np.greater(scores, self.top_scores[:, k - 1], out=flags)
        # 1-D nonzero on the flat flags is ~15x faster than 2-D nonzero
        hits = np.flatnonzero(flags)
        if hits.size == 0:
            return
        cut = hits.size > 4 * m * k + 4096 and c > k
        if cut:
            self._cut_to_k(scores, flags)
            hits = np.flatnonzero(flags)
        if m == 1:
            r, j = hits, np.zeros(hits.size, np.intp)
        else:
            r, j = np.divmod(hits, m)
        docs = r + (task.base + task.start) if task.rows is None else task.rows[task.start + r] + task.base
        self._pending.append((j, scores.reshape(-1)[hits], docs))
        self._pending_count += len(j)
        if cut or self._pending_count >= self._flush_at:
            self.flush()  # after a cut the thresholds lag far behind: raise them before the next chunk

    def flush(self) -> None:
        """Merge the pending candidates into the top-k (their documents all follow the top-k's, in order)."""
        if not self._pending:
            return
        q, s, d = (np.concatenate(parts) for parts in zip(*self._pending))
        self._pending, self._pending_count = [], 0
        _merge(self.top_scores, self.top_docs, q, s, d, in_doc_order=True)

    def _cut_to_k(self, scores: np.ndarray, flags: np.ndarray) -> None:
        """Keep at most the k best (plus ties) of each query that has many survivors in this chunk."""
        c, m = scores.shape
        k = self.k
        if m == 1:  # the caller only cuts when there are many survivors
            lane = scores.reshape(c).copy()
            lane.partition(c - k)
            np.logical_and(flags, scores >= lane[c - k], out=flags)
            return
        heavy = np.flatnonzero(flags.sum(axis=0) > 2 * k + 16)
        if heavy.size == 0:
            return
        if heavy.size == m:
            lanes = scores.T.copy()  # (queries, documents), C order: partition works along contiguous rows
            lanes.partition(c - k, axis=1)
            np.logical_and(flags, scores >= lanes[:, c - k], out=flags)
        else:
            sub = scores[:, heavy]
            lanes = sub.T.copy()  # a real copy: fancy indexing may already return sub.T in C order
            lanes.partition(c - k, axis=1)
            flags[:, heavy] &= sub >= lanes[:, c - k]


def _matvec(x: np.ndarray, q: np.ndarray, out: np.ndarray) -> None:
    """``out = x @ q`` at memory speed: numpy's SIMD dot loops, not BLAS sgemv (about half as fast here)."""
    if _vecdot is not None:
        _vecdot(x, q, out=out)
    else:
        np.einsum("ij,j->i", x, q, out=out)


_vecdot = getattr(np, "vecdot", None)  # numpy >= 2.0


def _descending_bits(s: np.ndarray) -> np.ndarray:
    """uint32 whose ascending order is the scores' descending order (equal scores, equal values)."""
    bits = (s + np.float32(0)).view(np.uint32)  # + 0 turns -0.0 into 0.0: equal scores must get equal keys
    # Flip negatives entirely and set the sign bit of positives: unsigned order = float order; then invert.
    return ~(bits ^ ((bits >> np.uint32(31)) * np.uint32(0x7FFFFFFF) | np.uint32(0x80000000)))


def _merge(top_scores: np.ndarray, top_docs: np.ndarray, q: np.ndarray, s: np.ndarray, d: np.ndarray,
           in_doc_order: bool) -> None:
    """Merge candidates (query row ``q``, score ``s``, doc ``d``) into the sorted per-row top-k, in place.

    ``in_doc_order``: for each row, the top-k's documents and then the candidates' are in increasing order
    wherever scores tie (true within one worker), so ordering by (score, position) breaks ties by document.
    """
    m, k = top_scores.shape
    counts = np.bincount(q, minlength=m)
    touched = np.flatnonzero(counts)
    partial = touched.size < m
    if partial:
        local = np.empty(m, np.intp)
        local[touched] = np.arange(touched.size)
        q = local[q]
        counts = counts[touched]
        old_s, old_d = top_scores[touched], top_docs[touched]
    else:
        old_s, old_d = top_scores, top_docs
    u = touched.size
    width = k + int(counts.max())
    if in_doc_order and u <= 0xFFFF and u * width <= 4 * (u * k + len(q)):
        pick, all_s, all_d = _merge_rows(old_s, old_d, q, counts, s, d)
    else:  # rows of very unequal lengths, or documents in no particular order: one flat sort
        all_q = np.concatenate([np.repeat(np.arange(u), k), q])
        all_s = np.concatenate([old_s.ravel(), s])
        all_d = np.concatenate([old_d.ravel(), d])
        key = (all_q.astype(np.uint64) << np.uint64(32)) | _descending_bits(all_s).astype(np.uint64)
        by_doc = np.argsort(all_d, kind="stable")
        order = by_doc[np.argsort(key[by_doc], kind="stable")]
        # Row i's entries start after the k + count entries of every earlier row.
        starts = np.arange(u) * k + (np.cumsum(counts) - counts)
        pick = order[starts[:, None] + np.arange(k)]
    if partial:
        top_scores[touched] = all_s[pick]
        top_docs[touched] = all_d[pick]
    else:
        top_scores[...] = all_s[pick]
        top_docs[...] = all_d[pick]


def _merge_rows(old_s: np.ndarray, old_d: np.ndarray, q: np.ndarray, counts: np.ndarray, s: np.ndarray,
                d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-wise merge: one padded (rows, k + most candidates) table of (score, position) keys sorted along its
    rows — short-row sorts are ~20x faster than one long argsort. Returns indices into the returned flat
    (scores, docs) of each row's k best."""
    u, k = old_s.shape
    order = np.argsort(q.astype(np.uint16), kind="stable")  # radix sort: candidates grouped by row, in doc order
    rows = q[order]
    starts = np.cumsum(counts) - counts
    col = np.arange(len(order)) - starts[rows] + k
    keys = np.full((u, k + int(counts.max())), np.iinfo(np.uint64).max, np.uint64)
    keys[:, :k] = (_descending_bits(old_s).astype(np.uint64) << np.uint64(32)) | np.arange(k, dtype=np.uint64)
    keys[rows, col] = (_descending_bits(s[order]).astype(np.uint64) << np.uint64(32)) | col.astype(np.uint64)
    keys.sort(axis=1)
    # Every row has k entries before its padding, so the k smallest keys are real entries.
    best = (keys[:, :k] & np.uint64(0xFFFFFFFF)).astype(np.intp)
    row = np.arange(u)[:, None]
    pick = np.where(best < k, row * k + best, u * k + starts[row] + best - k)
    return pick, np.concatenate([old_s.ravel(), s[order]]), np.concatenate([old_d.ravel(), d[order]])


def _search_block(queries: np.ndarray, tasks: list[_Task], k: int, rows: int, threads: int,
                  dim: int) -> tuple[np.ndarray, np.ndarray]:
    if threads == 1 or len(tasks) <= 1:
        scanner = _Scanner(queries, k, rows, dim)
        for task in tasks:
            scanner.scan(task)
        scanner.flush()
        return scanner.top_scores, scanner.top_docs
    counter = itertools.count()
    lock = threading.Lock()

    def work() -> _Scanner:
        scanner = _Scanner(queries, k, rows, dim)
        while True:
            with lock:
                i = next(counter)
            if i >= len(tasks):
                scanner.flush()
                return scanner
            scanner.scan(tasks[i])

    workers = min(threads, len(tasks))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        scanners = [f.result() for f in [pool.submit(work) for _ in range(workers)]]
    top_scores, top_docs = scanners[0].top_scores, scanners[0].top_docs
    for other in scanners[1:]:
        q, j = np.nonzero(other.top_docs >= 0)
        if q.size:
            _merge(top_scores, top_docs, q, other.top_scores[q, j], other.top_docs[q, j], in_doc_order=False)
    return top_scores, top_docs


# ---------------------------------------------------------------------------------------------------- BLAS threads

_blas_lock = threading.Lock()
_blas_users = 0
_blas_limit: Any = None
_blas_controller: Any = None
_blas_unavailable = False


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Hold BLAS to one thread while any search runs (reference-counted: concurrent searches share one limit)."""
    global _blas_users, _blas_limit, _blas_controller, _blas_unavailable
    with _blas_lock:
        if _blas_users == 0 and not _blas_unavailable:
            try:
                if _blas_controller is None:
                    from threadpoolctl import ThreadpoolController

                    _blas_controller = ThreadpoolController()
                _blas_limit = _blas_controller.limit(limits=1, user_api="blas")
            except ImportError:
                _blas_unavailable = True
                logger.warning("threadpoolctl is not installed: BLAS threads cannot be limited, so dense search "
                               "may oversubscribe the CPU cores")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limit is not None:
                _blas_limit.restore_original_limits()
                _blas_limit = None
