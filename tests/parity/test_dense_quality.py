"""Dense retrieval quality against the published reference (slow: encodes SciFact unless the cache has it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_minilm_scifact_matches_mteb(data_dir: Path) -> None:
    # Use the user's embedding cache when it is warm (benchmarks/embed_corpora.py fills it); else encode (~10 min).
    env = {k: v for k, v in os.environ.items() if k != "RETRIEVEKIT_CACHE"}
    proc = subprocess.run([sys.executable, "-m", "retrievekit", "eval", str(data_dir / "scifact"), "--mode", "dense",
                           "--no-progress", "--json"], capture_output=True, text=True, env=env, timeout=3600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["queries"] == 300
    assert abs(report["ndcg@10"] - 0.6451) <= 0.003  # MTEB: sentence-transformers/all-MiniLM-L6-v2 on SciFact
    assert abs(report["recall@100"] - 0.925) <= 0.005
