"""Pareto plot of the compressed tiers: nDCG@10 relative to float32 against bytes per vector, one panel per set,
from benchmarks/results/tiers_real.json (written by run_tiers.py). Output: benchmarks/results/tiers_pareto.png.

    python benchmarks/plot_tiers.py
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def pareto(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Points not beaten by a smaller-or-equal one with a higher-or-equal score, by size."""
    best: list[tuple[float, float, str]] = []
    for size, score, name in sorted(points, key=lambda p: (p[0], -p[1])):
        if not best or score > best[-1][1]:
            best.append((size, score, name))
    return best


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    doc = json.loads((RESULTS / "tiers_real.json").read_text())
    rows = [r for r in doc["results"] if "skipped" not in r]
    sets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 4.5), squeeze=False)
    for ax, name in zip(axes[0], sets):
        points = [(r["bytes_per_vector"], r["relative_ndcg@10"], r["tier"]) for r in rows if r["dataset"] == name]
        rescored = [p for p in points if "rescore" in p[2]]
        plain = [p for p in points if "rescore" not in p[2]]
        ax.scatter([p[0] for p in plain], [p[1] for p in plain], label="candidate tier alone", marker="o")
        ax.scatter([p[0] for p in rescored], [p[1] for p in rescored], label="+ float rescoring", marker="^")
        front = pareto(points)
        ax.plot([p[0] for p in front], [p[1] for p in front], linestyle="--", linewidth=1, color="gray")
        for size, score, tier in points:
            ax.annotate(tier, (size, score), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("bytes per vector (in-memory candidate tier)")
        ax.set_ylabel("nDCG@10 relative to float32")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle("all-MiniLM-L6-v2 (384-d, float32 = 1536 bytes): quality vs memory of each tier")
    fig.tight_layout()
    out = RESULTS / "tiers_pareto.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
