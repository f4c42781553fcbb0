"""The HTTP API on a sharded collection (shards in this process): /api/search, /api/ask, /api/documents, /api/info
and /api/stats answer as they do for the same documents in one plain collection; writes go through the sharded
writer; what a sharded collection cannot do is a clear 4xx. Served in-process (TestClient) and over loopback."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
import httpx
from fastapi.testclient import TestClient
from http_helpers import RAG_DOCS, ServerThread
from toy_encoder import ToyEncoder  # noqa: F401  (registers the "toy" encoder backend)

from retrievekit import Collection
from retrievekit.core.errors import CollectionError
from retrievekit.serve import ServeError
from retrievekit.serve.app import create_app, run
from retrievekit.sharding import ShardedCollection

DOCS = [
    {"id": f"d{i}", "title": title, "text": text, "metadata": {"kind": kind, "year": 2010 + i}}
    for i, (title, text, kind) in enumerate([
        ("Cats", "cats purr and sleep all day <b>soft</b>", "animal"),
        ("Dogs", "dogs bark at the mailman and chase cats", "animal"),
        ("Python", "python is a programming language with a garbage collector", "code"),
        ("Rust", "rust is a systems programming language without a garbage collector", "code"),
        ("Birds", "birds sing while cats watch them from the window", "animal"),
        ("Go", "go is a programming language from google with a garbage collector", "code"),
        ("Fish", "fish swim and cats look at the fish", "animal"),
        ("Java", "java runs on a virtual machine with a garbage collector", "code"),
        ("Mice", "mice run from cats and dogs", "animal"),
        ("C", "c is a systems programming language", "code"),
    ])
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("serve")
    plain = Collection.create(root / "plain", dense="toy:bow")
    plain.add(DOCS)
    with ShardedCollection.create(root / "sharded", 3, dense="toy:bow") as sharded:
        sharded.add(DOCS)
        assert all(s["documents"] for s in sharded.info()["shards"])  # every shard serves part of the documents
    return plain.path, root / "sharded"


@pytest.fixture(scope="module")
def clients(folders: tuple[Path, Path]) -> Any:
    plain, sharded = folders
    apps = create_app(plain), create_app(sharded)
    yield TestClient(apps[0]), TestClient(apps[1])
    for app in apps:
        app.state.server.close()


def ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def same_hits(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert [h["id"] for h in got["hits"]] == [h["id"] for h in want["hits"]]
    for g, w in zip(got["hits"], want["hits"]):
        assert g["score"] == pytest.approx(w["score"], abs=1e-6)
        assert {k: v for k, v in g.items() if k != "score"} == {k: v for k, v in w.items() if k != "score"}
    assert {k: v for k, v in got.items() if k not in ("hits", "took_ms")} == {
        k: v for k, v in want.items() if k not in ("hits", "took_ms")}


@pytest.mark.parametrize("body", [
    {"query": "cats"},
    {"query": "programming language garbage collector", "mode": "bm25", "k": 4},
    {"query": "programming language garbage collector", "mode": "bm25", "k": 3, "offset": 2},
    {"query": "cats dogs", "mode": "dense", "k": 5},
    {"query": "cats dogs", "mode": "hybrid", "k": 10},
    {"query": "garbage collector", "mode": "bm25", "filter": {"year": {"gte": 2013}}},
    {"query": "cats", "mode": "bm25", "filter": {"kind": "animal"}, "highlight": False},
])
def test_search_answers_as_the_plain_collection(clients, body) -> None:
    plain, sharded = clients
    want = ok(plain.post("/api/search", json=body))
    assert want["hits"], "the comparison must be of some hits"
    same_hits(ok(sharded.post("/api/search", json=body)), want)


def test_get_search_and_documents_answer_as_the_plain_collection(clients) -> None:
    plain, sharded = clients
    params = {"q": "cats window", "k": 3, "mode": "bm25"}
    same_hits(ok(sharded.get("/api/search", params=params)), ok(plain.get("/api/search", params=params)))
    for doc_id in ("d0", "d7"):
        assert ok(sharded.get(f"/api/documents/{doc_id}")) == ok(plain.get(f"/api/documents/{doc_id}"))
    r = sharded.get("/api/documents/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_info_and_stats(clients) -> None:
    plain, sharded = clients
    got, want = ok(sharded.get("/api/info")), ok(plain.get("/api/info"))
    assert got["modes"] == want["modes"] == ["bm25", "dense", "hybrid"]
    assert got["metadata_fields"] == want["metadata_fields"] == ["kind", "year"]  # no internal field shown
    assert got["rerankers"] == want["rerankers"] and got["ask"] == want["ask"]
    collection = got["collection"]
    assert collection["documents"] == len(DOCS) and len(collection["shards"]) == 3
    assert sum(s["documents"] for s in collection["shards"]) == len(DOCS)
    stats = ok(sharded.get("/api/stats"))
    assert stats["documents"] == len(DOCS) and stats["segments"] == 3
    assert ok(sharded.get("/ready")) == {"status": "ready", "documents": len(DOCS)}


def test_bad_requests_are_the_same_4xx(clients) -> None:
    plain, sharded = clients
    for body, status, code in (({"query": "x", "filter": {"nope": 1}}, 400, "bad_filter"),
                               ({"query": "x", "filter": {"year": "old"}}, 400, "bad_filter"),
                               ({"query": "x", "mode": "sparse"}, 400, "mode_unavailable")):
        got, want = sharded.post("/api/search", json=body), plain.post("/api/search", json=body)
        assert (got.status_code, got.json()["error"]["code"]) == (want.status_code, want.json()["error"]["code"]) \
            == (status, code)
        assert "_rk_seq" not in got.json()["error"]["message"]


def test_ask_without_a_generator_selects_the_same_contexts(clients) -> None:
    plain, sharded = clients
    body = {"question": "what do cats do all day", "selector": "top:3"}
    got, want = ok(sharded.post("/api/ask", json=body)), ok(plain.post("/api/ask", json=body))
    assert [(c["doc_id"], c["text"]) for c in got["contexts"]] == [(c["doc_id"], c["text"]) for c in want["contexts"]]
    assert len(got["contexts"]) == 3 and got["answer"] == want["answer"] == ""


def test_writes_go_through_the_sharded_writer(tmp_path) -> None:
    with ShardedCollection.create(tmp_path / "sharded", 3) as col:
        col.add(DOCS)
    app = create_app(tmp_path / "sharded")
    client = TestClient(app)
    new = [{"id": f"new-{i}", "title": "Owls", "text": "owls hunt mice at night"} for i in range(6)]
    assert ok(client.post("/api/documents", json={"documents": new})) == {"added": 6, "documents": len(DOCS) + 6}
    hits = ok(client.post("/api/search", json={"query": "owls", "k": 10}))["hits"]
    assert sorted(h["id"] for h in hits) == [d["id"] for d in new]
    assert ok(client.put("/api/documents/d1", json={"title": "Hounds"})) == {"updated": 1}
    assert ok(client.get("/api/documents/d1"))["title"] == "Hounds"
    assert ok(client.delete("/api/documents/new-0")) == {"deleted": 1}
    r = client.delete("/api/documents/new-0")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    app.state.server.close()
    with ShardedCollection(tmp_path / "sharded") as col:  # committed: another process sees the writes
        assert len(col) == len(DOCS) + 5 and col.get("d1").title == "Hounds"
        assert sorted(s["documents"] for s in col.info()["shards"]) != [0, 0, len(DOCS) + 5]


def test_a_sharded_passage_collection_refuses_title_only_updates_clearly(tmp_path) -> None:
    with ShardedCollection.create(tmp_path / "sharded", 2, passages="sentences:8") as col:
        col.add(RAG_DOCS)
    client = TestClient(create_app(tmp_path / "sharded"))
    doc = ok(client.get("/api/documents/bm25"))
    assert [p["id"] for p in doc["passages"]] == [f"bm25#{i}" for i in range(len(doc["passages"]))]
    assert len(doc["passages"]) > 1
    r = client.put("/api/documents/bm25", json={"title": "Okapi"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported"
    assert "sharded passage collection" in r.json()["error"]["message"]
    assert ok(client.put("/api/documents/bm25", json={"title": "Okapi", "text": doc["text"]})) == {"updated": 1}
    assert ok(client.get("/api/documents/bm25"))["title"] == "Okapi"
    client.app.state.server.close()  # type: ignore[attr-defined]


def test_served_over_loopback(folders) -> None:
    plain, sharded = folders
    body = {"query": "programming language", "mode": "hybrid", "k": 6}
    answers = []
    for folder in (plain, sharded):
        app = create_app(folder)
        with ServerThread(app) as server:
            assert server.url.startswith("http://127.0.0.1:")
            answers.append(httpx.post(f"{server.url}/api/search", json=body, timeout=30))
            info = httpx.get(f"{server.url}/api/info", timeout=30)
            assert info.status_code == 200 and info.json()["collection"]["documents"] == len(DOCS)
        app.state.server.close()
    same_hits(ok(answers[1]), ok(answers[0]))


def test_run_and_the_cli_accept_a_sharded_folder(folders, monkeypatch, capsys) -> None:
    plain, sharded = folders
    seen: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: seen.update(kw, app=app))
    run(sharded, port=8123)
    assert seen["port"] == 8123
    out = capsys.readouterr().out
    assert f"serving {sharded}" in out and "retrievekit mcp" not in out  # MCP does not serve sharded collections
    with pytest.raises(ServeError, match="not a sharded collection"):
        run(plain, ray="local")
    with pytest.raises(ServeError, match="nor a sharded collection's cluster.json"):
        run(plain.parent / "missing")

    from retrievekit.cli import serve as cli

    parser = argparse.ArgumentParser()
    cli.add_serve(parser.add_subparsers())
    captured: dict[str, Any] = {}
    monkeypatch.setattr("retrievekit.serve.app.run", lambda *a, **kw: captured.update(kw, collection=a[0]))
    assert cli.run_serve(parser.parse_args(["serve", str(sharded), "--ray", "127.0.0.1:6379"])) == 0
    assert captured["ray"] == "127.0.0.1:6379" and captured["collection"] == str(sharded)


def test_mcp_refuses_a_sharded_collection_by_name(folders) -> None:
    pytest.importorskip("mcp")
    from retrievekit.serve.mcp import CollectionTools

    with pytest.raises(CollectionError, match="is a sharded collection: the MCP server serves plain collections"):
        CollectionTools(folders[1])
