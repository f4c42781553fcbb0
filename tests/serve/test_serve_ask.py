"""POST /api/ask: answers with citations over HTTP, contexts-only serving, settings, errors, the generator's
lifecycle (built once, lazily, thread-safe) and a real OpenAI-compatible endpoint on a loopback port."""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
import httpx
from fastapi.testclient import TestClient
from http_helpers import RAG_DOCS, ScriptedGenerator, ServerThread
from toy_encoder import ToyEncoder  # noqa: F401  (registers the "toy" backend)

from retrievekit import Collection
from retrievekit.rag.generators.base import GenerationError, Generator, GeneratorSpecError, register_generator
from retrievekit.rag.generators.openai_server import create_openai_app
from retrievekit.serve import ServeError
from retrievekit.serve.app import create_app, run

KEY = "ask-key"
DOCS = RAG_DOCS
TEXT = {d["id"]: d["text"] for d in DOCS}


@pytest.fixture
def passages_path(tmp_path: Path) -> Path:
    col = Collection.create(tmp_path / "passages", passages="sentences:12")
    col.add(DOCS)
    return col.path


@pytest.fixture
def dense_path(tmp_path: Path) -> Path:
    col = Collection.create(tmp_path / "dense", dense="toy:bow")
    col.add(DOCS)
    return col.path


def ask(client: TestClient, status: int = 200, **body: Any) -> dict[str, Any]:
    r = client.post("/api/ask", json=body)
    assert r.status_code == status, r.text
    return r.json()  # type: ignore[no-any-return]


def assert_error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["message"]  # type: ignore[no-any-return]


# -- answers ----------------------------------------------------------------------------------------------------
def test_citations_map_to_the_cited_contexts_document_and_offsets(passages_path: Path) -> None:
    gen = ScriptedGenerator("Robertson and Sparck Jones developed it [1]. Not a source: [9].")
    client = TestClient(create_app(passages_path, generator=gen))
    out = ask(client, question="who developed BM25", selector="top:3", max_tokens=40)
    assert out["answer"] == gen.answer and not out["unknown"]
    first = out["contexts"][0]
    assert first["number"] == 1 and first["doc_id"] == "bm25" and "Robertson" in first["text"]
    assert TEXT["bm25"][first["start"]:first["end"]] == first["text"]  # offsets point into the document
    assert out["citations"] == [{"number": 1, "passage_id": first["id"], "doc_id": "bm25", "start": first["start"],
                                 "end": first["end"], "spans": None, "location": None}]  # [9] names no context
    assert out["generator"] == gen.config() and out["took_ms"] > 0 and out["context_tokens"] > 0
    assert out["queries"] == ["who developed BM25"] and set(out["timings"]) == {"retrieve", "select", "generate"}
    assert len(gen.calls) == 1 and gen.calls[0]["max_tokens"] == 40
    assert "<data" in gen.calls[0]["prompt"][1]["content"]  # retrieved text goes in marked as data

    again = ask(client, question="who developed BM25", selector="top:3")
    assert again["retrieval_cached"] and again["contexts"] == out["contexts"]
    stats = client.get("/api/stats").json()
    assert stats["requests"]["POST /api/ask"] == 2
    assert stats["ask_latency_ms"]["p50"] > 0 and stats["search_latency_ms"]["p50"] is None


def test_citations_of_code_documents_carry_their_file_lines(tmp_path: Path) -> None:
    source = "import time\n\n\ndef backoff(attempt):\n    return 0.5 * 2 ** attempt\n"
    (tmp_path / "retry.py").write_text(source)
    col = Collection.create(tmp_path / "code")
    col.add([{"id": "retry.py#backoff", "title": "backoff", "text": "def backoff(attempt):\n    return 0.5 * 2 ** "
              "attempt", "metadata": {"path": "retry.py", "start_line": 4, "end_line": 5}}])
    client = TestClient(create_app(col.path, generator=ScriptedGenerator("Exponential backoff [1].")))
    out = ask(client, question="backoff attempt", selector="top:1")
    location = {"path": "retry.py", "start_line": 4, "end_line": 5, "line_spans": None, "page": None,
                "page_end": None, "ref": "retry.py:4-5"}
    assert out["citations"][0]["location"] == location and out["contexts"][0]["location"] == location
    lines = source.splitlines()[location["start_line"] - 1:location["end_line"]]  # type: ignore[operator]
    assert "\n".join(lines) == out["contexts"][0]["text"]
    compressed = ask(client, question="backoff attempt", selector="top:1", compress="lexical:1")["contexts"][0]
    assert compressed["location"]["line_spans"] and compressed["location"]["path"] == "retry.py"


def test_without_a_generator_the_contexts_are_the_answer(passages_path: Path) -> None:
    client = TestClient(create_app(passages_path))
    info = client.get("/api/info").json()["ask"]
    assert info["generator"] is None and info["compressors"] == ["lexical"]
    assert info["defaults"] == {"depth": 20, "selector": "gap+budget:1024", "compress": None, "drop_flagged": False,
                                "max_tokens": 128}
    out = ask(client, question="who developed BM25", selector="top:2")
    assert out["answer"] == "" and out["citations"] == [] and out["generator"] is None
    assert len(out["contexts"]) == 2 and out["contexts"][0]["doc_id"] == "bm25" and not out["unknown"]
    nothing = ask(client, question="quantum chromodynamics")
    assert nothing["contexts"] == [] and nothing["unknown"]


def test_settings_reach_the_pipeline(passages_path: Path) -> None:
    client = TestClient(create_app(passages_path, generator=ScriptedGenerator("It is [1].")))
    assert len(ask(client, question="BM25 ranking", k=1, selector="top:10")["contexts"]) == 1  # "k" = depth
    kept = ask(client, question="BM25 ranking", selector="top:10")["contexts"]
    flagged = [c for c in kept if c["flags"]]
    assert [c["id"] for c in flagged] == ["evil#1"] and flagged[0]["flags"][0].startswith("injection")
    dropped = ask(client, question="BM25 ranking", selector="top:10", drop_flagged=True)["contexts"]
    assert dropped and not any(c["flags"] for c in dropped)
    wiki = ask(client, question="BM25 ranking", selector="top:10", filter={"source": "wiki"})["contexts"]
    assert wiki and {c["doc_id"] for c in wiki} == {"bm25"}
    compressed = ask(client, question="who developed BM25", selector="top:3", compress="lexical:1")["contexts"]
    for c in compressed:
        assert c["spans"] and " ".join(TEXT[c["doc_id"]][s:e] for s, e in c["spans"]) == c["text"]
    assert len(ask(client, question="BM25 ranking", selector="budget:8")["contexts"]) < len(kept)


def test_dense_only_settings_work_with_a_dense_index(dense_path: Path) -> None:
    client = TestClient(create_app(dense_path, generator=ScriptedGenerator("See [2].")))
    assert client.get("/api/info").json()["ask"]["compressors"] == ["lexical", "dense"]
    out = ask(client, question="dense vectors inner product", mode="dense", selector="mmr:2", compress="dense:1")
    assert len(out["contexts"]) == 2 and all(c["spans"] for c in out["contexts"])
    assert [c["number"] for c in out["citations"]] == [2]


def test_bad_settings_are_400_and_nothing_is_generated(passages_path: Path) -> None:
    gen = ScriptedGenerator("unused [1]")
    client = TestClient(create_app(passages_path, generator=gen))
    post = client.post
    assert "choose one of" in assert_error(post("/api/ask", json={"question": "q", "selector": "best:3"}), 400,
                                         "bad_selector")
    assert_error(post("/api/ask", json={"question": "q", "selector": "top:0"}), 400, "bad_selector")
    assert_error(post("/api/ask", json={"question": "q", "selector": "gap:ratio=x"}), 400, "bad_selector")
    assert "dense index" in assert_error(post("/api/ask", json={"question": "q", "selector": "gap+mmr:3"}), 400,
                                         "bad_selector")
    for compress in ("dense", "lexical:abc", "lexical:0", "lexical:1.5", "lexical:nan", "gzip", ""):
        assert_error(post("/api/ask", json={"question": "q", "compress": compress}), 400, "bad_compress")
    assert_error(post("/api/ask", json={"question": "q", "mode": "dense"}), 400, "mode_unavailable")
    assert_error(post("/api/ask", json={"question": "q", "mode": "telepathy"}), 400, "mode_unavailable")
    assert_error(post("/api/ask", json={"question": "q", "filter": {"year": {"zz": 1}}}), 400, "bad_filter")
    assert_error(post("/api/ask", json={"question": "   "}), 400, "bad_request")
    for body in ({"question": ""}, {"question": "q" * 2049}, {"question": "q", "k": 0}, {"question": "q", "k": 101},
                 {"question": "q", "max_tokens": 1025}, {"question": "q", "temperature": 1}, {}):
        assert_error(post("/api/ask", json=body), 422, "validation_error")
    assert_error(post("/api/ask", content=b"{not json", headers={"Content-Type": "application/json"}), 400,
                 "invalid_json")
    assert gen.calls == []


@pytest.mark.parametrize(("failure", "told"), [
    (GenerationError("http://10.0.0.5:8000/v1 answered HTTP 500: /srv/models/x.gguf: boom"), "the generator failed"),
    (RuntimeError("CUDA out of memory"), "the generator failed (RuntimeError)")])
def test_a_failing_generator_is_503_naming_the_kind_of_failure_only(passages_path: Path, failure: Exception, told: str,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    # Regression: the answer echoed the upstream URL and body; now the server log has them, the client the kind.
    client = TestClient(create_app(passages_path, generator=ScriptedGenerator("", fail=failure)))
    message = assert_error(client.post("/api/ask", json={"question": "who developed BM25"}), 503,
                           "generator_unavailable")
    assert message == f"{told}; the server log has the details"
    assert str(failure) in caplog.text
    assert client.get("/health").status_code == 200


def test_the_generator_is_built_once_lazily_and_thread_safely(passages_path: Path) -> None:
    built: list[ScriptedGenerator] = []

    def factory(model: str | None = None, **_: Any) -> Generator:
        time.sleep(0.05)  # a slow load: concurrent first questions must wait for the one load
        built.append(ScriptedGenerator(f"answer of {model} [1]"))
        return built[-1]

    register_generator("test-lazy", factory)
    client = TestClient(create_app(passages_path, generator="test-lazy:m1"))
    assert client.get("/api/info").json()["ask"]["generator"] == {"spec": "test-lazy:m1", "loaded": False}
    assert built == []  # nothing is loaded before the first question
    results: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda: results.append(ask(client, question="who developed BM25")))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len(built[0].calls) == 6
    assert [r["answer"] for r in results] == ["answer of m1 [1]"] * 6
    assert client.get("/api/info").json()["ask"]["generator"] == built[0].config()


def test_a_generator_that_cannot_load_is_503_and_not_retried_per_request(passages_path: Path) -> None:
    attempts: list[str | None] = []

    def factory(model: str | None = None, **_: Any) -> Generator:
        attempts.append(model)
        raise OSError("model file missing")

    register_generator("test-broken", factory)
    client = TestClient(create_app(passages_path, generator="test-broken"))
    for _ in range(2):
        message = assert_error(client.post("/api/ask", json={"question": "BM25"}), 503, "generator_unavailable")
        assert "cannot be loaded" in message and "model file missing" not in message  # the details are logged
    assert attempts == [None]
    assert "cannot be loaded" in client.get("/api/info").json()["ask"]["generator"]["error"]
    assert_error(client.post("/api/ask", json={"question": "q", "selector": "nope"}), 400, "bad_selector")


def test_ask_needs_the_api_key(passages_path: Path) -> None:
    client = TestClient(create_app(passages_path, api_key=KEY, generator=ScriptedGenerator("It is [1].")))
    assert_error(client.post("/api/ask", json={"question": "who developed BM25"}), 401, "unauthorized")
    r = client.post("/api/ask", json={"question": "who developed BM25"}, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200 and r.json()["citations"][0]["doc_id"] == "bm25"


def test_rag_options_set_server_defaults(passages_path: Path) -> None:
    gen = ScriptedGenerator("It is [1].")
    client = TestClient(create_app(passages_path, generator=gen, rag_options={"selector": "top:1", "max_tokens": 7,
                                                                              "allow": {"source": ["wiki"]}}))
    defaults = client.get("/api/info").json()["ask"]["defaults"]
    assert defaults["selector"] == "top:1" and defaults["max_tokens"] == 7
    out = ask(client, question="BM25 ranking")
    assert [c["doc_id"] for c in out["contexts"]] == ["bm25"] and gen.calls[-1]["max_tokens"] == 7
    more = ask(client, question="BM25 ranking", selector="top:5")["contexts"]  # the request overrides the default
    assert len(more) > 1 and {c["doc_id"] for c in more} <= {"bm25", "cats"}  # the allow-list always applies
    with pytest.raises(ServeError, match="unknown rag_options"):
        create_app(passages_path, rag_options={"selecter": "top:1"})
    with pytest.raises(ServeError, match="generator must be"):
        create_app(passages_path, generator="  ")


# -- the real OpenAI-compatible path -----------------------------------------------------------------------------
def test_openai_compatible_generator_over_http(passages_path: Path) -> None:
    backend = ScriptedGenerator("Robertson and Sparck Jones [1].")
    with ServerThread(create_openai_app(backend, model_name="scripted")) as endpoint:
        client = TestClient(create_app(passages_path, generator=f"openai:scripted@{endpoint.url}/v1"))
        out = ask(client, question="who developed BM25", selector="top:2")
        assert out["answer"] == backend.answer and out["citations"][0]["doc_id"] == "bm25"
        assert out["generator"]["backend"] == "openai" and out["generator"]["model"] == "scripted"
        assert out["generator"]["base_url"] == f"{endpoint.url}/v1"
        messages = backend.calls[0]["prompt"]
        assert [m["role"] for m in messages] == ["system", "user"] and "who developed BM25" in messages[1]["content"]
        backend.fail = GeneratorSpecError("refused")  # the endpoint answers 400, which is not retried
        message = assert_error(client.post("/api/ask", json={"question": "who developed BM25"}), 503,
                               "generator_unavailable")
        assert message == "the generator endpoint answered HTTP 400; the server log has the details"


# -- CLI and run -------------------------------------------------------------------------------------------------
def test_cli_generator_option_and_run_checks_remote_specs_at_start(passages_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from retrievekit.cli import serve as cli

    parser = argparse.ArgumentParser()
    cli.add_serve(parser.add_subparsers())
    seen: dict[str, Any] = {}
    monkeypatch.setattr("retrievekit.serve.app.run", lambda *a, **kw: seen.update(kw))
    assert cli.run_serve(parser.parse_args(["serve", str(passages_path), "--generator", "local"])) == 0
    assert seen["generator"] == "local"
    assert cli.run_serve(parser.parse_args(["serve", str(passages_path)])) == 0
    assert seen["generator"] is None
    monkeypatch.undo()
    with pytest.raises(ServeError, match="unknown generator 'nonesuch'"):
        run(passages_path, generator="nonesuch:model")  # fails before serving, not at the first question


def test_an_answer_citing_nothing_is_withheld(passages_path: Path) -> None:
    app = create_app(passages_path, generator=ScriptedGenerator("Robertson invented it."))
    with TestClient(app) as client:
        out = client.post("/api/ask", json={"question": "who developed BM25", "selector": "top:3"}).json()
    assert out["unknown"] and out["answer"] == "I don't know" and out["citations"] == []
    assert out["unsupported_answer"] == "Robertson invented it." and out["contexts"]
