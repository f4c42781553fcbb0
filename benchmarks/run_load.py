"""Load test of the HTTP server: concurrent searches and writes, then a check that no committed write was lost.

Builds a collection (default: the scifact corpus), starts ``retrievekit serve`` on a loopback port and runs
``--clients`` threads for ``--seconds``. Each client loops: with probability ``--write-ratio`` a write (a
``POST /api/documents`` batch of new, unique ids; sometimes a ``PUT`` update or ``DELETE`` of one of its own
acknowledged ids), else a ``POST /api/search`` with a real scifact query in one of ``--modes``.

Reported: p50/p95/p99 latency per operation (client-side, request to response, including retries after a
409 writer_busy), throughput, and errors: any non-2xx response or exception counts, except 409 writer_busy
which is counted separately and retried. Then every acknowledged write is checked: each added or updated id
must be readable (``GET``) with the acknowledged title and text and findable by search, each deleted id must be
gone, and the live count must match — once on the running server and again after killing it (SIGKILL) and
starting a new one. Results: ``benchmarks/results/load.json``; ``python benchmarks/report_load.py`` renders the
table.

    python benchmarks/run_load.py                                # 16 clients, 30 s, 10% writes, bm25
    python benchmarks/run_load.py --clients 4 --seconds 10 --limit 1000 --modes bm25,dense
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # so that ``benchmarks.*`` imports work when run as a script
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from benchmarks.report_load import render  # noqa: E402

logger = logging.getLogger("run_load")

MAX_CLIENTS = 64
MAX_SECONDS = 600.0
MAX_BATCH = 1000
PACKAGES = ("retrievekit", "fastapi", "starlette", "uvicorn", "pydantic", "httpx", "numpy")
BUSY_RETRIES = 50  # attempts of a write answered 409 writer_busy before it counts as an error
VERIFY_SEARCH_SAMPLE = 200  # acknowledged ids also looked up by search (their unique title marker)


class LoadSetupError(RuntimeError):
    """The data, options or server are unusable; the message says which and why."""


# ----------------------------------------------------------------------------- data and collection


def read_corpus(path: Path, limit: int | None) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if limit is not None and len(docs) >= limit:
                break
            obj = json.loads(line)
            docs.append({"id": str(obj["_id"]), "title": obj.get("title") or "", "text": obj.get("text") or ""})
    return docs


def read_queries(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as handle:
        return [q for q in (json.loads(line).get("text", "").strip() for line in handle) if q]


def build_collection(path: Path, docs: list[dict[str, Any]], dense: bool) -> float:
    from retrievekit.collection import Collection

    if path.exists():
        shutil.rmtree(path)
    started = time.perf_counter()
    col = Collection.create(path, dense="minilm" if dense else None)
    col.add(docs)
    return time.perf_counter() - started


# ----------------------------------------------------------------------------- server process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_commands(collection: Path, port: int) -> list[list[str]]:
    """The ``serve`` CLI first; the Python entry point where the CLI does not have the subcommand yet."""
    return [
        [sys.executable, "-m", "retrievekit", "serve", str(collection), "--host", "127.0.0.1", "--port", str(port)],
        [sys.executable, "-c", "import sys; from retrievekit.serve.app import run; "
         "run(sys.argv[1], host='127.0.0.1', port=int(sys.argv[2]))", str(collection), str(port)],
    ]


@dataclass
class Server:
    collection: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    command: list[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        errors = []
        for command in [self.command] if self.command else server_commands(self.collection, self.port):
            with self.log_path.open("ab") as log:
                log.write(f"\n$ {' '.join(command)}\n".encode())
                log.flush()
                proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                        env=_env(), start_new_session=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if httpx.get(self.url + "/ready", timeout=2.0).status_code == 200:
                        self.proc, self.command = proc, command
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                errors.append(f"{command[:4]}: not ready after {timeout:.0f} s")
            else:
                errors.append(f"{command[:4]}: exited with status {proc.returncode}")
        raise LoadSetupError(f"could not start the server ({'; '.join(errors)}); see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, so whatever survives was on disk when the write was acknowledged."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def cpu_seconds(self) -> float | None:
        if self.proc is None:
            return None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [env.get("PYTHONPATH")])])
    return env


# ----------------------------------------------------------------------------- load clients


@dataclass
class ClientState:
    """One client's measurements and the writes the server acknowledged to it (it alone touches its ids)."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    busy: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    error_samples: list[dict[str, Any]] = field(default_factory=list)
    live: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> acknowledged (title, text)
    deleted: set[str] = field(default_factory=set)
    uncertain: set[str] = field(default_factory=set)  # outcome unknown (exception or error reply): not checked
    docs_added: int = 0


class LoadClient:
    def __init__(self, number: int, url: str, args: argparse.Namespace, queries: list[str],
                 texts: list[dict[str, Any]]) -> None:
        self.number = number
        self.args = args
        self.queries = queries
        self.texts = texts
        self.rng = random.Random(args.seed * 1000 + number)
        self.http = httpx.Client(base_url=url, timeout=args.timeout)
        self.state = ClientState()
        self._seq = 0

    def run(self, deadline: float) -> ClientState:
        try:
            while time.monotonic() < deadline:
                if self.rng.random() < self.args.write_ratio:
                    self.write()
                else:
                    self.search()
        finally:
            self.http.close()
        return self.state

    # -- operations
    def search(self) -> None:
        mode = self.rng.choice(self.args.modes)
        body = {"query": self.rng.choice(self.queries), "k": self.args.k, "mode": mode}
        response = self._request(f"search:{mode}", "POST", "/api/search", json=body)
        if response is None:
            return
        try:
            hits = response.json().get("hits")
        except ValueError:
            hits = None
        if not isinstance(hits, list):
            self._error(f"search:{mode}", "response without a hits list", response)

    def write(self) -> None:
        r = self.rng.random()
        if self.state.live and r < 0.15:
            self.update(self.rng.choice(sorted(self.state.live)))
        elif self.state.live and r < 0.30:
            self.delete(self.rng.choice(sorted(self.state.live)))
        else:
            self.add()

    def _new_doc(self, doc_id: str, version: int) -> dict[str, Any]:
        base = self.rng.choice(self.texts)
        # A unique marker word makes the document findable by search in verification.
        marker = "loadmark" + doc_id.replace("-", "x")
        return {"id": doc_id, "title": f"{marker} v{version} {base['title']}", "text": base["text"],
                "metadata": {"client": self.number, "version": version}}

    def add(self) -> None:
        docs = []
        for _ in range(self.args.batch):
            self._seq += 1
            docs.append(self._new_doc(f"load-{self.number}-{self._seq}", 0))
        response = self._request("add", "POST", "/api/documents", json={"documents": docs})
        if response is None:
            self.state.uncertain.update(d["id"] for d in docs)
            return
        for d in docs:
            self.state.live[d["id"]] = (d["title"], d["text"])
        self.state.docs_added += len(docs)

    def update(self, doc_id: str) -> None:
        version = int(self.state.live[doc_id][0].split()[1][1:]) + 1
        doc = self._new_doc(doc_id, version)
        del doc["id"]
        response = self._request("update", "PUT", f"/api/documents/{doc_id}", json=doc)
        if response is None:
            del self.state.live[doc_id]
            self.state.uncertain.add(doc_id)
        else:
            self.state.live[doc_id] = (doc["title"], doc["text"])

    def delete(self, doc_id: str) -> None:
        response = self._request("delete", "DELETE", f"/api/documents/{doc_id}")
        del self.state.live[doc_id]
        if response is None:
            self.state.uncertain.add(doc_id)
        else:
            self.state.deleted.add(doc_id)

    # -- plumbing
    def _request(self, op: str, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """The 2xx response, or None after recording an error. 409 writer_busy is retried, not an error."""
        started = time.perf_counter()
        for attempt in range(BUSY_RETRIES):
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                self._error(op, f"{type(exc).__name__}: {exc}", None)
                return None
            if response.status_code == 409 and _code(response) == "writer_busy":
                self.state.busy[op] += 1
                time.sleep(min(0.5, 0.02 * (attempt + 1)))
                continue
            if 200 <= response.status_code < 300:
                self.state.latencies[op].append(time.perf_counter() - started)
                return response
            self._error(op, f"HTTP {response.status_code}", response)
            return None
        self._error(op, f"still writer_busy after {BUSY_RETRIES} attempts", None)
        return None

    def _error(self, op: str, what: str, response: httpx.Response | None) -> None:
        self.state.errors[op] += 1
        if len(self.state.error_samples) < 10:
            self.state.error_samples.append({"client": self.number, "op": op, "error": what,
                                             "body": response.text[:300] if response is not None else None})


def _code(response: httpx.Response) -> str | None:
    try:
        return response.json()["error"]["code"]  # type: ignore[no-any-return]
    except (ValueError, KeyError, TypeError):
        return None


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None, "max_ms": None}
    ordered = sorted(values)

    def pick(q: float) -> float:  # nearest-rank percentile
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] * 1000

    return {"p50_ms": pick(0.50), "p95_ms": pick(0.95), "p99_ms": pick(0.99),
            "mean_ms": sum(ordered) / len(ordered) * 1000, "max_ms": ordered[-1] * 1000}


# ----------------------------------------------------------------------------- verification


def _chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def verify(url: str, live: dict[str, tuple[str, str]], deleted: set[str], base_ids: list[str],
           expected_count: int | None, rng: random.Random, workers: int = 4) -> dict[str, Any]:
    """Every acknowledged live id readable with its acknowledged content, every deleted id gone, a sample of
    live ids findable by search, and the live document count as expected (when no write outcome is unknown)."""
    problems: list[str] = []
    lock = threading.Lock()
    counts = {"missing": 0, "stale": 0, "resurrected": 0, "unsearchable": 0, "base_missing": 0}

    def note(kind: str, detail: str) -> None:
        with lock:
            counts[kind] += 1
            if len(problems) < 20:
                problems.append(f"{kind}: {detail}")

    def check(batch: list[tuple[str, str, tuple[str, str] | None]]) -> None:
        with httpx.Client(base_url=url, timeout=60.0) as http:
            for kind, doc_id, want in batch:
                response = http.get(f"/api/documents/{doc_id}")
                if kind == "deleted":
                    if response.status_code != 404:
                        note("resurrected", f"{doc_id} -> HTTP {response.status_code}")
                elif response.status_code != 200:
                    note("base_missing" if kind == "base" else "missing", f"{doc_id} -> HTTP {response.status_code}")
                elif want is not None and (response.json().get("title"), response.json().get("text")) != want:
                    note("stale", f"{doc_id}: content differs from the acknowledged write")
                if kind == "search":
                    hits = http.post("/api/search", json={"query": want[0].split()[0] if want else doc_id,
                                                          "k": 3, "mode": "bm25"}).json().get("hits", [])
                    if doc_id not in [h.get("id") for h in hits]:
                        note("unsearchable", f"{doc_id} not found by its marker word")

    sample = rng.sample(sorted(live), min(VERIFY_SEARCH_SAMPLE, len(live)))
    base_sample = rng.sample(base_ids, min(200, len(base_ids)))
    Task = tuple[str, str, tuple[str, str] | None]
    tasks: list[Task] = [("live", i, v) for i, v in live.items()]
    tasks += [("deleted", i, None) for i in sorted(deleted)]
    tasks += [("search", i, live[i]) for i in sample]
    tasks += [("base", i, None) for i in base_sample]
    rng.shuffle(tasks)
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(check, _chunks(tasks, max(1, len(tasks) // (workers * 4) + 1))))
    documents = httpx.get(url + "/ready", timeout=30.0).json().get("documents")
    count_ok = None if expected_count is None else documents == expected_count
    if count_ok is False:
        problems.append(f"count: server reports {documents} documents, expected {expected_count}")
    return {"checked_live": len(live), "checked_deleted": len(deleted), "checked_search": len(sample),
            "checked_base": len(base_sample), **counts, "documents": documents, "expected_documents": expected_count,
            "count_ok": count_ok, "ok": not any(counts.values()) and count_ok is not False,
            "problems": problems, "seconds": round(time.perf_counter() - started, 2)}


# ----------------------------------------------------------------------------- main


def machine() -> dict[str, Any]:
    from benchmarks.run_bm25 import machine_info

    info = machine_info(sys.executable)
    info["packages"] = _versions()
    return info


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "scifact",
                   help="BEIR folder with corpus.jsonl and queries.jsonl (default: ../shared/data/scifact)")
    p.add_argument("--limit", type=int, help="index only the first N corpus documents")
    p.add_argument("--clients", type=int, default=16, help=f"concurrent clients (default 16, at most {MAX_CLIENTS})")
    p.add_argument("--seconds", type=float, default=30.0, help=f"load duration (default 30, at most {MAX_SECONDS:g})")
    p.add_argument("--write-ratio", type=float, default=0.1, help="share of operations that write (default 0.1)")
    p.add_argument("--batch", type=int, default=10, help="documents per POST /api/documents (default 10)")
    p.add_argument("--modes", default="bm25", help="comma-separated search modes (default bm25; dense/hybrid build "
                   "a MiniLM dense index first)")
    p.add_argument("-k", "--k", type=int, default=10, help="hits per search (default 10)")
    p.add_argument("--timeout", type=float, default=60.0, help="per-request timeout in seconds (default 60)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--work", type=Path, default=REPO / "benchmarks" / "work" / "load",
                   help="folder for the collection and server log (default benchmarks/work/load)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "load.json")
    args = p.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    problems = []
    if not 1 <= args.clients <= MAX_CLIENTS:
        problems.append(f"--clients must be 1..{MAX_CLIENTS}")
    if not 0 < args.seconds <= MAX_SECONDS:
        problems.append(f"--seconds must be in (0, {MAX_SECONDS:g}]")
    if not 0.0 <= args.write_ratio <= 1.0:
        problems.append("--write-ratio must be in [0, 1]")
    if not 1 <= args.batch <= MAX_BATCH:
        problems.append(f"--batch must be 1..{MAX_BATCH}")
    if not set(args.modes) <= {"bm25", "dense", "hybrid"} or not args.modes:
        problems.append("--modes must be a comma-separated subset of bm25,dense,hybrid")
    if args.limit is not None and args.limit < 1:
        problems.append("--limit must be positive")
    if problems:
        p.error("; ".join(problems))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    corpus, queries_path = args.data / "corpus.jsonl", args.data / "queries.jsonl"
    if not corpus.is_file() or not queries_path.is_file():
        raise LoadSetupError(f"{args.data} needs corpus.jsonl and queries.jsonl (a BEIR folder)")
    docs = read_corpus(corpus, args.limit)
    queries = read_queries(queries_path)
    args.work.mkdir(parents=True, exist_ok=True)
    collection = args.work / "collection"
    dense = bool({"dense", "hybrid"} & set(args.modes))
    logger.info("building a collection of %d documents at %s%s", len(docs), collection, " (with MiniLM)" * dense)
    build_seconds = build_collection(collection, docs, dense)

    log_path = args.work / "server.log"
    log_path.unlink(missing_ok=True)
    server = Server(collection, log_path)
    try:
        server.start()
        logger.info("server up: %s (%s)", server.url, " ".join(server.command or [])[:120])
        with httpx.Client(base_url=server.url, timeout=120.0) as http:  # warm-up: load retrievers and models
            for mode in args.modes:
                http.post("/api/search", json={"query": queries[0], "k": args.k, "mode": mode}).raise_for_status()
        cpu_before = server.cpu_seconds()
        client_cpu_before = os.times()
        clients = [LoadClient(i, server.url, args, queries, docs) for i in range(args.clients)]
        logger.info("running %d clients for %g s (write ratio %g, modes %s)", args.clients, args.seconds,
                    args.write_ratio, ",".join(args.modes))
        started = time.monotonic()
        deadline = started + args.seconds
        with ThreadPoolExecutor(args.clients) as pool:
            states = list(pool.map(lambda c: c.run(deadline), clients))
        elapsed = time.monotonic() - started
        server_cpu = (server.cpu_seconds() or 0.0) - (cpu_before or 0.0) if cpu_before is not None else None
        client_cpu = sum(os.times()[:2]) - sum(client_cpu_before[:2])
        stats = httpx.get(server.url + "/api/stats", timeout=30.0)
        server_stats = stats.json() if stats.status_code == 200 else {"status": stats.status_code}

        live: dict[str, tuple[str, str]] = {}
        deleted: set[str] = set()
        uncertain: set[str] = set()
        for s in states:
            live.update(s.live)
            deleted |= s.deleted
            uncertain |= s.uncertain
        expected = len(docs) + len(live) if not uncertain else None
        rng = random.Random(args.seed)
        base_ids = [d["id"] for d in docs]
        logger.info("verifying %d live and %d deleted ids on the running server", len(live), len(deleted))
        before = verify(server.url, live, deleted, base_ids, expected, rng)
        logger.info("killing the server (SIGKILL) and starting a new one")
        server.kill()
        server.start()
        after = verify(server.url, live, deleted, base_ids, expected, rng)
    finally:
        server.stop()

    operations: dict[str, dict[str, Any]] = {}
    for op in sorted({op for s in states for op in (*s.latencies, *s.errors, *s.busy)}):
        lat = [x for s in states for x in s.latencies.get(op, [])]
        operations[op] = {"ok": len(lat), "errors": sum(s.errors.get(op, 0) for s in states),
                          "writer_busy": sum(s.busy.get(op, 0) for s in states),
                          "per_second": len(lat) / elapsed, **percentiles(lat)}
    total_ok = sum(o["ok"] for o in operations.values())
    errors = sum(o["errors"] for o in operations.values())
    result = {
        "benchmark": "load",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "parameters": {"clients": args.clients, "seconds": args.seconds, "write_ratio": args.write_ratio,
                       "batch": args.batch, "modes": args.modes, "k": args.k, "limit": args.limit,
                       "seed": args.seed, "timeout": args.timeout, "data": str(args.data),
                       "write_mix": "adds 70%, updates 15%, deletes 15% (of own acknowledged ids) of writes"},
        "collection": {"documents": len(docs), "queries": len(queries), "build_seconds": round(build_seconds, 2),
                       "dense": dense},
        "server_command": [Path(c).name if i == 0 else c for i, c in enumerate(server.command or [])],
        "elapsed_s": elapsed,
        "operations": operations,
        "totals": {"ok": total_ok, "per_second": total_ok / elapsed, "errors": errors,
                   "writer_busy": sum(o["writer_busy"] for o in operations.values()),
                   "docs_added": sum(s.docs_added for s in states), "live_added": len(live),
                   "deleted": len(deleted), "uncertain": len(uncertain),
                   "server_cpu_s": server_cpu, "client_cpu_s": client_cpu},
        "error_samples": [e for s in states for e in s.error_samples][:20],
        "verification": {"before_restart": before, "after_restart": after, "restart": "SIGKILL"},
        "server_stats": server_stats,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(render(result))
    print(f"\nresults: {args.out}")
    return 0 if errors == 0 and before["ok"] and after["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
