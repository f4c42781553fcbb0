"""``to_run(ties="anserini")`` gives exactly the scores of a real Pyserini run file.

The fixture (written by benchmarks/run_ties.py) holds, for documents used as queries (long queries, BM25 scores in
the hundreds), Lucene's raw BM25 scores before Anserini's tie adjuster and the scores Pyserini 1.6.0 wrote for the
same documents with ``--remove-query``; every query has a relevant document in a tie above 64 in its top 10.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from paths import FIXTURES

from retrievekit.evaluation import evaluate
from retrievekit.retrieval.base import SearchResults

FIXTURE = json.loads((FIXTURES / "pyserini_ties.json").read_text(encoding="utf-8"))["queries"]


def _results(rows: list[list[tuple[str, float]]]) -> SearchResults:
    width = max(len(r) for r in rows)
    results = SearchResults.empty(len(rows), width)
    for i, row in enumerate(rows):
        results.ids[i, :len(row)] = [d for d, _ in row]
        results.scores[i, :len(row)] = np.array([s for _, s in row], dtype=np.float32)
    return results


@pytest.mark.parametrize("case", FIXTURE, ids=lambda c: f"{c['set']}:{c['qid']}")
def test_scores_equal_pyserini_run_file(case: dict) -> None:
    run = _results([case["lucene_raw"]]).to_run([case["qid"]], ties="anserini")[case["qid"]]
    del run[case["qid"]]  # Pyserini's --remove-query, after the tie adjustment as in Pyserini
    assert run == case["pyserini"]


def test_metrics_equal_pyserini_with_identical_ids_ignored() -> None:
    qids = [c["qid"] for c in FIXTURE]
    qrels = {c["qid"]: c["qrels"] for c in FIXTURE}
    run = _results([c["lucene_raw"] for c in FIXTURE]).to_run(qids, ties="anserini")
    pyserini = {c["qid"]: c["pyserini"] for c in FIXTURE}
    metrics = ["ndcg@10", "map", "p@10"]
    mine = evaluate(run, qrels, metrics, ignore_identical_ids=True, per_query=True)
    theirs = evaluate(pyserini, qrels, metrics, per_query=True)
    assert mine.per_query == theirs.per_query


def test_float32_keeps_ties_above_64_for_trec_eval() -> None:
    # Anserini subtracts 1e-6 per tie in float32: visible at 22 (step 1.9e-6), swallowed at 122 (step 7.6e-6).
    small = _results([[("a", 22.087432), ("c", 22.087432), ("b", 22.087432)]]).to_run(["q"], ties="anserini")["q"]
    assert small["a"] == 22.0874 and small["a"] > small["b"] >= small["c"]
    large = _results([[("a", 122.087432), ("c", 122.087432), ("b", 122.087432)]]).to_run(["q"], ties="anserini")["q"]
    assert large == {"a": 122.087402, "b": 122.087402, "c": 122.087402}  # trec_eval then ranks c, b, a


def test_rounding_is_in_double_and_keeps_the_raw_order() -> None:
    # 76.14234924f * 1e4 is 761423.4924 in double (rounds down) but 761423.5 in float32 (would round up).
    assert _results([[("d", 76.14234924316406)]]).to_run(["q"], ties="anserini")["q"] == {"d": 76.142303}
    # Scores that round to one value keep their raw order (no re-sort by docid): "z" first, "a" perturbed.
    near = _results([[("z", 5.12344), ("a", 5.12341)]]).to_run(["q"], ties="anserini")["q"]
    assert near["z"] > near["a"]
