"""Cold-start times a new user meets: the first `retrievekit demo` and one `retrievekit search` per process.

(a) The first demo run from a clean cache: RETRIEVEKIT_CACHE and RETRIEVEKIT_HOME point at empty folders, so the
    run parses the docstrings, exports MiniLM to ONNX (torch, once), quantises it, encodes and indexes everything,
    then runs the five example searches. Then a second run, which reuses the collection.
(b) `retrievekit search COL "query" --mode M` as separate processes (interpreter start, imports, opening the
    collection, query encoding, search, printing), best and median of --repeats runs, for each mode: on the demo
    collection (dense index by onnx-int8), and on a collection whose dense index was built by sentence-transformers
    (queries encoded by its cached ONNX export; "no export" = the same search with an empty cache, which loads torch
    and the sentence-transformers model as every search did before). With --sparse-docs N > 0, also a sparse
    (splade-tiny) collection of N documents.

Wall times depend on what else runs on the machine, so each row also records the CPU seconds the processes used and
the 1-minute load average before it.

    python benchmarks/run_cold_start.py [--repeats 5] [--st-docs 300] [--sparse-docs 100]
    python benchmarks/run_cold_start.py --markdown     # print the BENCHMARKS.md section from the results

Writes benchmarks/results/cold_start.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "cold_start.json"
QUERIES = ["read and write json files", "parse command line arguments", "compress data with gzip",
           "run a subprocess and capture its output", "current date and time in UTC"]


def run(args: list[str], env: dict[str, str], timeout: float = 1800) -> dict[str, Any]:
    """Run a command; its wall time, the CPU seconds it used and its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": round(wall, 3), "cpu_seconds": round(cpu, 3), "load_before": round(load, 2),
            "stdout": proc.stdout, "stderr": proc.stderr}


def env_with(cache: Path, home: Path) -> dict[str, str]:
    return {**os.environ, "RETRIEVEKIT_CACHE": str(cache), "RETRIEVEKIT_HOME": str(home), "TQDM_DISABLE": "1"}


def retrievekit(*args: str) -> list[str]:
    return [sys.executable, "-m", "retrievekit", *args]


def measure_demo(work: Path) -> dict[str, Any]:
    env = env_with(work / "cache", work / "home")
    first = run(retrievekit("demo", "--no-progress", "--json"), env)
    report = json.loads(first["stdout"])
    second = run(retrievekit("demo", "--no-progress", "--json"), env)
    return {
        "first_run_seconds": first["seconds"], "first_run_cpu_seconds": first["cpu_seconds"],
        "load_before": first["load_before"], "second_run_seconds": second["seconds"],
        "documents": report["documents"], "mode": report["mode"], "expected_seconds": report.get("expected_seconds"),
        "index_seconds": round(report["index_seconds"], 2), "collection": report["collection"],
    }


def measure_search(label: str, collection: str, mode: str, env: dict[str, str], repeats: int) -> dict[str, Any]:
    runs = [run(retrievekit("search", collection, QUERIES[i % len(QUERIES)], "--mode", mode, "-k", "5"), env)
            for i in range(repeats)]
    walls = [r["seconds"] for r in runs]
    cpus = [r["cpu_seconds"] for r in runs]
    torch_loaded = "torch" in importtime_modules(collection, mode, env)
    row = {"collection": label, "mode": mode, "best_seconds": min(walls), "median_seconds": statistics.median(walls),
           "median_cpu_seconds": round(statistics.median(cpus), 3), "runs": walls,
           "load_before": runs[0]["load_before"], "imports_torch": torch_loaded}
    print(f"  {label:<40} {mode:<7} best {row['best_seconds']:.2f} s, median {row['median_seconds']:.2f} s "
          f"(cpu {row['median_cpu_seconds']:.2f} s, torch {'yes' if torch_loaded else 'no'})", flush=True)
    return row


def importtime_modules(collection: str, mode: str, env: dict[str, str]) -> set[str]:
    """The top-level packages a cold search imports (python -X importtime)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "retrievekit", "search", collection, "json",
                           "--mode", mode], capture_output=True, text=True, env=env, timeout=600)
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def build_st_collection(work: Path, docs: int, env: dict[str, str]) -> Path:
    """`docs` stdlib docstrings with a sentence-transformers dense index, built by `retrievekit index --dense`
    (which also exports the ONNX twin into the cache)."""
    from retrievekit.ingest.stdlib_corpus import iter_stdlib_documents

    source = work / "stdlib.jsonl"
    with source.open("w", encoding="utf-8") as out:
        for doc in iter_stdlib_documents(docs, public_only=True):
            out.write(json.dumps({"_id": doc.id, "title": doc.title, "text": doc.text}) + "\n")
    path = work / "st-col"
    run(retrievekit("index", str(source), str(path), "--dense", "minilm", "--no-progress"), env)
    return path


def build_sparse_collection(work: Path, docs: int, env: dict[str, str]) -> Path:
    source = work / "stdlib-sparse.jsonl"
    lines = (work / "stdlib.jsonl").read_text(encoding="utf-8").splitlines()[:docs]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = work / "sparse-col"
    run(retrievekit("index", str(source), str(path), "--sparse", "--no-progress"), env)
    return path


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    packages = {p: version(p) for p in ("retrievekit", "onnxruntime", "torch", "sentence-transformers")}
    return {"cpu": cpu, "cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "packages": packages}


def render(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = ["## Cold start: first demo run and one search per process", "",
             f"`python benchmarks/run_cold_start.py` — {m['cpu']}, {m['cpus']} cores, Python {m['python']}, "
             f"onnxruntime {m['packages']['onnxruntime']}; each row gives the CPU seconds used and the 1-minute load "
             "average before it (a load above the core count stretches wall time).", ""]
    demo = doc.get("demo")
    if demo:
        lines += ["First `retrievekit demo` from a clean cache (empty RETRIEVEKIT_CACHE and RETRIEVEKIT_HOME: "
                  "docstring parsing, the one-time ONNX export and int8 quantisation of all-MiniLM-L6-v2, encoding, "
                  "BM25 indexing, five hybrid searches). Goal: ≤ 3 minutes on 2 cores; before: 9m22s including "
                  "install, 7m18s of it encoding 8,866 docstrings with sentence-transformers.", "",
                  "| documents | mode | first run | CPU seconds | load before | expected (printed) | second run |",
                  "|---:|---|---:|---:|---:|---:|---:|",
                  f"| {demo['documents']:,} | {demo['mode']} | {demo['first_run_seconds']:.1f} s | "
                  f"{demo['first_run_cpu_seconds']:.1f} | {demo['load_before']:.1f} | "
                  f"{demo['expected_seconds']:.0f} s | {demo['second_run_seconds']:.1f} s |", "",
                  f"The first run {'met' if demo['first_run_seconds'] <= 180 else 'missed'} the goal with the "
                  f"machine at a load of {demo['load_before']:.1f} on {m['cpus']} cores; it used "
                  f"{demo['first_run_cpu_seconds']:.0f} CPU seconds "
                  f"({demo['first_run_cpu_seconds'] / m['cpus']:.0f} per core, most of them encoding on every "
                  "core)" + (", so an idle machine should take roughly that per-core time (estimated: this one was "
                             "busy)" if demo["load_before"] >= m["cpus"] else "") +
                  ". The second run reuses the collection and the export.", ""]
    lines += ["`retrievekit search COL \"query\" --mode M`, each a new process (interpreter start, imports, opening "
              f"the collection, query encoding, search, printing), {doc['repeats']} runs. Goal for hybrid: ≤ 1.5 s. "
              "\"no export\" = the same collection with an empty cache: queries encoded by sentence-transformers, "
              "as every dense and hybrid search was before.", "",
              "| collection | mode | best | median | median CPU s | imports torch | load before |",
              "|---|---|---:|---:|---:|---|---:|"]
    for r in doc["search"]:
        lines.append(f"| {r['collection']} | {r['mode']} | {r['best_seconds']:.2f} s | {r['median_seconds']:.2f} s "
                     f"| {r['median_cpu_seconds']:.2f} | {'yes' if r['imports_torch'] else 'no'} | "
                     f"{r['load_before']:.1f} |")
    if any(r["mode"] == "sparse" for r in doc["search"]):
        lines += ["", "Sparse (SPLADE) queries are still encoded by torch: no ONNX path exists for them yet."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--st-docs", type=int, default=300,
                        help="documents of the collection built with sentence-transformers (default 300)")
    parser.add_argument("--sparse-docs", type=int, default=100, help="documents of the SPLADE collection (0: none)")
    parser.add_argument("--markdown", action="store_true", help="print the BENCHMARKS.md section and exit")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.markdown:
        print(render(json.loads(args.out.read_text())), end="")
        return 0
    work = Path(tempfile.mkdtemp(prefix="rk-cold-"))
    try:
        doc: dict[str, Any] = {"machine": machine(), "repeats": args.repeats}
        print("first demo run from a clean cache ...", flush=True)
        doc["demo"] = measure_demo(work / "demo")
        print(f"  {doc['demo']['first_run_seconds']:.1f} s (cpu {doc['demo']['first_run_cpu_seconds']:.1f} s), "
              f"second run {doc['demo']['second_run_seconds']:.1f} s", flush=True)
        demo_env = env_with(work / "demo" / "cache", work / "demo" / "home")
        demo_col = doc["demo"]["collection"]
        print("cold searches ...", flush=True)
        rows = [measure_search(f"demo ({doc['demo']['documents']:,} docs, onnx-int8 index)", demo_col, mode,
                               demo_env, args.repeats) for mode in ("bm25", "dense", "hybrid")]
        st_env = env_with(work / "st" / "cache", work / "st" / "home")
        (work / "st").mkdir()
        st_col = str(build_st_collection(work / "st", args.st_docs, st_env))
        label = f"{args.st_docs} docs, sentence-transformers index"
        rows += [measure_search(label, st_col, mode, st_env, args.repeats) for mode in ("dense", "hybrid")]
        no_export = env_with(work / "empty-cache", work / "st" / "home")
        rows += [measure_search(label + ", no export", st_col, mode, no_export, args.repeats)
                 for mode in ("dense", "hybrid")]
        if args.sparse_docs > 0:
            sparse_col = str(build_sparse_collection(work / "st", args.sparse_docs, st_env))
            rows.append(measure_search(f"{args.sparse_docs} docs, splade-tiny index", sparse_col, "sparse", st_env,
                                       args.repeats))
        for row in rows:
            row.pop("stdout", None)
        doc["search"] = rows
        doc["demo"].pop("collection", None)
        doc["updated_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.out}")
        print(render(doc))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
