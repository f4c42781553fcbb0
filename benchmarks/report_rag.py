"""BENCHMARKS.md sections for RAG: retrieval for RAG (``run_rag.py``) and end-to-end answers (``run_rag_e2e.py``)."""

from __future__ import annotations

import json
from pathlib import Path

from report_common import load_result, markdown_table


def retrieval_section(results: Path) -> list[str]:
    doc = load_result(results / "rag_retrieval.json")
    if not doc:
        return []
    settings = doc["settings"]
    dev = doc.get("dev_selection") or {}
    lines = ["## Retrieval for RAG: answer recall and context tokens", "",
             f"`python benchmarks/run_rag.py`: BM25 over passages (whole paragraphs, or a passage collection built "
             f"with the chunker), {settings['depth']} passages retrieved, then the context setting; answer recall = "
             "share of questions whose gold answer string occurs in the selected context; tokens = mean "
             "`count_tokens` of the context (words and punctuation marks, an approximation of LLM tokens). All "
             f"1,190 xquad-r English questions (240 paragraphs) and a seeded sample of {settings['squad_sample']:,} "
             "squad-v1.1-dev questions (2,067 paragraphs). `gap` = score-gap selection (scores rescaled so the "
             "best is 1 and rank 20 is 0; keep while ≥ ratio and before a drop ≥ gap); `compress lexical:N` keeps "
             "the N best sentences of each passage (`:0.R`: that fraction), by BM25 against the question."]
    if dev:
        picked = "; ".join(f"`{label} (dev-chosen)` = `{json.dumps(options)}`" for label, options in
                           dev["chosen"].items())
        lines += ["", f"{picked}: chosen on {dev['questions']:,} other squad questions (disjoint from the evaluated "
                  "ones and from xquad-r) as the setting with the fewest tokens whose answer recall is within 1.5 "
                  f"points of top-10 there, among {len(dev['grid'])} score-gap × compression settings (with and "
                  "without compression separately)."]
    lines += ["", "Goal: score-gap selection + compression within 2 points of top-10 answer recall with ≥ 40% fewer "
              "context tokens (same chunking).", ""]
    rows = []
    base = {(r["dataset"], r["chunker"]): r for r in doc["results"] if r["setting"] == "top:10"}
    for r in doc["results"]:
        ref = base[(r["dataset"], r["chunker"])]
        delta = 100 * (r["answer_recall"] - ref["answer_recall"])
        saved = 1 - r["context_tokens"] / ref["context_tokens"]
        goal = ""
        if r["setting"].startswith("gap"):
            goal = "met" if delta >= -2.0 and saved >= 0.4 else "not met"
        rows.append([r["dataset"], r["chunker"], r["setting"], f"{r['answer_recall']:.3f}", f"{delta:+.1f}",
                     f"{r['context_tokens']:,.0f}", f"{saved:.0%}", goal])
    lines += markdown_table(["set", "chunking", "context", "answer recall", "Δ vs top-10 (points)", "tokens",
                     "fewer tokens", "goal"], rows)
    lines.append("")
    return lines


def e2e_section(results: Path) -> list[str]:
    doc = load_result(results / "rag_e2e.json")
    if not doc:
        return []
    s = doc["settings"]
    lines = ["## End-to-end answers with the offline generator", "",
             f"`python benchmarks/run_rag_e2e.py`: {s['questions']} seeded squad-v1.1-dev questions, BM25 passages "
             f"({s['chunker']}), context `{s['context']}`, generator `{doc['generator']['model']}` "
             f"({doc['generator']['backend']}; a 270M *base* model, not instruction-tuned), greedy, at most "
             f"{s['max_tokens']} tokens. Exact match and token F1 use SQuAD's answer normalisation against all gold "
             "answers; a citation resolves when its number names a context passage and that passage's offsets "
             "give back its text from the original document.", ""]
    rows = [[r["name"], f"{r['exact_match']:.3f}", f"{r['f1']:.3f}", f"{r['answer_in_context']:.3f}",
             f"{r['unknown_rate']:.3f}", f"{r['answers_with_citations']:.3f}", f"{r['citations_resolved']:.3f}",
             f"{r['seconds_per_question']:.2f}"] for r in doc["results"]]
    lines += markdown_table(["setting", "exact match", "token F1", "gold answer in context", "\"I don't know\"",
                     "answers citing a source", "citations that resolve", "s/question"], rows)
    lines.append("")
    if doc.get("cache"):
        c = doc["cache"]
        lines += [f"Retrieval cache (RaLMSpec-style reuse across turns): a replay of {c['turns']:,} turns in which "
                  f"{c['repeat_share']:.0%} re-ask the previous question, lightly rephrased (case, punctuation, a "
                  "filler word); top-5 passages per turn.", ""]
        rows = [[mode, f"{r['hit_rate']:.1%}", f"{r['seconds_without_cache']:.2f}", f"{r['seconds_with_cache']:.2f}",
                 f"{r['speedup']:.2f}×", f"{r['recall_without_cache']:.3f}", f"{r['recall_with_cache']:.3f}"]
                for mode, r in c["modes"].items()]
        lines += markdown_table(["mode", "hit rate", "retrieval s without cache", "with cache", "speed-up",
                         "answer recall without", "with"], rows)
        lines.append("")
    return lines


def rag_sections(results: Path) -> list[str]:
    return retrieval_section(results) + e2e_section(results)
