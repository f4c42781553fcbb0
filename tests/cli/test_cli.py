"""The command line: index, search, info, eval (stable JSON contract), demo, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "retrievekit", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


def test_help_explains_every_command() -> None:
    out = cli("--help").stdout
    for command in ("demo", "index", "search", "eval", "info", "delete", "optimize", "distill"):
        assert command in out
    assert "--ignore-identical-ids" in cli("eval", "--help").stdout


def test_index_search_info_delete(tmp_path: Path, data_dir: Path) -> None:
    col = tmp_path / "col"
    summary = json.loads(cli("index", str(data_dir / "cranfield"), str(col), "--json", "--no-progress").stdout)
    assert summary["added"] == 1400 and summary["documents"] == 1400
    res = json.loads(cli("search", str(col), "boundary layer", "heat transfer", "-k", "3", "--json").stdout)
    assert [len(r["hits"]) for r in res["results"]] == [3, 3]
    top = res["results"][0]["hits"][0]["id"]
    text = cli("search", str(col), "boundary layer").stdout
    assert "[boundary]" in text.lower() and top in text
    info = json.loads(cli("info", str(col), "--json").stdout)
    assert info["documents"] == 1400 and info["analyzer"]["name"] == "lucene-english"
    assert "deleted 1 document" in cli("delete", str(col), top).stdout
    res = json.loads(cli("search", str(col), "boundary layer", "-k", "3", "--json").stdout)
    assert top not in [h["id"] for h in res["results"][0]["hits"]]


def test_eval_json_contract(data_dir: Path) -> None:
    out = json.loads(cli("eval", str(data_dir / "cranfield"), "--json", "--no-progress").stdout)
    for key in ("ndcg@10", "recall@100", "queries", "index_seconds", "queries_per_second"):
        assert key in out
    assert out["queries"] == 225 and out["ndcg@10"] == pytest.approx(0.3510, abs=6e-5)
    assert out["scorer"] == {"name": "lucene", "k1": 0.9, "b": 0.4}


def test_eval_compares_systems_with_significance(data_dir: Path, tmp_path: Path) -> None:
    out = json.loads(cli("eval", str(data_dir / "cacm"), "--json", "--no-progress", "--system", "lucene",
                         "--system", "bm25+:k1=1.2,b=0.75", "--system", "dirichlet", "--run-dir",
                         str(tmp_path / "runs")).stdout)
    assert [s["system"] for s in out["systems"]] == ["lucene", "bm25+:k1=1.2,b=0.75", "dirichlet"]
    sig = out["significance"]["ndcg@10"]
    assert set(sig) == {"bm25+:k1=1.2,b=0.75", "dirichlet"} and all(0 <= v["p_value"] <= 1 for v in sig.values())
    assert len(list((tmp_path / "runs").glob("*.run"))) == 3
    table = cli("eval", str(data_dir / "cacm"), "--no-progress", "--system", "lucene", "--system", "atire").stdout
    assert "ndcg@10" in table and "atire" in table


def test_demo_builds_then_reuses(tmp_path: Path) -> None:
    col = tmp_path / "demo"
    first = json.loads(cli("demo", "--collection", str(col), "--json", "--mode", "bm25").stdout)
    assert first["reused"] is False and first["documents"] > 2000
    assert all(r["hits"] for r in first["results"])
    second = json.loads(cli("demo", "--collection", str(col), "--json", "--query", "json", "--mode", "bm25").stdout)
    assert second["reused"] is True and second["documents"] == first["documents"]
    assert any(h["id"].startswith("json") for h in second["results"][0]["hits"])
    text = cli("demo", "--collection", str(col), "--mode", "bm25").stdout
    assert "Reusing the collection" in text and "»" in text


def test_demo_defaults_to_hybrid_search(tmp_path: Path) -> None:
    col = tmp_path / "demo"
    report = json.loads(cli("demo", "--collection", str(col), "--json", "--limit", "60", "--query",
                            "encode and decode JSON").stdout)
    assert report["mode"] == "hybrid" and report["documents"] == 60
    info = json.loads(cli("info", str(col), "--json").stdout)
    assert info["dense"]["default"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert info["dense"]["default"]["vector_bytes"] >= 60 * 384 * 4
    assert report["results"][0]["hits"]


def test_errors_are_clear(tmp_path: Path) -> None:
    proc = cli("search", str(tmp_path / "missing"), "query", check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "1", "text": "ok"}\n{"_id": "1", "text": "dup"}\n')
    proc = cli("index", str(bad), str(tmp_path / "c"), "--no-progress", check=False)
    assert proc.returncode == 2 and "bad.jsonl" in proc.stderr and "duplicate" in proc.stderr.lower()


def test_dense_index_search_and_eval_modes(tmp_path: Path, data_dir: Path) -> None:
    col = tmp_path / "col"
    cli("index", str(data_dir / "cranfield"), str(col), "--dense", "wordllama", "--no-progress", "--json")
    info = json.loads(cli("info", str(col), "--json").stdout)
    assert info["dense"]["default"]["backend"] == "wordllama" and info["dense"]["default"]["dim"] == 256
    for mode in ("dense", "hybrid", "bm25"):
        res = json.loads(cli("search", str(col), "boundary layer heat transfer", "--mode", mode, "-k", "5",
                             "--json").stdout)
        assert res["mode"] == mode and len(res["results"][0]["hits"]) == 5
    default = json.loads(cli("search", str(col), "boundary layer", "--json").stdout)
    assert default["mode"] == "hybrid"
    report = json.loads(cli("eval", str(data_dir / "cranfield"), "--system", "lucene", "--system", "dense",
                            "--system", "hybrid", "--model", "wordllama", "--no-progress", "--json").stdout)
    by = {s["system"]: s for s in report["systems"]}
    assert report["model"] == "l2_supercat" and by["dense"]["config"]["encoder"]["backend"] == "wordllama"
    for name in ("dense", "hybrid"):
        assert 0.1 < by[name]["ndcg@10"] < 1 and by[name]["queries_per_second"] > 0
    assert "ndcg@10" in report["significance"]
