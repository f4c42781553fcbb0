"""Sentence splitting: retrievekit's rule-based splitter against pysbd on a boundary test set (issue 19).

The test set, ``tests/data/sentence_boundaries.jsonl``, holds short texts whose sentences are known — hard cases
grouped by kind (abbreviations, decimals, citations such as "et al.", quotes, lists, URLs, ellipses, numbers). Each
record's text is its sentences joined by a space (or by its ``join``). A splitter is scored on the sentence *ends*
it puts inside a text (the text's own end does not count): precision, recall and F1 over all texts, and the share
of texts split exactly right. Speed: sentences per second, each text split on its own, the test set repeated to ~200,000
characters, best of 3.
Results: ``benchmarks/results/sentences.json``.

    python benchmarks/run_sentences.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from report_sentences import sentences_section

from retrievekit.chunking.sentences import split_sentences

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "data" / "sentence_boundaries.jsonl"
OUT = REPO / "benchmarks" / "results" / "sentences.json"

Splitter = Callable[[str], list[tuple[int, int]]]


def load_cases(path: Path = FIXTURE) -> list[dict[str, Any]]:
    cases = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            case = json.loads(line)
            case["text"] = case.get("join", " ").join(case["sentences"])
            case["line"] = line_no
            cases.append(case)
    return cases


def expected_ends(case: dict[str, Any]) -> set[int]:
    """End offsets of the case's sentences in its text, the last one left out."""
    ends, pos = set(), 0
    for sentence in case["sentences"]:
        pos = case["text"].index(sentence, pos) + len(sentence)
        ends.add(pos)
    ends.discard(len(case["text"]))
    return ends


def rule_based(text: str) -> list[tuple[int, int]]:
    return split_sentences(text)


def pysbd_splitter() -> Splitter:
    import pysbd

    segmenter = pysbd.Segmenter(language="en", clean=False)

    def split(text: str) -> list[tuple[int, int]]:
        # pysbd returns the sentences' text (with trailing spaces); locate them in order, trimmed
        spans, pos = [], 0
        for sentence in segmenter.segment(text):
            stripped = sentence.strip()
            if not stripped:
                continue
            start = text.index(stripped, pos)
            pos = start + len(stripped)
            spans.append((start, pos))
        return spans

    return split


def score(split: Splitter, cases: list[dict[str, Any]]) -> dict[str, Any]:
    tp = fp = fn = exact = 0
    by_category: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    errors = []
    for case in cases:
        want = expected_ends(case)
        got = {end for _, end in split(case["text"])} - {len(case["text"])}
        tp, fp, fn = tp + len(want & got), fp + len(got - want), fn + len(want - got)
        totals[case["category"]] += 1
        if want == got:
            exact += 1
            by_category[case["category"]] += 1
        else:
            errors.append({"line": case["line"], "category": case["category"],
                           "got": [case["text"][s:e] for s, e in split(case["text"])]})
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return {"precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
            "texts_exact": round(exact / len(cases), 4),
            "texts_exact_by_category": {c: f"{by_category[c]}/{n}" for c, n in sorted(totals.items())},
            "errors": errors}


def speed(split: Splitter, cases: list[dict[str, Any]], target_chars: int = 200_000) -> dict[str, Any]:
    """Each test text split on its own (as passages are), the set repeated to ~``target_chars``. One long text is
    no fair measure: pysbd's time grows faster than linearly with a text's length (1 MB took minutes)."""
    chars = sum(len(case["text"]) for case in cases)
    repeats = max(1, target_chars // chars)
    texts = [case["text"] for case in cases] * repeats
    sentences = repeats * sum(len(case["sentences"]) for case in cases)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for text in texts:
            split(text)
        best = min(best, time.perf_counter() - started)
    return {"characters": chars * repeats, "texts": len(texts), "sentences": sentences, "seconds": round(best, 3),
            "sentences_per_s": round(sentences / best)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    cases = load_cases()
    splitters: dict[str, Splitter] = {"retrievekit rule-based": rule_based,
                                      f"pysbd {version('pysbd')}": pysbd_splitter()}
    systems = {name: {**score(split, cases), "speed": speed(split, cases)} for name, split in splitters.items()}
    chosen = max(systems, key=lambda n: (systems[n]["f1"], systems[n]["texts_exact"]))
    result = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
              "machine": {"cpu": platform.machine(), "cpus": os.cpu_count(),
                          "load_average": [round(x, 2) for x in os.getloadavg()]},
              "fixture": {"path": str(FIXTURE.relative_to(REPO)), "texts": len(cases),
                          "boundaries": sum(len(expected_ends(c)) for c in cases)},
              "systems": systems, "chosen": chosen}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print("\n".join(sentences_section(result)))
    for name, r in systems.items():
        for err in r["errors"]:
            print(f"{name}: line {err['line']} ({err['category']}): {err['got']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
