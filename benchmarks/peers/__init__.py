"""Shared plumbing of the BM25 peer runners: dataset loading, evaluation, timing, memory, result files.

Every peer (``bm25s_peer``, ``rank_bm25_peer``, ``retrievekit_peer``) is a small script run in its own
process by ``benchmarks/run_bm25.py`` (``python -m benchmarks.peers.<name>`` from the repository root), so
its peak memory is its own.  A peer writes one JSON object (see :func:`base_result`) to ``--out``.

Conventions that every peer follows, so that their numbers compare:

* document contents are ``title + " " + text`` (Pyserini's BEIR "flat" condition);
* only queries that have judgments in ``qrels/<split>.tsv`` are searched and evaluated; a query with no
  result scores 0 (``trec_eval -c``), like ``pyserini_bm25.py``;
* hits with a score <= 0 are dropped (they match no query term; a Lucene engine would not return them);
* query throughput includes query tokenization and mapping internal doc numbers to string ids, is timed
  after an untimed warm-up on the first 50 queries, and repeats full passes over all queries until
  ``--min-seconds`` have elapsed;
* memory is the resident set size read from ``/proc/self/status``; the kernel's peak (``VmHWM``) is reset
  between phases (``/proc/self/clear_refs``) so that indexing and querying peaks are measured separately.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import resource
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

K_DEFAULT = 100
K1 = 0.9
B = 0.4


class BenchmarkDataError(ValueError):
    """A dataset folder lacks a file or holds a malformed line; the message names the file and line."""


# ----------------------------------------------------------------------------- dataset


@dataclass
class Dataset:
    """A BEIR dataset held in memory: parallel document lists plus judged queries and qrels."""

    name: str
    path: Path
    doc_ids: list[str]
    titles: list[str]
    texts: list[str]
    query_ids: list[str]  # judged queries only, in queries.jsonl order
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]
    notes: list[str] = field(default_factory=list)

    def contents(self) -> list[str]:
        """The indexed text of every document: ``title + " " + text``."""
        return [f"{t} {x}" for t, x in zip(self.titles, self.texts)]

    def take_contents(self) -> list[str]:
        """``contents()``, dropping ``titles`` and ``texts`` so that one copy of the corpus stays in memory
        (what a user of a library that indexes a list of strings would hold)."""
        contents = self.contents()
        self.titles, self.texts = [], []
        return contents


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (optional header ``query-id corpus-id score``)."""
    if not path.is_file():
        raise BenchmarkDataError(f"qrels file not found: {path}")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            parts = line.rstrip("\n").split("\t")
            if lineno == 1 and parts[0] == "query-id":
                continue
            if len(parts) != 3:
                raise BenchmarkDataError(f"{path}:{lineno}: expected 3 tab-separated columns, got {len(parts)}")
            try:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
            except ValueError as exc:
                raise BenchmarkDataError(f"{path}:{lineno}: score {parts[2]!r} is not an integer") from exc
    return qrels


def _read_jsonl(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise BenchmarkDataError(f"file not found: {path}")
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BenchmarkDataError(f"{path}:{lineno}: not valid JSON: {exc}") from exc
            if not isinstance(obj, dict) or "_id" not in obj:
                raise BenchmarkDataError(f"{path}:{lineno}: expected a JSON object with an '_id'")
            yield lineno, obj


def load_queries(data_dir: Path, split: str = "test") -> tuple[list[str], list[str], dict[str, dict[str, int]]]:
    """Judged queries of ``split`` (ids, texts, in file order) and the qrels."""
    qrels = read_qrels(data_dir / "qrels" / f"{split}.tsv")
    ids: list[str] = []
    texts: list[str] = []
    for _, obj in _read_jsonl(data_dir / "queries.jsonl"):
        qid = str(obj["_id"])
        if qid in qrels:
            ids.append(qid)
            texts.append(str(obj.get("text") or ""))
    missing = set(qrels) - set(ids)
    if missing:
        logger.warning("%d judged queries have no text in %s; they are not evaluated", len(missing), data_dir)
        qrels = {q: r for q, r in qrels.items() if q not in missing}
    return ids, texts, qrels


def load_dataset(data_dir: Path, name: str | None = None, split: str = "test", with_corpus: bool = True) -> Dataset:
    """Load a BEIR folder: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``."""
    query_ids, query_texts, qrels = load_queries(data_dir, split)
    doc_ids: list[str] = []
    titles: list[str] = []
    texts: list[str] = []
    if with_corpus:
        for _, obj in _read_jsonl(data_dir / "corpus.jsonl"):
            doc_ids.append(str(obj["_id"]))
            titles.append(str(obj.get("title") or ""))
            texts.append(str(obj.get("text") or ""))
    return Dataset(name or data_dir.name, data_dir, doc_ids, titles, texts, query_ids, query_texts, qrels)


def count_lines(path: Path) -> int:
    """Number of non-empty lines of a file (the document count of a JSONL corpus), read in 1 MiB blocks."""
    count = 0
    last = b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


# ----------------------------------------------------------------------------- evaluation


def evaluate_run(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """nDCG@10 and recall@100 averaged over every judged query (a query missing from the run scores 0).

    Uses ``retrievekit.evaluation.evaluate`` (trec_eval semantics) when importable, pytrec_eval otherwise.
    """
    qrels_sub = {q: dict(r) for q, r in qrels.items()}
    try:
        from retrievekit.evaluation.metrics import evaluate
    except ImportError:
        pass
    else:
        res = evaluate(run, qrels_sub, ("ndcg@10", "recall@100"), missing_queries="zero")
        return {"ndcg@10": res["ndcg@10"], "recall@100": res["recall@100"], "evaluator": "retrievekit.evaluation"}
    import pytrec_eval  # type: ignore[import-not-found]

    per_query = pytrec_eval.RelevanceEvaluator(qrels_sub, {"ndcg_cut.10", "recall.100"}).evaluate(
        {q: dict(d) for q, d in run.items()}
    )
    n = len(qrels_sub)
    return {
        "ndcg@10": math.fsum(m["ndcg_cut_10"] for m in per_query.values()) / n if n else 0.0,
        "recall@100": math.fsum(m["recall_100"] for m in per_query.values()) / n if n else 0.0,
        "evaluator": "pytrec_eval",
    }


def run_from_arrays(query_ids: Sequence[str], ids: Any, scores: Any) -> dict[str, dict[str, float]]:
    """Build a TREC run from per-query id and score rows, dropping empty slots and scores <= 0."""
    run: dict[str, dict[str, float]] = {}
    for qid, id_row, score_row in zip(query_ids, ids, scores):
        hits: dict[str, float] = {}
        for doc, score in zip(list(id_row), np.asarray(score_row, dtype=np.float64).tolist()):
            if doc is not None and score > 0:
                hits[str(doc)] = float(score)
        run[qid] = hits
    return run


# ----------------------------------------------------------------------------- memory and timing


def _proc_status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class Memory:
    """Resident-set-size probes.  ``reset_peak()`` starts a new phase; ``peak()`` is the phase's maximum.

    Falls back to ``getrusage`` (a process-lifetime peak that cannot be reset) off Linux.
    """

    def __init__(self) -> None:
        self.can_reset = True
        self.overall_peak = 0

    def current(self) -> int:
        rss = _proc_status_bytes("VmRSS")
        return rss if rss is not None else self._rusage_peak()

    @staticmethod
    def _rusage_peak() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux

    def peak(self) -> int:
        hwm = _proc_status_bytes("VmHWM")
        value = hwm if hwm is not None else self._rusage_peak()
        self.overall_peak = max(self.overall_peak, value)
        return value

    def reset_peak(self) -> None:
        self.peak()  # remember the finished phase's peak in overall_peak before the kernel forgets it
        if not self.can_reset:
            return
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
                handle.write("5")
        except OSError:
            self.can_reset = False
            logger.warning("cannot reset the peak RSS; phase peaks are process-lifetime peaks")


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def time_queries(
    search: Callable[[Sequence[str]], Any],
    texts: Sequence[str],
    min_seconds: float,
    warmup_queries: int = 50,
    max_passes: int = 50,
) -> tuple[dict[str, Any], Any]:
    """Time ``search(texts)`` (one full pass over the queries) after an untimed warm-up.

    The warm-up searches the first ``warmup_queries`` queries (caches, lazy initialisation, JIT).
    Full passes repeat until ``min_seconds`` have elapsed (at most ``max_passes``).  Returns the
    measurement and the output of the first timed pass.
    """
    search(texts[:warmup_queries])
    first: Any = None
    passes = 0
    start = time.perf_counter()
    while True:
        out = search(texts)
        passes += 1
        if first is None:
            first = out
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or passes >= max_passes:
            break
    n_queries = len(texts)
    return {
        "queries": n_queries,
        "passes": passes,
        "warmup_queries": min(warmup_queries, n_queries),
        "seconds": round(elapsed, 4),
        "qps": round(n_queries * passes / elapsed, 2) if elapsed > 0 else None,
        "ms_per_query": round(1000 * elapsed / (n_queries * passes), 4) if n_queries else None,
    }, first


def dir_bytes(path: Path) -> int:
    """Total size of the regular files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def dir_breakdown(path: Path) -> dict[str, int]:
    """Size of each top-level entry of ``path`` (folders summed), largest first."""
    sizes = {p.name: (dir_bytes(p) if p.is_dir() else p.stat().st_size) for p in path.iterdir()}
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))


def versions(packages: Iterable[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


# ----------------------------------------------------------------------------- CLI and result


def block_numba() -> None:
    """Make ``import numba`` fail in this process.

    bm25s imports numba whenever it is installed (about +100 MB RSS), even for its numpy backend.  The
    numpy-backend and rank_bm25 runs block it so that they measure bm25s as installed without numba
    (numba is not a bm25s dependency); the ``bm25s-numba`` run shows the numba configuration.
    """
    import sys

    sys.modules["numba"] = None  # type: ignore[assignment]


def base_parser(description: str) -> argparse.ArgumentParser:
    """Arguments shared by every peer."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, required=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    parser.add_argument("--name", help="dataset name for the result (default: the folder name)")
    parser.add_argument("--split", default="test", help="qrels split (default: test)")
    parser.add_argument("--out", type=Path, required=True, help="write the result JSON here")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder for the index (replaced)")
    parser.add_argument("--k", type=int, default=K_DEFAULT, help="hits per query (default: 100)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads of the multi-threaded batch measurement (default: all cores)")
    parser.add_argument("--min-seconds", type=float, default=2.0,
                        help="repeat timed query passes until this many seconds have elapsed")
    parser.add_argument("--max-queries", type=int, default=None,
                        help="search and evaluate only the first N judged queries (for slow systems)")
    parser.add_argument("--verbose", action="store_true")
    return parser


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


def cap_queries(ds: Dataset, max_queries: int | None) -> None:
    """Keep only the first ``max_queries`` judged queries (file order) and note it in ``ds.notes``."""
    if max_queries is None or max_queries >= len(ds.query_ids):
        return
    total = len(ds.query_ids)
    ds.query_ids = ds.query_ids[:max_queries]
    ds.query_texts = ds.query_texts[:max_queries]
    ds.qrels = {q: ds.qrels[q] for q in ds.query_ids}
    ds.notes.append(
        f"only the first {max_queries} of {total} judged queries were searched and evaluated "
        "(throughput and metrics are on this subset)"
    )


def load_peer_corpus(
    args: argparse.Namespace, mem: Memory
) -> tuple[Dataset, list[str], int, int, int, float, int | None]:
    """What the in-Python peers load before indexing: (dataset, contents, judged queries before capping,
    documents, k, load seconds, RSS after loading)."""
    with Stopwatch() as sw_load:
        ds = load_dataset(args.data, args.name, args.split)
        contents = ds.take_contents()
    queries_total = len(ds.query_ids)
    cap_queries(ds, args.max_queries)
    n_docs = len(ds.doc_ids)
    return ds, contents, queries_total, n_docs, min(args.k, n_docs), sw_load.seconds, mem.current()


def base_result(system: str, ds: Dataset, n_docs: int, queries_total: int) -> dict[str, Any]:
    """The fields every peer result carries; peers fill the rest (see run_bm25.py for the schema)."""
    return {
        "system": system,
        "dataset": ds.name,
        "data_dir": str(ds.path),
        "docs": n_docs,
        "queries": len(ds.query_ids),
        "queries_judged_total": queries_total,
        "k": None,
        "k1": K1,
        "b": B,
        "python": platform.python_version(),
        "pid_cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "notes": list(ds.notes),
    }


def write_result(path: Path, result: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)
