"""`retrievekit generate-queries` end to end on a tiny BM25 collection: output, counts, resuming after a failure
from OUT.partial, refusing other settings, and the errors that exit with 2. The generator is a small deterministic
one registered under a test name (and once the real OpenAI-compatible client against a loopback server)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from retrievekit import Collection
from retrievekit.cli.main import main
from retrievekit.core.document import Document
from retrievekit.rag.generators.base import GENERATORS, GenerationError, Generator, register_generator
from retrievekit.training import TrainingSet

TOPICS = ["solar panels", "river floods", "bread baking", "chess openings", "whale songs", "glacier melt",
          "bee colonies", "jazz chords", "rust compilers", "tea brewing", "moon phases", "desert plants"]


class TopicGenerator(Generator):
    """Answers a document's first two words + "facts" ("Item 1" documents: another topic's, so the round trip
    has something to drop). ``budget``: calls allowed over all instances before every call fails (a flaky
    endpoint); ``calls`` counts them."""

    backend = "topic-test"
    model = "topic-1"
    prompt_style = "completion"
    budget: int | None = None
    calls = 0

    def generate(self, prompt: Any, *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: str | Sequence[str] | None = None) -> str:
        if TopicGenerator.budget is not None and TopicGenerator.calls >= TopicGenerator.budget:
            raise GenerationError("the endpoint went away")
        TopicGenerator.calls += 1
        text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
        document = text.rsplit("Document: ", 1)[1]
        if "Item 1 " in document:
            return " jazz chords facts"
        return " " + " ".join(document.split()[:2]).lower() + " facts"


@pytest.fixture(autouse=True)
def topic_generator() -> Iterator[None]:
    TopicGenerator.budget, TopicGenerator.calls = None, 0
    register_generator("topic-test", lambda model=None, **options: TopicGenerator())
    yield
    GENERATORS.unregister("topic-test")


@pytest.fixture(scope="module")
def col(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli_synthetic") / "col"
    Collection.create(path).add(
        Document(id=f"d{i}", title=t.title(), text=f"This note is about {t}. Experts study {t} every year. The "
                 f"history of {t} is old and rich. Item {i} ends here.") for i, t in enumerate(TOPICS))
    return path


def run(*args: str) -> int:
    return main(["generate-queries", *args, "--no-progress"])


def test_generate_queries_end_to_end(col: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "syn.jsonl"
    assert run(str(col), "--generator", "topic-test", "--out", str(out), "--limit", "5", "--seed", "3") == 0
    assert f"wrote 5 queries to {out} (5 documents, 5 generated, 0 rejected)" in capsys.readouterr().out
    data = TrainingSet.load(out)
    assert len(data) == 5 and {e.source for e in data} == {"synthetic"}
    for e in data:
        assert e.query_id == f"syn-{e.positive_id}-0"
        assert e.positive_id == "d1" or e.positive.startswith(e.query.removesuffix(" facts").title())
    assert not (tmp_path / "syn.jsonl.partial").exists()
    again = tmp_path / "again.jsonl"
    assert run(str(col), "--generator", "topic-test", "--out", str(again), "--limit", "5", "--seed", "3") == 0
    assert again.read_bytes() == out.read_bytes()


def test_examples_samples_and_round_trip(col: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    examples = tmp_path / "examples.jsonl"
    examples.write_text(json.dumps({"document": "Kites fly in steady wind.", "query": "kite wind"}) + "\n")
    out = tmp_path / "syn.jsonl"
    assert run(str(col), "--generator", "topic-test", "--out", str(out), "--examples", str(examples),
               "--per-document", "2", "--temperature", "0", "--round-trip", "1") == 0
    printed = capsys.readouterr().out
    # 24 outputs: every second sample repeats the first (temperature 0); d1's query names another topic
    assert "24 generated, 12 rejected (duplicate: 12), round trip: 11 kept, 1 dropped" in printed
    assert sorted(e.positive_id or "" for e in TrainingSet.load(out)) == sorted(f"d{i}" for i in range(12) if i != 1)


def test_a_failed_run_resumes_from_the_partial_file(col: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    whole = tmp_path / "whole.jsonl"
    assert run(str(col), "--generator", "topic-test", "--out", str(whole)) == 0
    out, partial = tmp_path / "syn.jsonl", tmp_path / "syn.jsonl.partial"
    TopicGenerator.budget, TopicGenerator.calls = 5, 0
    assert run(str(col), "--generator", "topic-test", "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "error: the endpoint went away" in err and f"kept in {partial}" in err
    assert not out.exists() and len(partial.read_text().splitlines()) == 1 + 5
    assert run(str(col), "--generator", "topic-test", "--out", str(out), "--seed", "9") == 2  # other settings
    err = capsys.readouterr().err
    assert str(partial) in err and "seed: 0 then, 9 now" in err and "delete the file" in err
    TopicGenerator.budget, TopicGenerator.calls = None, 0
    assert run(str(col), "--generator", "topic-test", "--out", str(out)) == 0
    assert TopicGenerator.calls == 12 - 5
    assert "7 generated, 5 resumed from syn.jsonl.partial" in capsys.readouterr().out
    assert out.read_bytes() == whole.read_bytes() and not partial.exists()


def test_errors_exit_with_2(col: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "syn.jsonl")
    assert run(str(col), "--generator", "nosuch", "--out", out) == 2
    assert "unknown generator 'nosuch'; choose one of:" in capsys.readouterr().err
    empty = tmp_path / "empty"
    Collection.create(empty)
    assert run(str(empty), "--generator", "topic-test", "--out", out) == 2
    assert "no documents to generate queries for" in capsys.readouterr().err
    assert run(str(tmp_path / "missing"), "--generator", "topic-test", "--out", out) == 2
    assert "no such collection folder" in capsys.readouterr().err
    bad = tmp_path / "examples.jsonl"
    bad.write_text('{"document": "d", "query": "q"}\n{"document": "d", "query": ""}\n')
    assert run(str(col), "--generator", "topic-test", "--out", out, "--examples", str(bad)) == 2
    assert f"{bad}:2: 'query' must be a non-empty string" in capsys.readouterr().err
    assert run(str(col), "--generator", "topic-test", "--out", out, "--round-trip", "1",
               "--round-trip-mode", "dense") == 2
    assert "has no dense index" in capsys.readouterr().err
    assert TopicGenerator.calls == 0 and not list(tmp_path.glob("syn.jsonl*"))
    with pytest.raises(SystemExit):
        run(str(col), "--generator", "topic-test", "--out", out, "--per-document", "0")


def test_openai_compatible_endpoint(col: Path, tmp_path: Path) -> None:
    pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from http_helpers import ServerThread

    from retrievekit.rag.generators.openai_server import create_openai_app

    local, remote = tmp_path / "local.jsonl", tmp_path / "remote.jsonl"
    assert run(str(col), "--generator", "topic-test", "--out", str(local), "--limit", "4") == 0
    with ServerThread(create_openai_app(TopicGenerator())) as server:
        assert run(str(col), "--generator", f"openai:topic-1@{server.url}/v1", "--out", str(remote),
                   "--limit", "4") == 0
    # the chat API (prompt as messages) and the served model's answers give the same queries
    assert [e.query for e in TrainingSet.load(remote)] == [e.query for e in TrainingSet.load(local)]


def test_precision_is_for_local_generators_only(col: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "syn.jsonl"
    assert run(str(col), "--generator", "topic-test", "--out", str(out), "--precision", "bf16") == 2
    assert "--precision applies to local generators only, not 'topic-test'" in capsys.readouterr().err
    assert not out.exists()
    assert run(str(col), "--generator", "topic-test", "--out", str(out), "--batch-size", "5") == 0
