"""``retrievekit demo``: its encoder choice and fallbacks, the expected time said before working, its corpus."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from retrievekit.cli import demo
from retrievekit.cli.main import main
from retrievekit.ingest.stdlib_corpus import is_public


def _without(monkeypatch: pytest.MonkeyPatch, *missing: str) -> None:
    """Pretend ``missing`` modules are not installed (for the demo's choice only)."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None if name in missing else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_encoder_is_int8_onnx_when_it_can_run() -> None:
    if any(importlib.util.find_spec(m) is None
           for m in ("onnxruntime", "tokenizers", "onnx", "torch", "sentence_transformers")):
        pytest.skip("needs the onnx extra")
    assert demo.demo_encoder() == demo.FAST_DEMO_MODEL == "onnx-int8:minilm"


def test_encoder_falls_back_without_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "onnxruntime")
    expected = demo.DEMO_MODEL if demo.dense_available() else None
    assert demo.demo_encoder() == expected


def test_encoder_without_torch_uses_a_cached_export_or_falls_back_to_bm25(monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "torch", "sentence_transformers")
    monkeypatch.setattr(demo, "onnx_export_cached", lambda: False)
    assert demo.demo_encoder() is None  # nothing can encode: BM25 only
    if importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("tokenizers") is not None:
        monkeypatch.setattr(demo, "onnx_export_cached", lambda: True)
        assert demo.demo_encoder() == demo.FAST_DEMO_MODEL  # the export runs without torch


def test_bm25_fallback_says_so_and_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(demo, "demo_encoder", lambda: None)
    assert main(["demo", "--collection", str(tmp_path / "demo"), "--limit", "40", "--no-progress",
                 "--query", "json"]) == 0
    out = capsys.readouterr().out
    assert "BM25 only" in out and "pip install 'retrievekit[onnx]'" in out
    assert "bm25 searches" in out


def test_expected_time_is_printed_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []
    real = demo.iter_stdlib_documents

    def documents(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(capsys.readouterr().out)  # what the user saw when the work began
        return real(*args, **kwargs)

    monkeypatch.setattr(demo, "iter_stdlib_documents", documents)
    assert main(["demo", "--collection", str(tmp_path / "demo"), "--limit", "30", "--mode", "bm25",
                 "--no-progress", "--query", "json"]) == 0
    assert len(seen) == 1 and "Expected time: about" in seen[0] and "Indexed" not in seen[0]
    assert "Indexed 30 documents" in capsys.readouterr().out


def test_expected_time_counts_export_encoding_and_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from retrievekit.core import cpu

    monkeypatch.setattr(cpu, "usable_cpus", lambda: 2)
    bm25 = demo.expected_seconds(None, demo.DEMO_DOCS, export=False)
    fast = demo.expected_seconds(demo.FAST_DEMO_MODEL, demo.DEMO_DOCS, export=False)
    first = demo.expected_seconds(demo.FAST_DEMO_MODEL, demo.DEMO_DOCS, export=True)
    slow = demo.expected_seconds(demo.DEMO_MODEL, demo.DEMO_DOCS, export=False)
    assert bm25 < fast < first < 180 < slow  # the fast path fits the 3-minute goal on 2 cores, the fallback not
    monkeypatch.setattr(cpu, "usable_cpus", lambda: 4)
    assert demo.expected_seconds(demo.FAST_DEMO_MODEL, demo.DEMO_DOCS, export=False) < fast


def test_json_report_carries_the_expectation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--collection", str(tmp_path / "demo"), "--limit", "20", "--mode", "bm25", "--json",
                 "--query", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert isinstance(report["expected_seconds"], float) and report["documents"] == 20 and report["reused"] is False


def test_an_older_demo_corpus_is_rebuilt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    col = tmp_path / "demo"
    args = ["demo", "--collection", str(col), "--limit", "20", "--mode", "bm25", "--json", "--query", "json"]
    main(args)
    capsys.readouterr()
    stamp = col.with_name("demo.json")
    stamp.write_text(json.dumps({**json.loads(stamp.read_text()), "corpus": None}))  # as an older release wrote
    main(args)
    assert json.loads(capsys.readouterr().out)["reused"] is False
    main(args)
    assert json.loads(capsys.readouterr().out)["reused"] is True


@pytest.mark.parametrize(("doc_id", "public"), [
    ("json.dumps", True), ("os.path.join", True), ("builtins.dict.__init__", True), ("__future__", True),
    ("builtins.str.split#2", True), ("_pydecimal.Decimal", False), ("json.decoder._decode_uXXXX", False),
    ("collections._OrderedDictKeysView", False), ("distutils.core.setup", False), ("asyncore.loop", False),
    ("encodings.cp1252.Codec", False),
])
def test_demo_corpus_is_the_public_current_api(doc_id: str, public: bool) -> None:
    assert is_public(doc_id) is public
