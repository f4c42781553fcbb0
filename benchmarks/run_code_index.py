"""Code indexing speed on a large real repository: the installed Python standard library's source (issue 14).

Copies the standard library's source tree (the folders the code-search benchmark reads: test suites, idlelib,
turtledemo, bundled wheels and site-packages left out; compiled modules and the static libpython left out too)
into ``benchmarks/work/code_index/stdlib`` — the real one is never modified — and indexes it with
``Collection.ingest_code`` into a fresh BM25-only collection with the analyzer ``retrievekit index --code`` uses.
Then, on the same collection:

* a **no-change** run: every file's content hash matches, nothing is parsed or written;
* a **touch** run after appending a comment line to 10 files of the copy (spread over the sorted file list):
  only those 10 are re-read, re-parsed and rewritten. Goal: at most 5% of the first run's time.

Reports files/s, symbols/s and seconds of each run (wall time of ``ingest_code``, commit included) and the load
average at the start (the machine may be shared). Results: ``benchmarks/results/code_index.json``.

    python benchmarks/run_code_index.py [--workers N] [--source DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from retrievekit import Collection
from retrievekit.cli.index_code import CODE_ANALYZER
from retrievekit.core.files import atomic_write_text
from retrievekit.ingest.stdlib_corpus import stdlib_root

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "code_index.json"
WORK = REPO / "benchmarks" / "work" / "code_index"
TOUCHED = 10
GOAL = 0.05  # a re-index after touching 10 files costs at most this fraction of the first run
TOUCH_LINE = "# touched by benchmarks/run_code_index.py\n"

sys.path.insert(0, str(Path(__file__).resolve().parent))
from code_search_data import SKIP_DIRS  # noqa: E402  (the folders the code-search benchmark leaves out)

# not source: compiled extension modules, the build configuration with its static library
NOT_SOURCE_DIRS = frozenset({"lib-dynload"})
NOT_SOURCE_SUFFIXES = (".so", ".a", ".o", ".pyc", ".dll", ".dylib")


def copy_source(source: Path, dest: Path) -> int:
    """A fresh copy of ``source``'s source tree at ``dest``; the number of files copied."""
    if dest.exists():
        shutil.rmtree(dest)

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in SKIP_DIRS or n in NOT_SOURCE_DIRS or n.startswith("config-")
                or n.endswith(NOT_SOURCE_SUFFIXES)}

    shutil.copytree(source, dest, ignore=ignore, symlinks=True)
    return sum(len(files) for _, _, files in os.walk(dest))


def touch_files(root: Path, n: int) -> list[str]:
    """Append a comment line to ``n`` Python files of ``root`` spread evenly over the sorted list; their paths."""
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py") if p.is_file())
    step = max(len(files) // n, 1)
    chosen = files[::step][:n]
    for path in chosen:
        with (root / path).open("a", encoding="utf-8") as f:
            f.write(TOUCH_LINE)
    return chosen


def run(col: Collection, root: Path, workers: int) -> dict[str, Any]:
    started = time.perf_counter()
    report = col.ingest_code(root, use_git=False, workers=workers, progress=False)
    seconds = time.perf_counter() - started
    out = report.to_json()
    out["warnings"] = len(report.warnings)
    out["wall_seconds"] = round(seconds, 3)
    out["files_per_second"] = round(report.files_seen / seconds, 1)
    out["symbols_per_second"] = round(report.symbols / seconds, 1)
    return out


def render(result: dict[str, Any]) -> str:
    """The BENCHMARKS.md section (benchmarks/report.py calls this)."""
    first, same, touch = result["runs"]["first"], result["runs"]["no_change"], result["runs"]["touch"]
    files = first["files_seen"]
    skipped = ", ".join(f"{reason} {count} ({', '.join(first['skipped_examples'].get(reason, [])[:3])})"
                        for reason, count in sorted(first["skipped"].items()))

    def row(name: str, r: dict[str, Any], fraction: str) -> str:
        return (f"| {name} | {r['wall_seconds']:.2f} | {fraction} | {r['files_added'] + r['files_updated']:,} | "
                f"{r['symbols_added'] + r['symbols_updated'] + r['symbols_unchanged']:,} | "
                f"{r['files_per_second']:,.0f} | {r['symbols_per_second']:,.0f} |")

    lines = [
        "## Code indexing: the Python standard library",
        "",
        f"`python benchmarks/run_code_index.py` — `Collection.ingest_code` on a copy of the Python "
        f"{result['python']} standard library's source ({files:,} source files, {first['symbols']:,} symbols; "
        f"skipped: {skipped or 'none'}), BM25 only, "
        f"analyzer `{result['analyzer']}`, {result['workers']} worker(s), one commit per run. Files/s and symbols/s "
        f"are over all files and symbols of the repository. The re-index runs reuse the collection: unchanged "
        f"files (same content hash) are neither parsed nor written.",
        "",
        "| run | seconds | of first run | files written | symbols written | files/s | symbols/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
        row("first index", first, "100%"),
        row("no change", same, f"{same['wall_seconds'] / first['wall_seconds']:.1%}"),
        row(f"{result['touched']} files touched", touch, f"{touch['wall_seconds'] / first['wall_seconds']:.1%}"),
        "",
        f"Goal: a re-index after touching {result['touched']} files costs at most {GOAL:.0%} of the first run — "
        f"{'met' if result['touch_fraction'] <= GOAL else 'NOT met'} ({result['touch_fraction']:.1%}). "
        f"Load average at the start: {result['machine']['load_average']:.1f} on {result['machine']['cpus']} CPUs.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=None, help="source tree (default: the standard library)")
    parser.add_argument("--workers", type=int, default=1, help="BM25 analysis processes (default 1)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    source = args.source or stdlib_root()
    load = os.getloadavg()[0]
    copy = WORK / "stdlib"
    copied = copy_source(source, copy)
    print(f"copied {copied} files of {source} to {copy}", flush=True)
    col_path = WORK / "collection"
    if col_path.exists():
        shutil.rmtree(col_path)
    col = Collection.create(col_path, analyzer=CODE_ANALYZER)

    runs = {"first": run(col, copy, args.workers)}
    print(f"first:     {runs['first']['wall_seconds']:.2f} s  {runs['first']['files_seen']} files  "
          f"{runs['first']['symbols']} symbols", flush=True)
    runs["no_change"] = run(col, copy, args.workers)
    print(f"no change: {runs['no_change']['wall_seconds']:.2f} s", flush=True)
    touched = touch_files(copy, TOUCHED)
    runs["touch"] = run(col, copy, args.workers)
    print(f"touched:   {runs['touch']['wall_seconds']:.2f} s  ({runs['touch']['files_updated']} files updated)",
          flush=True)
    if runs["no_change"]["files_unchanged"] != runs["first"]["files_seen"] or \
            runs["touch"]["files_updated"] != len(touched):
        print("error: the re-index runs did not see exactly the changes made", file=sys.stderr)
        return 1
    first_s = runs["first"]["wall_seconds"]
    result = {
        "benchmark": "code_index", "date": time.strftime("%Y-%m-%d %H:%M:%S"), "python": platform.python_version(),
        "source": str(source), "files_copied": copied, "analyzer": CODE_ANALYZER, "workers": args.workers,
        "touched": len(touched), "touched_files": touched, "goal_fraction": GOAL,
        "no_change_fraction": round(runs["no_change"]["wall_seconds"] / first_s, 4),
        "touch_fraction": round(runs["touch"]["wall_seconds"] / first_s, 4),
        "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "load_average": round(load, 2)},
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(render(result))
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
