"""BM25 indexing (issue 17): file -> committed index for retrievekit (one process, and with its default worker
processes), PISA and tantivy (one writer thread each), in one run: seconds, docs/s, index bytes and peak RSS.

Each system indexes in a fresh subprocess, so its peak RSS (``ru_maxrss``) is its own: retrievekit's main process
and, separately, the largest of its worker processes; PISA's and tantivy's single process (their peers:
``benchmarks/peers/pisa_peer.py``, ``tantivy_peer.py``, run with ``--peers-python``, a virtualenv from
``benchmarks/setup_pisa.sh``). Every index is built from scratch in ``benchmarks/work/indexing/``.

    python benchmarks/run_bm25_indexing.py --peers-python benchmarks/work/pisa-env/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "work"


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def child(data: Path, folder: Path, workers: int, out: Path) -> None:
    """Index ``data`` into a new collection at ``folder`` (this process does nothing else first)."""
    from retrievekit import Collection

    started = time.perf_counter()
    col = Collection.create(folder, analyzer="lucene-english")
    col.ingest(data, progress=False, workers=workers)
    seconds = time.perf_counter() - started
    out.write_text(json.dumps({
        "docs": len(col), "index_seconds": round(seconds, 2), "index_docs_per_second": round(len(col) / seconds, 1),
        "index_bytes": dir_bytes(folder), "workers": workers, "segments": len(col.snapshot().segments),
        "index_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "worker_peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 if workers > 1
        else None}))


def run(command: list[str], out: Path) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="synthetic-1000000", help="synthetic-N or a BEIR folder name")
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--peers-python", help="python of the peers' virtualenv (benchmarks/setup_pisa.sh)")
    parser.add_argument("--workers", default="1,2", help="retrievekit ingest worker counts to run")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bm25-indexing.json")
    parser.add_argument("--child", nargs=3, metavar=("DATA", "FOLDER", "WORKERS"), help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), int(args.child[2]), args.child_out)
        return 0
    if args.dataset.startswith("synthetic-"):
        data = WORK / args.dataset
        if not (data / "corpus.jsonl").exists():
            sys.path.insert(0, str(REPO))
            from benchmarks.synthetic import SyntheticConfig, generate

            generate(data, SyntheticConfig(docs=int(args.dataset.split("-", 1)[1])))
    else:
        data = args.data_root / args.dataset
    work = WORK / "indexing" / args.dataset
    systems: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        for workers in [int(w) for w in args.workers.split(",")]:
            folder = work / f"retrievekit-{workers}"
            shutil.rmtree(folder, ignore_errors=True)
            name = f"retrievekit (workers={workers})"
            systems[name] = run([sys.executable, __file__, "--child", str(data), str(folder), str(workers),
                                 "--child-out", str(out)], out)
            print(name, systems[name], file=sys.stderr, flush=True)
        if args.peers_python:
            shutil.rmtree(work / "pisa", ignore_errors=True)
            systems["pisa"] = run([args.peers_python, str(REPO / "benchmarks" / "peers" / "pisa_peer.py"), "--data",
                                   str(data), "--work", str(work / "pisa"), "--out", str(out)], out)
            print("pisa", systems["pisa"], file=sys.stderr, flush=True)
            systems["tantivy"] = run([args.peers_python, str(REPO / "benchmarks" / "peers" / "tantivy_peer.py"),
                                      "--data", str(data), "--work", str(work / "tantivy"), "--out", str(out)], out)
            print("tantivy", systems["tantivy"], file=sys.stderr, flush=True)
    result = {"benchmark": "bm25_indexing", "dataset": args.dataset, "date": time.strftime("%Y-%m-%d"),
              "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                          "load_average": [round(x, 2) for x in os.getloadavg()]}, "systems": systems}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
