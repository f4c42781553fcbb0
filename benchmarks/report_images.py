"""BENCHMARKS.md section for near-duplicate image search (``run_near_duplicates.py``:
``results/near_duplicates.json``)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from report_common import load_result, markdown_table


def _recall(edit: dict[str, Any]) -> str:
    r1, strict = edit["recall@1"], edit["recall@1_strict"]
    return f"{r1:.3f}" if strict == r1 else f"{r1:.3f} ({strict:.3f})"


def images_sections(results: Path) -> list[str]:
    result = load_result(results / "near_duplicates.json")
    if not result:
        return []
    kinds: dict[str, Any] = result["kinds"]
    edits = list(next(iter(kinds.values()))["edits"])
    k = result["options"]["k"]
    machine = result["machine"]
    kernel = "compiled" if machine["hamming_kernel_compiled"] else "numpy"
    lines = ["## Near-duplicate images (issue 16)", "",
             f"`python benchmarks/run_near_duplicates.py` ({result['date']}; {machine['cpus']} cores, load "
             f"{machine['load_average'][0]}; Hamming kernel {kernel}): "
             f"the {result['images']:,} images of flickr8k-1k are hashed into a `HashIndex` "
             f"({result['code_bytes'] * 8}-bit ImageHash hashes); every image is edited and the edited copy searched. "
             "Recall@1: the original is ranked first (ties by insertion order); in parentheses, when lower, "
             "strict Recall@1: the original strictly nearer than any other image. "
             + "; ".join(f"`{name}`: {text}" for name, text in result["edits"].items()) + ".", ""]
    headers = ["hash", *[f"R@1 {e}" for e in edits], f"goal ({result['goal']})", "hash ms / image",
               f"search q/s (batch of {result['images']:,})", "1 query p50 µs"]
    rows = []
    for kind, entry in kinds.items():
        searches = [e["search"] for e in entry["edits"].values()]
        qps = statistics.median(s["batch_queries_per_s"] for s in searches)
        p50 = statistics.median(s["single_query_p50_us"] for s in searches)
        rows.append([kind, *[_recall(entry["edits"][e]) for e in edits], "met" if entry["goal_met"] else "**not met**",
                     f"{entry['hash_ms_per_image_all']:.2f}", f"{qps:,.0f}", f"{p50:.0f}"])
    lines += markdown_table(headers, rows) + [""]
    worst = min(((kind, e, entry["edits"][e][f"recall@{k}"]) for kind, entry in kinds.items() for e in edits),
                key=lambda t: t[2])
    lines += [f"Recall@{k} is at least {worst[2]:.3f} everywhere (lowest: {worst[0]} on {worst[1]}). Hashing "
              "(ImageHash, per image, decode and edit excluded) costs far more than searching; search q/s is the "
              "median over the edits of the best of the timed batch searches, on a shared 2-core machine.", ""]
    return lines
