"""BENCHMARKS.md sections for the training benchmarks (run_train_supervised.py, run_train_adapt.py,
run_train_adapter.py, run_train_reranker.py, run_train_teacher.py): read their JSON results and render tables; a
missing result file renders nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from report_common import load_result, markdown_table


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _verdict(run: dict[str, Any], alpha: float) -> str:
    """A set's outcome under the paired randomization test at ``alpha``."""
    if run["p_permutation"] >= alpha:
        return "no significant change"
    return "gain" if run["ndcg@10_delta"] > 0 else "loss"


def _load_note(result: dict[str, Any]) -> str:
    load = result.get("machine", {}).get("load_average_at_start")
    return (f"load average {load} at the start" if load is not None
            else "machine load not recorded: this run shared the cores with other jobs")


def supervised_section(results: Path) -> list[str]:
    r = load_result(results / "train_supervised.json")
    if not r or "trained" not in r:
        return []
    rec = r["recipe"]
    rows = [["all-MiniLM-L6-v2 (base, no training)", f"{r['base']['ndcg@10']:.4f}", "", ""],
            [f"MiniLM fine-tuned ({rec['loss']}, {rec['mined_negatives']} {rec['miner']}-mined negative(s), "
             f"{rec['epochs']:g} epoch(s), lr {rec.get('learning_rate', 2e-5):g})", f"{r['trained']['ndcg@10']:.4f}",
             f"{r['trained']['recall@100']:.4f}", _minutes(r["train_seconds"])],
            ["goal: bge-small-en-v1.5 (published)", "0.7127", "0.945", ""]]
    return [
        "## Training: supervised fine-tuning (SciFact)", "",
        f"`benchmarks/run_train_supervised.py`: MiniLM fine-tuned on SciFact's `train` judgements "
        f"({r['examples']} examples from {r['train_queries']} queries), scored on the `test` split (300 queries, "
        f"full corpus). CPU only, {r['machine']['cpus']} cores; training time is wall-clock "
        f"({_load_note(r)}).", "",
        *markdown_table(["model", "nDCG@10", "R@100", "training time"], rows), "",
    ]


def adapt_section(results: Path) -> list[str]:
    """Every ``train_adapt*.json``: the benchmark run (``train_adapt.json``) and tagged recipe trials, each with its
    recipe, losses included."""
    files = sorted((p for p in results.glob("train_adapt*.json") if p.stem == "train_adapt"
                    or p.stem.startswith("train_adapt_")), key=lambda p: (p.name != "train_adapt.json", p.name))
    runs = [(p, load_result(p)) for p in files]
    runs = [(p, r) for p, r in runs if r and r.get("sets")]
    if not runs:
        return []
    dev = [(p, r) for p, r in runs if p.stem.startswith("train_adapt_dev-")]
    runs = [(p, r) for p, r in runs if not p.stem.startswith("train_adapt_dev-")]
    lines = [
        "## Training: unsupervised domain adaptation (documents only)", "",
        "`benchmarks/run_train_adapt.py`: MiniLM fine-tuned on each corpus's own documents — no queries, no "
        "judgements — then dense retrieval scored with nDCG@10 on the set's test judgements; p = two-sided paired "
        "randomization test over queries (10,000 permutations). GPL reached 0.689 on SciFact with a T5 query "
        "generator and a cross-encoder teacher. Each table is one recipe; every set run is shown. Training times "
        "are wall-clock on the 2 cores and a rough guide only: some sets trained while other benchmark jobs (query "
        "generation) shared them.", "",
        *_adapt_glance(runs),
    ]
    for path, r in runs:
        rec = r["recipe"]
        teacher = rec.get("teacher", "none")
        if teacher == "hybrid":
            how = ("MarginMSE with the collection's own hybrid (z-scored BM25 + MiniLM) as teacher, 1 negative from "
                   "hybrid's top 20")
        elif teacher == "cross-encoder":
            how = (f"MarginMSE with a cross-encoder teacher trained here on SQuAD (`{rec['teacher_model']}`, see "
                   f"below), {rec['negatives']} negatives from hybrid's top 20 per query, a row each")
        elif rec["negatives"]:
            how = f"MNRL, {rec['negatives']} {rec['miner']}-mined hard negative(s) (margin {rec['margin']})"
        else:
            how = f"MNRL, in-batch negatives only (on the examples a 1-negative {rec['miner']} mining keeps)"
        first = next(iter(r["sets"].values()))
        windows = first.get("index_windows")
        notes = (f" Documents indexed at {windows['adapted']} tokens by the adapted model, {windows['base']} by "
                 "MiniLM." if windows else
                 f" This run predates the window fix: its adapted model also indexed documents at "
                 f"{rec['max_length']} tokens, MiniLM at 256." if rec["max_length"] < 256 else "")
        source = rec["recipe"]
        if rec["recipe"] == "generated":
            source = ("queries written by the offline gemma-3-270m (few-shot) for as many documents, each with its "
                      "source document as the positive")
            stats = [s.get("data_stats", {}) for s in r["sets"].values()]
            notes += (" Its queries predate the filter on copies of the prompt's example queries and on loops." if
                      any("rejected_example" not in st for st in stats) else
                      f" Dropped as copies of the prompt's example queries: "
                      f"{', '.join(str(st['rejected_example']) for st in stats)}; as loops: "
                      f"{', '.join(str(st['rejected_repetitive']) for st in stats)} (per set, in table order).")
        fewer = [f"{n} {s['data_stats']['documents']}" for n, s in r["sets"].items()
                 if s.get("data_stats", {}).get("documents", rec["examples"]) < rec["examples"]]
        if fewer:
            source += f"; documents with text where a set has fewer: {', '.join(fewer)}"
        seed = f", training seed {rec['train_seed']}" if rec.get("train_seed") is not None else ""
        lines += [f"`{path.name}`: {rec['examples']} pseudo-queries per set ({source}), {how}, "
                  f"{rec['epochs']:g} epoch, lr {rec['learning_rate']:g}, training length {rec['max_length']} "
                  f"tokens{seed}.{notes} Significant gains: {r.get('gains_significant', 0)} of {len(r['sets'])}.", ""]
        rows = []
        for name, s in r["sets"].items():
            verdict = _verdict(s, r["alpha"])
            rows.append([name, s["queries"], s["examples"], f"{s['base']['ndcg@10']:.4f}",
                         f"{s['adapted']['ndcg@10']:.4f}", f"{s['ndcg@10_delta']:+.4f}", f"{s['p_permutation']:.4f}",
                         verdict, _minutes(s["train_seconds"])])
        header = ["set", "queries", "pairs", "MiniLM", "adapted", "Δ", "p", "verdict", "training time"]
        lines += [*markdown_table(header, rows), ""]
    return lines + _adapt_dev_lines(dev)


def _adapt_glance(runs: list[tuple[Path, dict[str, Any]]]) -> list[str]:
    """Every recipe's Δ nDCG@10 per set in one table (p in brackets; * a significant gain, − a significant loss),
    with the caveat that many recipes were scored on the same test queries."""
    names = list(dict.fromkeys(n for _, r in runs for n in r["sets"]))
    rows = []
    for path, r in runs:
        cells = []
        for n in names:
            s = r["sets"].get(n)
            mark = {"gain": " *", "loss": " −"}.get(_verdict(s, r["alpha"]), "") if s else ""
            cells.append(f"{s['ndcg@10_delta']:+.4f} ({s['p_permutation']:.4f}){mark}" if s else "")
        rows.append([f"`{path.name}`", *cells, f"{r.get('gains_significant', 0)} of {len(r['sets'])}"])
    return ["All recipes at a glance (Δ nDCG@10 over MiniLM, p in brackets; * significant gain, − significant "
            f"loss). {len(runs)} recipes were scored on the same test queries, so a single recipe's count of "
            "significant gains is not corrected for the others having been tried.", "",
            *markdown_table(["run", *names, "significant gains"], rows), ""]


def _adapt_dev_lines(runs: list[tuple[Path, dict[str, Any]]]) -> list[str]:
    """The ``dev-*`` tagged runs: one recipe setting each on a set outside the four, where a setting is chosen."""
    if not runs:
        return []
    rows = []
    for path, r in sorted(runs, key=lambda pr: (pr[1]["recipe"]["learning_rate"], pr[1]["recipe"]["epochs"])):
        rec = r["recipe"]
        for name, s in r["sets"].items():
            rows.append([f"`{path.name}`", name, rec["examples"], f"{rec['learning_rate']:g}", f"{rec['epochs']:g}",
                         s["examples"], f"{s['base']['ndcg@10']:.4f}", f"{s['adapted']['ndcg@10']:.4f}",
                         f"{s['ndcg@10_delta']:+.4f}", f"{s['p_permutation']:.4f}", _minutes(s["train_seconds"])])
    header = ["run", "set", "documents", "lr", "epochs", "pairs", "MiniLM", "adapted", "Δ", "p", "training time"]
    return ["### Choosing the generated-query recipe's training length and rate (outside the four sets)", "",
            "The same recipe (gemma-3-270m queries, MNRL, 1 hybrid-mined negative) at other learning rates and "
            "epochs, scored on a set that is none of the four; the best Δ there is the setting a `-chosen` run "
            "above applies unchanged.", "",
            *markdown_table(header, rows), ""]


def _adapter_rows(r: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    rows = []
    for name, s in r["sets"].items():
        t = s["trials"][0]
        rows.append([name, s["queries"], s["pseudo_queries"], f"{s['base']['ndcg@10']:.4f}",
                     f"{t['adapted']['ndcg@10']:.4f}", f"{t['ndcg@10_delta']:+.4f}", f"{t['p_permutation']:.4f}",
                     _verdict(t, r["alpha"]), f"{s['data_seconds'] + t['train_seconds']:.0f} s"])
    return ["set", "queries", "pseudo queries", "MiniLM", "adapted", "Δ", "p", "verdict", "data + training"], rows


def adapter_section(results: Path) -> list[str]:
    r = load_result(results / "train_adapter.json")
    if not r or not r.get("sets"):
        return []
    rec = r["recipe"]
    chosen = rec["chosen"]
    dev = r["dev"]
    grid = ", ".join(f"({t['sharpness']:g}, {t['l2']:g}): {t['ndcg@10_delta']:+.4f}" for t in dev["trials"])
    header, rows = _adapter_rows(r)
    out = [
        "### Embedding-space adapter (documents only)", "",
        "`benchmarks/run_train_adapter.py`: MiniLM itself untouched; a linear map of its vectors (started at the "
        "identity, pulled back towards it) distilled from the collection's own hybrid ranking (top "
        f"{rec['depth']}) on up to {rec['examples']} pseudo queries per set (inverse-cloze sentences, titles, "
        f"crops), the epoch kept by the distillation loss on held-out pseudo queries. Its two hyperparameters "
        f"(teacher sharpness, pull to the identity) were chosen on {rec['dev_set']}, a set outside the four "
        f"(nDCG@10 change there by (sharpness, pull): {grid}); the best, ({chosen['sharpness']:g}, {chosen['l2']:g}), "
        f"was applied unchanged below. Significant gains: "
        f"{r['gains_significant']} of {len(r['sets'])}.", "",
        *markdown_table(header, rows), "",
    ]
    generated = load_result(results / "train_adapter_generated.json")
    if generated and generated.get("sets"):
        rec = generated["recipe"]
        header, rows = _adapter_rows(generated)
        out += [
            "The same adapter on queries written by the offline generator instead (`run_train_adapter.py --pseudo "
            f"generated --choice {rec['choice_given']}`): gemma-3-270m base, few-shot from three hand-written "
            f"examples on no evaluation set, one greedy query for each of {rec['generated_documents']} documents "
            "per set (`generate_queries`: empty, copied and duplicate queries dropped), the setting chosen above "
            f"for the self-supervised queries. Significant gains: {generated['gains_significant']} of "
            f"{len(generated['sets'])}.", "",
            *markdown_table(header, rows), "",
        ]
    return out


def whitening_section(results: Path) -> list[str]:
    r = load_result(results / "train_whitening.json")
    if not r or not r.get("sets"):
        return []
    chosen = r["chosen"]
    dev = r["dev"]
    grid = ", ".join(f"{n}: {t['ndcg@10_delta']:+.4f}" for n, t in dev["transforms"].items())
    rows = []
    for name, s in r["sets"].items():
        t = s["transforms"][chosen]
        best = max(s["transforms"], key=lambda n: s["transforms"][n]["ndcg@10"])
        rows.append([name, s["queries"], f"{s['base']['ndcg@10']:.4f}", f"{t['ndcg@10']:.4f}",
                     f"{t['ndcg@10_delta']:+.4f}", f"{t['p_permutation']:.4f}", _verdict(t, r["alpha"]),
                     f"{best} {s['transforms'][best]['ndcg@10_delta']:+.4f}"])
    header = ["set", "queries", "MiniLM", chosen, "Δ", "p", "verdict", "best transform in hindsight"]
    return [
        "### Corpus statistics alone: centring, all-but-the-top, whitening (documents only)", "",
        "`benchmarks/run_train_whitening.py`: MiniLM's query and document vectors re-centred on the collection's "
        "document mean, stripped of its top principal directions (abttK) or partially whitened (whitenβ) with its "
        f"document covariance. Chosen on {dev['set']} (nDCG@10 change there: {grid}); {chosen} applied unchanged "
        f"below. Significant gains: {r['gains_significant']} of {len(r['sets'])}.", "",
        *markdown_table(header, rows), "",
    ]


def _curve(result: dict[str, Any]) -> str:
    curve = result.get("loss_curve")
    return f"{curve[0]:.3f} at the start, {curve[-1]:.3f} at the end" if curve else "not recorded"


def reranker_section(results: Path) -> list[str]:
    r = load_result(results / "train_reranker.json")
    if not r or "reranker_alone" not in r:
        return []
    rec = r["recipe"]
    lat = r["rerank_latency_ms"]
    alone, mixed = r["reranker_alone"], r["hybrid_reranked"]
    tuning = r["blend_tuning"]

    def delta(row: dict[str, Any]) -> str:
        return f"{row['ndcg@10_delta']:+.4f} (p={row['p_permutation']:.4f})"

    rows = [["hybrid (BM25 + MiniLM)", f"{r['hybrid']['ndcg@10']:.4f}", "", ""],
            [f"hybrid top {r['depth']} → reranker alone", f"{alone['ndcg@10']:.4f}", delta(alone), ""],
            [f"hybrid top {r['depth']} → reranker blended with hybrid (reranker share {mixed['blend']:g})",
             f"{mixed['ndcg@10']:.4f}", delta(mixed), f"{lat['median']:.0f} ms median, {lat['mean']:.0f} ms mean"]]
    by_blend = ", ".join(f"{w}: {v:.4f}" for w, v in tuning["by_blend"].items())
    target = r["hybrid"]["ndcg@10"] + 0.03
    return [
        "## Training: a reranker built offline (SciFact)", "",
        f"`benchmarks/run_train_reranker.py`: a cross-encoder initialised from the offline MiniLM's weights (a new "
        f"score head at learning rate {r.get('head_learning_rate') or '?'}, the body at {rec['learning_rate']:g}) "
        f"and trained here on SciFact `train` ({r.get('examples', '?')} examples from {r.get('train_queries', '?')} "
        f"queries, {rec['negatives']} hybrid-mined negatives each, {rec['loss']}, {rec['epochs']:g} epoch(s), "
        f"{_minutes(r['train_seconds']) if 'train_seconds' in r else '?'} of training; training loss {_curve(r)}), "
        f"reranking hybrid's top {r['depth']} on the `test` split. The blend — the reranker's share of the final "
        f"score, both stages z-normalised per query — was chosen on {r['dev_queries']} train queries held out of "
        f"training (nDCG@10 there: hybrid {tuning['first_stage']:.4f}; by share {by_blend}) and is recorded in the "
        f"model's card, so `--rerank FOLDER` ranks that way. p: paired randomization test over the test queries. "
        f"Latency: the reranking stage for one query and its {lat['candidates']} candidates ({lat['queries']} "
        f"queries, CPU, {r['machine']['cpus']} cores).", "",
        *markdown_table(["pipeline", "nDCG@10", "Δ vs hybrid", "rerank latency / query"], rows), "",
        f"Target (issue 13): ≥ {target:.4f} (hybrid + 3 points): "
        + (f"met by the blended pipeline ({mixed['ndcg@10']:.4f})." if mixed["ndcg@10"] >= target else
           f"not met (blended {mixed['ndcg@10']:.4f}).")
        + (f" Alone the reranker ranks far below hybrid ({alone['ndcg@10']:.4f}): what it adds only shows in the "
           "blend, so this is not yet a reranker to use on its own." if alone["ndcg@10"] < r["hybrid"]["ndcg@10"]
           else ""), "",
    ]


def teacher_section(results: Path) -> list[str]:
    r = load_result(results / "train_teacher.json")
    if not r or "check_scifact_train" not in r:
        return []
    rec = r["recipe"]
    rows = []
    for label, check in (("SQuAD questions held out of training", r["check_squad_held_out"]),
                         ("SciFact `train` queries (out of domain)", r["check_scifact_train"])):
        rows.append([label, check["queries"], f"{check['dense_ndcg@10']:.4f}", f"{check['teacher_ndcg@10']:.4f}",
                     f"{check['ndcg@10_delta']:+.4f}", f"{check['p_permutation']:.4f}"])
    better = r["check_scifact_train"]["ndcg@10_delta"] > 0 and r["check_scifact_train"]["significant_gain"]
    curve = r.get("loss_curve") or []
    fifths = [sum(part) / len(part) for part in (curve[i * len(curve) // 5:(i + 1) * len(curve) // 5] for i in range(5))
              if part] if len(curve) >= 5 else []
    return [
        "### A cross-encoder teacher for GPL, trained offline on SQuAD", "",
        "`benchmarks/run_train_teacher.py`: GPL distils a cross-encoder trained on another dataset (MS MARCO); none "
        "ships offline, so one is trained here from MiniLM's weights (a new score head) on "
        f"{r.get('examples', '?')} SQuAD v1.1 dev questions, none of the four sets ({rec['negatives']} hybrid-mined "
        f"negatives each, {rec['loss']}, {rec['epochs']:g} epoch, lr {rec['learning_rate']:g}, "
        f"{rec['max_length']} tokens, {r.get('steps', '?')} steps, "
        f"{_minutes(r['train_seconds']) if 'train_seconds' in r else '?'} of training; training loss "
        + (f"averaged over each fifth of the run {', '.join(f'{v:.3f}' for v in fifths)}" if fifths else _curve(r))
        + "). "
        f"Checked before use: the teacher alone reranking MiniLM's top {r['check_scifact_train']['depth']}, against "
        "MiniLM's own order (p: paired randomization test). A teacher is distilled only if it beats MiniLM "
        "significantly out of domain: "
        + ("it does." if better else "it does not, so GPL's recipe was not run with it."), "",
        *markdown_table(["queries", "n", "MiniLM", "teacher alone", "Δ", "p"], rows), "",
    ]


def training_sections(results: Path) -> list[str]:
    return (supervised_section(results) + adapt_section(results) + teacher_section(results)
            + adapter_section(results) + whitening_section(results) + reranker_section(results))
