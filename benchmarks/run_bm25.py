"""Run the BM25 benchmark: every system on every dataset, one subprocess each; write results JSON.

Systems: ``bm25s`` (numpy backend), ``bm25s-numba`` (only if numba imports), ``rank_bm25``,
``retrievekit`` (only if ``retrievekit.Collection`` imports) and ``pyserini`` (only with a Pyserini
virtual environment: ``--pyserini-python`` or ``$PYSERINI_PYTHON``).  Datasets: BEIR folders under
``--data-root`` (default ``../shared/data``) and ``synthetic``, a generated corpus of
``--synthetic-docs`` documents (made once into ``benchmarks/work/``, reused while its parameters match).

Each system runs in a fresh process so that its peak memory is its own (our peers measure their
indexing and querying peaks themselves; Pyserini's is the process peak from ``wait4``).  Results go to
``benchmarks/results/bm25_<dataset>.json``; re-running a subset of systems updates only their entries.
Then ``python benchmarks/report.py`` writes ``BENCHMARKS.md``.

Examples::

    python benchmarks/run_bm25.py                                   # everything (1M synthetic: ~1 h)
    python benchmarks/run_bm25.py --datasets scifact --systems bm25s,rank_bm25
    python benchmarks/run_bm25.py --datasets synthetic --synthetic-docs 100000
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # so that ``benchmarks.*`` imports work when run as a script
    sys.path.insert(0, str(REPO))

from benchmarks.peers import count_lines, load_queries, versions  # noqa: E402
from benchmarks.synthetic import SyntheticConfig, generate, is_complete  # noqa: E402

logger = logging.getLogger("run_bm25")

ALL_SYSTEMS = ("bm25s", "bm25s-numba", "rank_bm25", "retrievekit", "retrievekit-1proc", "pyserini")
DEFAULT_DATASETS = ("scifact", "cranfield", "cacm", "cosqa", "synthetic")
PEER_MODULES = {
    "bm25s": ("benchmarks.peers.bm25s_peer", []),
    "bm25s-numba": ("benchmarks.peers.bm25s_peer", ["--backend", "numba"]),
    "rank_bm25": ("benchmarks.peers.rank_bm25_peer", []),
    "retrievekit": ("benchmarks.peers.retrievekit_peer", []),
    "retrievekit-1proc": ("benchmarks.peers.retrievekit_peer", ["--workers", "1"]),
}
PACKAGES = ("bm25s", "rank_bm25", "numpy", "scipy", "PyStemmer", "numba", "retrievekit",
            "pytrec_eval-terrier")


class BenchmarkSetupError(RuntimeError):
    """A dataset folder, interpreter or option is unusable; the message says which and why."""


# ----------------------------------------------------------------------------- machine description


def _first_match(path: str, prefix: str, sep: str = ":") -> str | None:
    """Value of the first line of ``path`` that starts with ``prefix`` (the text after ``sep``)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith(prefix):
                    return line.split(sep, 1)[1].strip()
    except OSError:
        return None
    return None


def _physical_cores() -> int | None:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    cores = set()
    for block in text.split("\n\n"):
        fields = dict(
            (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in block.splitlines()) if k
        )
        if "core id" in fields:
            cores.add((fields.get("physical id", "0"), fields["core id"]))
    return len(cores) or None


def machine_info(python: str) -> dict[str, Any]:
    """CPU, cores, memory, OS, Python and package versions of the benchmark machine."""
    mem_kb = _first_match("/proc/meminfo", "MemTotal")
    os_name = _first_match("/etc/os-release", "PRETTY_NAME=", sep="=")
    return {
        "cpu_model": _first_match("/proc/cpuinfo", "model name") or platform.processor() or None,
        "logical_cores": os.cpu_count(),
        "physical_cores": _physical_cores(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_bytes": int(mem_kb.split()[0]) * 1024 if mem_kb else None,
        "os": os_name.strip('"') if os_name else platform.system(),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_executable": python,
        "packages": _peer_versions(python),
    }


def _peer_versions(python: str) -> dict[str, str | None]:
    """Package versions as the peers' interpreter sees them (it may differ from this one)."""
    if Path(python).resolve() == Path(sys.executable).resolve():
        return versions(PACKAGES)
    code = ("import json; from importlib import metadata as m\n"
            "def v(n):\n try: return m.version(n)\n except m.PackageNotFoundError: return None\n"
            f"print(json.dumps({{n: v(n) for n in {list(PACKAGES)!r}}}))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


# ----------------------------------------------------------------------------- subprocesses


def _peer_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO), str(REPO / "src")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def run_process(cmd: list[str], log_path: Path, timeout: float, stdout_path: Path | None = None) -> dict[str, Any]:
    """Run ``cmd`` from the repository root; return exit code, wall time and the child's ``ru_maxrss``.

    ``os.wait4`` gives the resource usage of this child alone.  Its ``ru_maxrss`` is the process's true
    peak RSS only if the process never reset its peak: our peers do reset it between phases (and report
    their own phase peaks), so for them it is the peak of the last phase; for pyserini it is the peak.
    stderr (and stdout unless ``stdout_path``) go to ``log_path``.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log, \
            open(stdout_path or os.devnull, "w", encoding="utf-8") as out:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, env=_peer_env(), stdout=out if stdout_path else log,
                                stderr=log, start_new_session=True)
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.1)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "returncode": proc.returncode,
        "timed_out": timed_out,
        "wall_seconds": round(time.perf_counter() - start, 2),
        "wait4_maxrss_bytes": usage.ru_maxrss * 1024,  # kB on Linux
    }


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def python_can_import(python: str, statement: str) -> bool:
    res = subprocess.run([python, "-c", statement], cwd=REPO, env=_peer_env(), capture_output=True)
    return res.returncode == 0


# ----------------------------------------------------------------------------- datasets


def synthetic_name(docs: int) -> str:
    """``synthetic-1m``, ``synthetic-100k``, ``synthetic-2500`` ..."""
    if docs % 1_000_000 == 0:
        return f"synthetic-{docs // 1_000_000}m"
    if docs % 1_000 == 0:
        return f"synthetic-{docs // 1_000}k"
    return f"synthetic-{docs}"


def prepare_synthetic(work: Path, docs: int, queries: int, seed: int) -> tuple[Path, dict[str, Any]]:
    cfg = SyntheticConfig(docs=docs, queries=queries, seed=seed)
    out = work / f"synthetic-{docs}"
    if is_complete(out, cfg):
        logger.info("reusing the synthetic corpus in %s", out)
    else:
        logger.info("generating a %d-document synthetic corpus into %s", docs, out)
        generate(out, cfg)
    return out, json.loads((out / "synthetic.json").read_text(encoding="utf-8"))


def resolve_datasets(args: argparse.Namespace) -> list[tuple[str, Path, dict[str, Any] | None]]:
    """(name, folder, synthetic metadata or None) for every requested dataset."""
    out: list[tuple[str, Path, dict[str, Any] | None]] = []
    for name in args.datasets:
        if name == "synthetic":
            path, meta = prepare_synthetic(args.work, args.synthetic_docs, args.synthetic_queries, args.seed)
            out.append((synthetic_name(args.synthetic_docs), path, meta))
            continue
        path = args.data_root / name
        if not (path / "corpus.jsonl").is_file():
            raise BenchmarkSetupError(f"dataset {name!r}: {path / 'corpus.jsonl'} not found (see --data-root)")
        out.append((name, path, None))
    return out


# ----------------------------------------------------------------------------- systems


def run_peer(system: str, name: str, data: Path, n_docs: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run one of our peer scripts; return its result (with process info) or raise on failure."""
    module, extra = PEER_MODULES[system]
    tag = f"{name}-{system}"
    out_json = args.work / "peer-results" / f"{tag}.json"
    out_json.unlink(missing_ok=True)
    cmd = [args.python, "-m", module, "--data", str(data), "--name", name, "--out", str(out_json),
           "--work", str(args.work / "indexes" / tag), "--k", str(args.k), "--threads", str(args.threads),
           "--min-seconds", str(args.min_seconds), *extra]
    if system == "rank_bm25" and n_docs > args.rank_bm25_cap_above:
        cmd += ["--max-queries", str(args.rank_bm25_max_queries)]
    log_path = args.work / "logs" / f"{tag}.log"
    logger.info("%s on %s ...", system, name)
    proc = run_process(cmd, log_path, args.timeout)
    if proc["returncode"] != 0 or not out_json.is_file():
        why = "timed out" if proc["timed_out"] else f"exit code {proc['returncode']}"
        raise RuntimeError(f"{system} on {name} failed ({why}); log {log_path}:\n{_log_tail(log_path)}")
    result = json.loads(out_json.read_text(encoding="utf-8"))
    result["process"] = proc
    return result


def run_pyserini(name: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run ``peers/pyserini_bm25.py`` in the Pyserini venv and map its JSON onto our result schema."""
    tag = f"{name}-pyserini"
    stdout_path = args.work / "logs" / f"{tag}.stdout"
    log_path = args.work / "logs" / f"{tag}.log"
    cmd = [args.pyserini_python, str(REPO / "benchmarks" / "peers" / "pyserini_bm25.py"), str(data),
           "--hits", str(args.k), *args.pyserini_args.split()]
    logger.info("pyserini on %s ...", name)
    proc = run_process(cmd, log_path, args.timeout, stdout_path=stdout_path)
    lines = [ln for ln in stdout_path.read_text(encoding="utf-8").splitlines() if ln.startswith("{")]
    if proc["returncode"] != 0 or not lines:
        why = "timed out" if proc["timed_out"] else f"exit code {proc['returncode']}"
        raise RuntimeError(f"pyserini on {name} failed ({why}); log {log_path}:\n{_log_tail(log_path)}")
    raw = json.loads(lines[-1])
    modes: dict[str, Any] = {}
    if raw.get("queries_per_second_python_loop") is not None:
        modes["single_thread_loop"] = {
            "label": "LuceneSearcher.search(q, k) one query per call from Python", "threads": 1,
            "queries": raw.get("queries"), "qps": raw["queries_per_second_python_loop"]}
    if raw.get("queries_per_second") is not None:
        modes["jvm_batch_threads_1"] = {
            "label": "Anserini batch_search inside the JVM, 1 thread", "threads": 1,
            "queries": raw.get("queries"), "qps": raw["queries_per_second"]}
    loop = modes.get("single_thread_loop") or modes.get("jvm_batch_threads_1") or {}
    index_seconds = raw.get("index_seconds")
    return {
        **raw,
        "system": "pyserini",
        "label": raw.get("system") or "pyserini",
        "pyserini_output": raw,
        "queries_per_second": loop.get("qps"),
        "query_modes": modes,
        "index_docs_per_second": round(raw["docs"] / index_seconds, 1) if index_seconds else None,
        "peak_rss_bytes": proc["wait4_maxrss_bytes"],
        "process": proc,
        "notes": [
            "peak RSS is the whole process's (Python + JVM), from wait4",
            "index_seconds is Anserini IndexCollection on 1 thread, timed inside the peer (JVM already started)",
        ],
    }


def available_systems(requested: list[str], args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """Requested systems that can run here, and a reason for each one that cannot."""
    runnable: list[str] = []
    skipped: dict[str, str] = {}
    for system in requested:
        if system == "bm25s-numba" and not python_can_import(args.python, "import numba, bm25s"):
            skipped[system] = "numba is not installed in the benchmark environment (optional)"
        elif system.startswith("retrievekit") and not python_can_import(args.python,
                                                                          "from retrievekit import Collection"):
            skipped[system] = "retrievekit.Collection is not importable"
        elif system == "pyserini" and not args.pyserini_python:
            skipped[system] = "no Pyserini environment: pass --pyserini-python or set PYSERINI_PYTHON"
        elif system == "pyserini" and not Path(args.pyserini_python).exists():
            skipped[system] = f"Pyserini interpreter {args.pyserini_python} does not exist"
        else:
            runnable.append(system)
    return runnable, skipped


# ----------------------------------------------------------------------------- results


def _dataset_identity(info: dict[str, Any]) -> tuple[Any, ...]:
    """What must match for results to be comparable: sizes and, for synthetic data, the generator config."""
    syn = info.get("synthetic") or {}
    return (info.get("docs"), info.get("judged_queries"), syn.get("format_version"),
            json.dumps(syn.get("config"), sort_keys=True))


def merge_result(path: Path, name: str, data: Path, dataset_info: dict[str, Any], machine: dict[str, Any],
                 system: str, result: dict[str, Any] | None, skip_reason: str | None) -> None:
    """Insert one system's result (or skip reason) into ``bm25_<dataset>.json``, keeping other systems."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = {}
    if doc and _dataset_identity(doc.get("dataset_info") or {}) != _dataset_identity(dataset_info):
        logger.warning("%s holds results for a different version of %s; discarding them", path, name)
        doc = {}
    doc.update({"benchmark": "bm25", "dataset": name, "data_dir": str(data), "dataset_info": dataset_info,
                "machine": machine,
                "updated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    systems = doc.setdefault("systems", {})
    skipped = doc.setdefault("skipped", {})
    if result is not None:
        result["run_at"] = doc["updated_at"]
        systems[system] = result
        skipped.pop(system, None)
    elif skip_reason is not None:
        skipped[system] = skip_reason
        # a stale result from an earlier run stays, but the reason it was not refreshed is recorded
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--datasets", type=_csv, default=list(DEFAULT_DATASETS),
                        help=f"comma-separated (default: {','.join(DEFAULT_DATASETS)}); 'synthetic' = generated")
    parser.add_argument("--systems", type=_csv, default=list(ALL_SYSTEMS),
                        help=f"comma-separated subset of {','.join(ALL_SYSTEMS)} (default: all available)")
    parser.add_argument("--synthetic-docs", type=int, default=1_000_000)
    parser.add_argument("--synthetic-queries", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=SyntheticConfig.seed, help="synthetic corpus seed")
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "work")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the peers (default: this one)")
    parser.add_argument("--pyserini-python", default=os.environ.get("PYSERINI_PYTHON"),
                        help="python of a Pyserini venv (default: $PYSERINI_PYTHON)")
    parser.add_argument("--pyserini-args", default="",
                        help="extra arguments for peers/pyserini_bm25.py, e.g. '--minimal-index'")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads of the multi-threaded batch measurements")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="minimum timed seconds per query mode")
    parser.add_argument("--rank-bm25-max-queries", type=int, default=100)
    parser.add_argument("--rank-bm25-cap-above", type=int, default=50_000,
                        help="cap rank_bm25's queries on corpora with more documents than this")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per system and dataset")
    args = parser.parse_args(argv)
    unknown = [s for s in args.systems if s not in ALL_SYSTEMS]
    if unknown:
        parser.error(f"unknown system(s) {unknown}; choose from {', '.join(ALL_SYSTEMS)}")
    args.work = args.work.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    systems, skipped = available_systems(args.systems, args)
    for system, reason in skipped.items():
        logger.warning("skipping %s: %s", system, reason)
    machine = machine_info(args.python)
    failures = 0
    for name, data, meta in resolve_datasets(args):
        n_docs = meta["documents"] if meta else count_lines(data / "corpus.jsonl")
        query_ids, _, _ = load_queries(data)
        info = {"docs": n_docs, "judged_queries": len(query_ids), "synthetic": meta}
        out = args.results / f"bm25_{name}.json"
        for system, reason in skipped.items():
            merge_result(out, name, data, info, machine, system, None, reason)
        for system in systems:
            try:
                if system == "pyserini":
                    result = run_pyserini(name, data, args)
                else:
                    result = run_peer(system, name, data, n_docs, args)
            except RuntimeError as exc:
                failures += 1
                logger.error("%s", exc)
                merge_result(out, name, data, info, machine, system, None, f"failed: {str(exc).splitlines()[0]}")
                continue
            merge_result(out, name, data, info, machine, system, result, None)
            logger.info("  %s: nDCG@10 %.4f, R@100 %.4f, %.0f docs/s indexing, %s QPS, peak RSS %.0f MB",
                        system, result["ndcg@10"], result["recall@100"], result["index_docs_per_second"] or 0,
                        result["queries_per_second"], (result.get("peak_rss_bytes") or 0) / 2**20)
        logger.info("wrote %s", out)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
