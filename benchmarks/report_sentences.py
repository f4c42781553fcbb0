"""BENCHMARKS.md section for sentence splitting: the rule-based splitter against pysbd on the boundary test set
(``run_sentences.py``: ``results/sentences.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from report_common import load_result


def sentences_sections(results: Path) -> list[str]:
    result = load_result(results / "sentences.json")
    return sentences_section(result) if result else []


def sentences_section(result: dict[str, Any]) -> list[str]:
    """The section's lines for one result."""
    systems = result["systems"]
    lines = ["## Sentence splitting (issue 19)", "",
             f"`python benchmarks/run_sentences.py` ({result['date']}; {result['machine']['cpus']} shared cores): "
             f"{result['fixture']['texts']} texts, {result['fixture']['boundaries']} sentence boundaries inside "
             "them, from `tests/data/sentence_boundaries.jsonl` (abbreviations, decimals, citations, quotes, lists, "
             "URLs, ellipses, numbers). Boundary precision/recall/F1 count the sentence ends put inside a text; "
             "*exact* is the share of texts split exactly right. Speed: each text split on its own, the test set "
             f"repeated to {next(iter(systems.values()))['speed']['texts']:,} texts, best of 3. The set was written in "
             "this project, next to the rule-based splitter, so it may favour it; pysbd's misses are listed in "
             "the result file.", "",
             "| splitter | precision | recall | F1 | texts exact | sentences/s |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in systems.items():
        chosen = " (used)" if name == result["chosen"] else ""
        lines.append(f"| {name}{chosen} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | "
                     f"{r['texts_exact']:.1%} | {r['speed']['sentences_per_s']:,} |")
    categories = sorted(next(iter(systems.values()))["texts_exact_by_category"])
    lines += ["", "Texts split exactly right, by kind:", "",
              "| splitter | " + " | ".join(categories) + " |", "|---|" + "---:|" * len(categories)]
    for name, r in systems.items():
        lines.append(f"| {name} | " + " | ".join(r["texts_exact_by_category"][c] for c in categories) + " |")
    return [*lines, ""]
