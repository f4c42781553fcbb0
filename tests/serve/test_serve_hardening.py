"""Hardening found by outside probing: passage collections addressed by document id (D10), slow generations that
must not starve the server (D12), idle and trickling connections (slowloris), no server paths or upstream details
in error answers, the startup hints and the one search parameter name."""

from __future__ import annotations

import argparse
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
import httpx
import uvicorn
from fastapi.testclient import TestClient
from http_helpers import ServerThread

from retrievekit import Collection
from retrievekit.rag.generators.base import Generator
from retrievekit.serve import state as serve_state
from retrievekit.serve.app import create_app, run, startup_message
from retrievekit.serve.protocol import HeaderTimeoutProtocol

TEXT = ("BM25 is a ranking function.  It was developed by Robertson.\n\nIt uses term frequency and document "
        "length.  Many systems use it.")


@pytest.fixture
def passages_path(tmp_path: Path) -> Path:
    col = Collection.create(tmp_path / "passages", passages="sentences:8")
    col.add([{"id": "x", "title": "BM25", "text": TEXT, "metadata": {"year": 1994}},
             {"id": "y", "title": "Other", "text": "Dense retrieval encodes text.  It uses vectors."}])
    return col.path


# -- D10: passage collections over HTTP -------------------------------------------------------------------------
def test_passage_collection_documents_are_addressed_by_document_id(passages_path: Path) -> None:
    # Regression: PUT /api/documents/x%230 answered {"updated": 1}, left x#0 unchanged and added x#0#0; GET x was 404.
    client = TestClient(create_app(passages_path))
    before = sorted(Collection(passages_path).snapshot().id_map())
    doc = client.get("/api/documents/x").json()
    assert (doc["id"], doc["title"], doc["metadata"]) == ("x", "BM25", {"year": 1994})
    assert [p["id"] for p in doc["passages"]] == ["x#0", "x#1", "x#2", "x#3"]
    for p in doc["passages"]:  # the reassembled text keeps every passage at its offsets
        assert client.get(f"/api/documents/{p['id'].replace('#', '%23')}").json()["text"] == doc["text"][
            p["start"]:p["end"]]
    assert doc["text"].split() == TEXT.split()

    for method, kwargs in [("put", {"json": {"title": "T"}}), ("delete", {})]:
        r = getattr(client, method)("/api/documents/x%230", **kwargs)
        assert r.status_code == 409 and r.json()["error"]["code"] == "read_only"
        assert "address the document 'x'" in r.json()["error"]["message"]
    r = client.post("/api/documents", json={"documents": [{"id": "x#1", "text": "hijack"}]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "read_only"
    assert sorted(Collection(passages_path).snapshot().id_map()) == before  # nothing changed

    # metadata only: the passages keep their text and spans
    assert client.put("/api/documents/x", json={"title": "New", "metadata": {"year": 2000}}).json() == {"updated": 1}
    after = client.get("/api/documents/x").json()
    assert (after["title"], after["metadata"], after["text"]) == ("New", {"year": 2000}, doc["text"])
    assert client.get("/api/documents/x%230").json()["text"] == "BM25 is a ranking function."
    # a new text is chunked again; the old passages go
    assert client.put("/api/documents/x", json={"text": "Short one. Second sentence here."}).status_code == 200
    assert [p["id"] for p in client.get("/api/documents/x").json()["passages"]] == ["x#0"]
    assert "x#0#0" not in Collection(passages_path)
    assert client.delete("/api/documents/x").json() == {"deleted": 1}
    assert client.get("/api/documents/x").status_code == 404
    assert sorted(Collection(passages_path).snapshot().id_map()) == ["y#0", "y#1"]


def test_mcp_get_document_reassembles_a_passage_collection_document(passages_path: Path) -> None:
    pytest.importorskip("mcp")
    from retrievekit.serve.mcp import CollectionTools

    doc = CollectionTools(passages_path).get_document("x")
    assert doc["id"] == "x" and doc["text"].split() == TEXT.split() and len(doc["passages"]) == 4


# -- D12: slow generations never starve searches and health checks ---------------------------------------------
class HangingGenerator(Generator):
    backend, model = "hanging", "hang-1"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = 0

    def generate(self, prompt: Any, **_: Any) -> str:
        self.started += 1
        self.release.wait(60)
        return "done [1]"


def test_waiting_questions_hold_no_worker_and_the_queue_is_bounded(passages_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: 45 concurrent asks against a hanging generator made /api/search and /health unresponsive: each
    # question waited for a generation slot in a worker thread.
    monkeypatch.setattr(serve_state, "MAX_WAITING_GENERATIONS", 8)
    generator = HangingGenerator()
    statuses: list[tuple[int, str | None]] = []

    def ask(url: str) -> None:
        r = httpx.post(f"{url}/api/ask", json={"question": "who developed BM25"}, timeout=90)
        statuses.append((r.status_code, r.headers.get("retry-after")))

    with ServerThread(create_app(passages_path, generator=generator)) as server:
        threads = [threading.Thread(target=ask, args=(server.url,)) for _ in range(45)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while (generator.started < 2 or len(statuses) < 35) and time.monotonic() < deadline:
            time.sleep(0.05)
        # 2 generate, 8 wait, the other 35 are told at once to come back later
        assert generator.started == 2 and len(statuses) == 35
        assert all(s == (503, str(serve_state.RETRY_AFTER_SECONDS)) for s in statuses)
        for _ in range(5):  # more requests than the thread pool could hold if waiting questions held threads
            assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
            assert httpx.get(f"{server.url}/api/search", params={"query": "BM25"}, timeout=10).status_code == 200
        generator.release.set()
        for t in threads:
            t.join(60)
    assert sorted(s for s, _ in statuses).count(200) == 10


# -- slowloris: idle and trickling connections are closed --------------------------------------------------------
def _closed_by_server(sock: socket.socket, trickle: bytes = b"", limit: float = 15.0) -> bool:
    """Whether the server closes ``sock`` within ``limit`` seconds while it sends ``trickle`` a byte at a time."""
    sock.settimeout(0.2)
    deadline, sent = time.monotonic() + limit, 0
    while time.monotonic() < deadline:
        try:
            if sent < len(trickle):
                sock.sendall(trickle[sent:sent + 1])
                sent += 1
            data = sock.recv(4096)
            if data == b"" or data.startswith(b"HTTP/1.1 408"):
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def test_idle_and_trickling_connections_are_closed(passages_path: Path) -> None:
    # Regression: 50 idle keep-alive connections were held for 60 s; a request head must now arrive in time.
    app = create_app(passages_path)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_keep_alive=1,
                            http=HeaderTimeoutProtocol.with_timeout(0.5), limit_concurrency=64)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        address = sock.getsockname()
        idle = [socket.create_connection(address) for _ in range(20)]
        partial = [socket.create_connection(address) for _ in range(5)]
        for s in partial:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        trickling = socket.create_connection(address)
        kept = socket.create_connection(address)
        kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert kept.recv(4096).startswith(b"HTTP/1.1 200")
        assert all(_closed_by_server(s) for s in idle + partial)
        assert _closed_by_server(trickling, b"GET /health HTTP/1.1\r\nX-Slow: " + b"a" * 200)
        assert _closed_by_server(kept)  # idle after its response
        assert httpx.get(f"http://{address[0]}:{address[1]}/health").status_code == 200  # still serving
        for s in [*idle, *partial, trickling, kept]:
            s.close()
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_run_limits_connections_and_prints_where_to_go(passages_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    run(passages_path, port=8123, header_timeout=7, keep_alive=3, max_connections=100)
    assert issubclass(seen["http"], HeaderTimeoutProtocol) and seen["http"].header_timeout == 7
    assert (seen["timeout_keep_alive"], seen["limit_concurrency"]) == (3, 100)
    out = capsys.readouterr().out
    assert out.strip() == startup_message(passages_path, "127.0.0.1", 8123)
    for hint in ("http://127.0.0.1:8123/ui/", "http://127.0.0.1:8123/docs", f"retrievekit mcp {passages_path}"):
        assert hint in out

    from retrievekit.cli import serve as cli

    parser = argparse.ArgumentParser()
    cli.add_serve(parser.add_subparsers())
    args = parser.parse_args(["serve", str(passages_path), "--header-timeout", "2", "--max-connections", "9"])
    monkeypatch.setattr("retrievekit.serve.app.run", lambda *a, **kw: seen.update(kw))
    cli.run_serve(args)
    assert (seen["header_timeout"], seen["max_connections"], seen["keep_alive"]) == (2.0, 9, 5)


# -- no server paths or upstream details in error answers --------------------------------------------------------
def test_errors_carry_no_server_paths(passages_path: Path, tmp_path: Path) -> None:
    # Regression: /api/eval/latest 404s named the reports folder; a damaged segment's 503 its absolute path.
    client = TestClient(create_app(passages_path, reports=tmp_path / "secret-reports"))
    r = client.get("/api/eval/latest")
    assert r.status_code == 404 and str(tmp_path) not in r.text and "reports folder" in r.text
    for docs in passages_path.glob("seg-*/docs*"):
        docs.unlink()
    r = client.get("/api/documents/y")
    assert r.status_code == 503 and str(tmp_path) not in r.text and "docs.jsonl" in r.text


def test_redact_paths_names_known_folders_and_shortens_others() -> None:
    from retrievekit.serve.redact import redact_paths

    message = "cannot read /srv/data/col/seg-1/docs.jsonl and '/var/lib/other/x/file.bin'; GET /api/x"
    assert redact_paths(message, [("/srv/data/col", "<collection>")]) == (
        "cannot read <collection>/seg-1/docs.jsonl and '…/file.bin'; GET /api/x")


def test_mcp_errors_carry_no_server_paths(passages_path: Path) -> None:
    pytest.importorskip("mcp")
    import anyio

    from retrievekit.serve.mcp import build_server

    server = build_server(passages_path)
    shutil.rmtree(passages_path)  # the collection removed under a running server

    async def call() -> str:
        try:
            result = await server.call_tool("get_document", {"id": "y"})
        except Exception as exc:
            return str(exc)
        return str(result)

    message = anyio.run(call)
    assert "cannot be read" in message and str(passages_path.parent) not in message


# -- one search parameter name ------------------------------------------------------------------------------------
def test_search_takes_query_everywhere_with_q_as_alias(passages_path: Path) -> None:
    client = TestClient(create_app(passages_path))
    ids = [[h["id"] for h in client.get("/api/search", params={"query": "Robertson"}).json()["hits"]],
           [h["id"] for h in client.get("/api/search", params={"q": "Robertson"}).json()["hits"]],
           [h["id"] for h in client.post("/api/search", json={"query": "Robertson"}).json()["hits"]],
           [h["id"] for h in client.post("/api/search", json={"q": "Robertson"}).json()["hits"]]]
    assert ids[0] == ["x#1"] and all(i == ids[0] for i in ids)
    assert client.get("/api/search").status_code == 422
    assert client.get("/api/search", params={"query": "a", "q": "b"}).status_code == 400
    params = {p["name"]: p for p in client.get("/openapi.json").json()["paths"]["/api/search"]["get"]["parameters"]}
    assert "alias" in params["q"]["description"] and "query" in params
