"""Crash safety through the server: `retrievekit serve` killed with SIGKILL while documents are being posted loses
no acknowledged document, never half a batch, and the collection opens (and serves again) cleanly."""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from retrievekit import Collection  # noqa: E402

ROUNDS = 3
BATCH = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_command(path: Path, port: int) -> list[str]:
    from retrievekit.cli.main import build_parser

    registered = any("serve" in a.choices for a in build_parser()._actions
                     if isinstance(a, argparse._SubParsersAction))
    # `python -m retrievekit serve` once cli/main.py registers the command; the same command's own entry point before
    base = ["-m", "retrievekit", "serve"] if registered else ["-m", "retrievekit.cli.serve"]
    return [sys.executable, *base, str(path), "--port", str(port)]


class Server:
    def __init__(self, path: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "ab")  # noqa: SIM115  (a pipe nobody reads would block the server)
        self.proc = subprocess.Popen(serve_command(path, self.port), stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(30)
        self.log.close()


def batch_ids(round_: int, b: int) -> list[str]:
    return [f"r{round_}-b{b}-{j}" for j in range(BATCH)]


def test_sigkill_while_posting_loses_no_acknowledged_document(tmp_path: Path) -> None:
    path = tmp_path / "col"
    Collection.create(path).add([{"id": "seed", "text": "present from the start"}])
    rng = random.Random(1234)
    acknowledged: list[str] = []
    attempted: list[list[str]] = []
    log = tmp_path / "server.log"

    for round_ in range(ROUNDS):
        server = Server(path, log)
        acks = threading.Semaphore(0)
        kill_after = rng.randint(3, 10)

        def killer(server: Server = server, acks: threading.Semaphore = acks, n: int = kill_after) -> None:
            for _ in range(n):
                acks.acquire(timeout=60)
            time.sleep(rng.uniform(0, 0.05))  # lands during a later request, often inside its commit
            server.proc.kill()

        thread = threading.Thread(target=killer)
        thread.start()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for b in range(10_000):
                ids = batch_ids(round_, b)
                attempted.append(ids)
                docs = [{"id": i, "text": f"crash round {round_} batch {b} words " * 10} for i in ids]
                try:
                    r = http.post("/api/documents", json={"documents": docs})
                except httpx.TransportError:
                    break  # killed
                assert r.status_code == 200, r.text
                acknowledged.extend(ids)
                acks.release()
        thread.join(60)
        server.stop()
        assert server.proc.returncode == -signal.SIGKILL

        col = Collection(path)  # opens cleanly after the kill
        present = {i for ids in attempted for i in ids if col.get(i) is not None}
        missing = [i for i in acknowledged if i not in present]
        assert not missing, f"acknowledged but lost: {missing[:5]}"
        for ids in attempted:
            assert {i in present for i in ids} in ({True}, {False}), f"half a batch committed: {ids[0]}"
        assert len(col) == 1 + len(present)

    assert len(acknowledged) >= ROUNDS * 3 * BATCH
    server = Server(path, log)  # the lock died with the killed process: the restarted server can write
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            ready = http.get("/ready").json()
            assert ready["status"] == "ready" and ready["documents"] == len(Collection(path))
            r = http.post("/api/documents", json={"documents": [{"id": "after", "text": "written after crashes"}]})
            assert r.status_code == 200, r.text
            assert http.get("/api/documents/after").json()["text"] == "written after crashes"
            some = acknowledged[rng.randrange(len(acknowledged))]
            assert http.get(f"/api/documents/{some}").status_code == 200
    finally:
        server.stop()
    assert server.proc.returncode in (0, -signal.SIGTERM)
