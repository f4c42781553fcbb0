"""Synthetic-query generation speed of the offline generator (gemma-3-270m base, transformers runtime): one prompt
at a time, ``generate_many`` batches in fp32, and batches under bf16 autocast — queries per second on the same
few-shot prompts for SciFact documents, and how often each path's query equals the one-at-a-time fp32 query.

    python benchmarks/run_generation_speed.py [--documents 48] [--batch 16]

Writes benchmarks/results/generation-speed.json (rendered into BENCHMARKS.md by report.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "scifact"
RESULTS = HERE / "results" / "generation-speed.json"
# written for this benchmark, on no evaluation set: what a user would hand `--examples`
EXAMPLES = [("Aspirin reduces the risk of heart attack in men over 50 by inhibiting platelet aggregation.",
             "does aspirin prevent heart attacks"),
            ("The Boeing 747 wing uses a supercritical airfoil to delay shock formation at transonic speeds.",
             "supercritical airfoil transonic shock delay"),
            ("A B-tree keeps keys sorted in nodes of many children so that lookups, inserts and deletes take "
             "logarithmic time on disk.", "why are b-trees used for disk indexes")]
MAX_TOKENS = 24


def documents(n: int) -> list[str]:
    if not (DATA / "corpus.jsonl").is_file():
        raise SystemExit(f"no SciFact corpus at {DATA} (the shared data folder beside this checkout)")
    out = []
    with (DATA / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            out.append(f"{doc.get('title', '')} {doc['text']}".strip())
            if len(out) == n:
                break
    return out


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=48)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from retrievekit.core.cpu import cpu_info
    from retrievekit.rag.generators.local import LocalGenerator
    from retrievekit.training.synthetic import build_prompt

    cpu = cpu_info()
    prompts = [build_prompt(d, EXAMPLES, "completion") for d in documents(args.documents)]
    result: dict[str, Any] = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu.model, "features": cpu.summary().get("features"), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "documents": len(prompts), "batch": args.batch, "max_tokens": MAX_TOKENS, "runs": []}
    reference: list[str] | None = None
    precisions = ["fp32", "bf16"] if cpu.native_bf16 else ["fp32"]
    for precision in precisions:
        started = time.perf_counter()
        gen = LocalGenerator(backend="transformers", precision=precision)
        load_seconds = round(time.perf_counter() - started, 1)
        gen.generate_many(prompts[:2], max_tokens=4, stop="\n")  # warm-up
        modes = ["one at a time", "generate_many"] if precision == "fp32" else ["generate_many"]
        for mode in modes:
            before = load()
            started = time.perf_counter()
            if mode == "one at a time":
                texts = [gen.generate(p, max_tokens=MAX_TOKENS, stop="\n") for p in prompts]
            else:
                texts = []
                for start in range(0, len(prompts), args.batch):
                    texts += gen.generate_many(prompts[start:start + args.batch], max_tokens=MAX_TOKENS, stop="\n")
            seconds = time.perf_counter() - started
            reference = reference or texts
            same = sum(a.strip() == b.strip() for a, b in zip(texts, reference)) / len(texts)
            run = {"precision": precision, "mode": mode, "seconds": round(seconds, 2),
                   "queries_per_second": round(len(texts) / seconds, 2), "load_seconds": load_seconds,
                   "same_as_one_at_a_time_fp32": round(same, 3), "load_before": before, "load_after": load(),
                   "queries": [t.strip() for t in texts]}
            result["runs"].append(run)
            print(json.dumps({k: run[k] for k in ("precision", "mode", "queries_per_second",
                                                  "same_as_one_at_a_time_fp32")}), flush=True)
        gen.close()
    base = result["runs"][0]["queries_per_second"]
    for run in result["runs"]:
        run["speedup"] = round(run["queries_per_second"] / base, 2)
    result["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


def render(result: dict[str, Any]) -> str:
    machine = result["machine"]
    lines = [
        "## Synthetic-query generation speed (issue 13)", "",
        f"`python benchmarks/run_generation_speed.py` ({result['started_at']} to {result['finished_at']}) on "
        f"{machine['cpu']} ({machine['cores']} cores; {', '.join(machine.get('features') or [])}): the offline "
        f"generator (gemma-3-270m base, transformers runtime, int8 output projection) writing one query for each "
        f"of the first {result['documents']} SciFact documents from the same three-example few-shot prompt "
        f"(greedy, at most {result['max_tokens']} tokens, stop at the line end); `generate_many` takes "
        f"{result['batch']} prompts per call.", "",
        "| precision | how | queries/s | × one at a time | same query as one at a time (fp32) |",
        "|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        lines.append(f"| {run['precision']} | {run['mode']} | {run['queries_per_second']:.2f} | "
                     f"{run['speedup']:.2f}× | {run['same_as_one_at_a_time_fp32']:.0%} |")
    lines += ["", "- A batch pads its prompts on the left and runs the int8 output projection one row at a time "
              "(dynamic quantisation scales its input per call; rows sharing one scale changed each other's "
              "queries), so fp32 batches give the one-at-a-time text; bf16 rounding changes many greedy choices "
              "(the share above). `retrievekit generate-queries` batches a local generator's prompts "
              "(`--batch-size`, default 16) and takes `--precision bf16`."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
