"""The embedding cache key follows a local model folder's files: retraining into the same folder must not reuse the
old model's vectors (found by benchmarks/run_train_supervised.py)."""

from __future__ import annotations

import os
from pathlib import Path

from retrievekit.encoders.cache import spec_key


def spec(model: str) -> dict[str, object]:
    return {"backend": "sentence-transformers", "model": model, "pooling": "mean", "dim": 8, "normalize": True}


def test_retrained_folder_gets_a_new_key(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(b"weights v1")
    first = spec_key(spec(str(folder)))
    assert spec_key(spec(str(folder))) == first  # unchanged files: the same cache
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "state.bin").write_bytes(b"x")
    assert spec_key(spec(str(folder))) == first  # training checkpoints do not count
    weights.write_bytes(b"weights v2, retrained")
    os.utime(weights, ns=(1, 1))
    assert spec_key(spec(str(folder))) != first


def test_hub_names_keep_the_key_existing_caches_use() -> None:
    """Caches written before the fingerprint (hub names, aliases) are still found: their key is unchanged."""
    import hashlib
    import json

    s = spec("sentence-transformers/all-MiniLM-L6-v2")
    digest = hashlib.sha1(json.dumps({k: s[k] for k in sorted(s)}, sort_keys=True).encode()).hexdigest()[:16]
    assert spec_key(s) == f"sentence-transformers-all-MiniLM-L6-v2-{digest}"
