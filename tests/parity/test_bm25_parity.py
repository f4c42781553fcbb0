"""Lucene/Pyserini parity: nDCG@10 and R@100 within 0.002 of Pyserini's BM25 (k1=0.9, b=0.4, default English
analyzer, title + " " + text) measured on these exact files."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrievekit import Collection
from retrievekit.evaluation import evaluate, load_beir

PYSERINI = {  # nDCG@10, R@100
    "scifact": (0.6789, 0.9253),
    "cranfield": (0.3510, 0.7224),
    "cacm": (0.4754, 0.6424),
    "cosqa": (0.3143, 0.7200),
}


@pytest.mark.parametrize("name", list(PYSERINI))
def test_matches_pyserini(name: str, data_dir: Path, tmp_path: Path) -> None:
    dataset = load_beir(data_dir / name)
    col = Collection.create(tmp_path / name)
    col.ingest(dataset.corpus_path, progress=False)
    qids = list(dataset.queries)
    # Pyserini's runs go through Anserini's tie adjustment (4-decimal scores, 1e-6 apart in float32)
    run = col.search([dataset.queries[q] for q in qids], k=1000).to_run(qids, ties="anserini")
    scores = evaluate(run, dataset.qrels, ["ndcg@10", "recall@100"])
    ndcg, recall = PYSERINI[name]
    # The issue asks for 0.002; we hold the published 4-decimal values exactly (rounding slack only).
    assert scores["ndcg@10"] == pytest.approx(ndcg, abs=0.00006)
    assert scores["recall@100"] == pytest.approx(recall, abs=0.00006)
