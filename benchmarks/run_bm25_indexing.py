"""BM25 indexing (issue 17): file -> committed index for retrievekit (one process, and with its default worker
processes), PISA and tantivy (one writer thread each) and bm25s (``--bm25s``), in one run: seconds, docs/s, index
bytes and peak RSS.

Each system indexes in a fresh subprocess, so its peak RSS (``ru_maxrss``) is its own: retrievekit's main process
and, separately, the largest of its worker processes; PISA's and tantivy's single process (their peers:
``benchmarks/peers/pisa_peer.py``, ``tantivy_peer.py``, run with ``--peers-python``, a virtualenv from
``benchmarks/setup_pisa.sh``). Every index is built from scratch in ``benchmarks/work/indexing/``.

    python benchmarks/run_bm25_indexing.py --peers-python benchmarks/work/pisa-env/bin/python --bm25s --repeat 3
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
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="synthetic-1000000", help="synthetic-N or a BEIR folder name")
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--peers-python", help="python of the peers' virtualenv (benchmarks/setup_pisa.sh)")
    parser.add_argument("--workers", default="1,2", help="retrievekit ingest worker counts to run")
    parser.add_argument("--bm25s", action="store_true",
                        help="also index with bm25s (the bench extra), in this environment; it also runs its queries")
    parser.add_argument("--append", action="store_true",
                        help="add the systems measured now to the existing --out (e.g. --workers '' --bm25s)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every system; each reports its fastest")
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
    runs: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        for _ in range(args.repeat):  # rounds: every system once per round, so a busy spell hits all of them
            for workers in [int(w) for w in args.workers.split(",") if w]:
                folder = work / f"retrievekit-{workers}"
                shutil.rmtree(folder, ignore_errors=True)
                name = f"retrievekit (workers={workers})"
                runs.setdefault(name, []).append(run([sys.executable, __file__, "--child", str(data), str(folder),
                                                      str(workers), "--child-out", str(out)], out))
                print(name, runs[name][-1], file=sys.stderr, flush=True)
            if args.bm25s:  # bm25s indexes in Python (its tokenizer, scipy/numpy): the main environment's peer
                shutil.rmtree(work / "bm25s", ignore_errors=True)
                # its queries are not this benchmark's subject (and slow at 1M): a few, one thread
                done = run([sys.executable, "-m", "benchmarks.peers.bm25s_peer", "--data", str(data), "--work",
                            str(work / "bm25s"), "--out", str(out), "--max-queries", "20", "--threads", "1",
                            "--min-seconds", "0"], out)
                runs.setdefault("bm25s", []).append({
                    "system": "bm25s", "version": done.get("version"), "docs": done.get("docs"),
                    "index_seconds": done["index_seconds"], "index_docs_per_second": done["index_docs_per_second"],
                    "index_bytes": done["index_bytes"],
                    "index_peak_rss_bytes": done["memory"]["peak_index_rss_bytes"],
                    "definition": done.get("index", {}).get("definition")})
                print("bm25s", runs["bm25s"][-1], file=sys.stderr, flush=True)
            if args.peers_python:
                for name, peer in (("pisa", "pisa_peer.py"), ("tantivy", "tantivy_peer.py")):
                    shutil.rmtree(work / name, ignore_errors=True)
                    runs.setdefault(name, []).append(run(
                        [args.peers_python, str(REPO / "benchmarks" / "peers" / peer), "--data", str(data),
                         "--work", str(work / name), "--out", str(out)], out))
                    print(name, runs[name][-1], file=sys.stderr, flush=True)
    # each system's fastest run, with the seconds of all of them
    systems: dict[str, Any] = {}
    for name, done in runs.items():
        best = min(done, key=lambda r: r["index_seconds"])
        systems[name] = {**best, "runs_index_seconds": [r["index_seconds"] for r in done],
                         "index_peak_rss_bytes_max": max(r["index_peak_rss_bytes"] for r in done)}
    if args.append and args.out.exists():  # systems measured now join an earlier run's, marked as such
        earlier = json.loads(args.out.read_text())
        stamp = {"appended": time.strftime("%Y-%m-%d %H:%M"),
                 "appended_load_average": [round(x, 2) for x in os.getloadavg()]}
        earlier["systems"].update({name: {**s, **stamp} for name, s in systems.items()})
        args.out.write_text(json.dumps(earlier, indent=1) + "\n")
        print(f"added {', '.join(systems)} to {args.out}", file=sys.stderr)
        return 0
    result = {"benchmark": "bm25_indexing", "dataset": args.dataset, "date": time.strftime("%Y-%m-%d"),
              "repeat": args.repeat,
              "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                          "load_average": [round(x, 2) for x in os.getloadavg()]}, "systems": systems}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
