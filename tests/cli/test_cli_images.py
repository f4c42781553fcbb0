"""``retrievekit index --images`` and ``search --image`` with a tiny random CLIP model built in the test."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("PIL")
from clip_helpers import make_tiny_clip
from PIL import Image


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "retrievekit", *args], capture_output=True, text=True, timeout=300)


def test_index_images_then_search_by_image_and_by_text(tmp_path):
    model = make_tiny_clip(tmp_path / "clip")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        rng = np.random.default_rng(i)
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype("uint8")).save(photos / f"p{i}.png")
    (photos / "p2.txt").write_text("a red bicycle")
    (photos / "bad.png").write_text("not an image")
    out = cli("index", str(photos), str(tmp_path / "col"), "--images", "--dense", f"clip:{model}", "--hash", "dhash",
              "--no-progress", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["documents"] == 4 and len(report["skipped"]) == 1 and "bad.png" in report["skipped"][0][0]
    found = cli("search", str(tmp_path / "col"), "--image", str(photos / "p3.png"), "-k", "2", "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["results"][0]["hits"]
    assert hits[0]["id"] == "p3.png" and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert "thumbnail" not in hits[0]["metadata"]
    composed = cli("search", str(tmp_path / "col"), "bicycle", "--image", str(photos / "p0.png"), "--json")
    assert composed.returncode == 0 and json.loads(composed.stdout)["results"][0]["hits"]
    text = cli("search", str(tmp_path / "col"), "bicycle", "--mode", "bm25", "--json")
    assert json.loads(text.stdout)["results"][0]["hits"][0]["id"] == "p2.png"  # BM25 over captions
    dup = cli("search", str(tmp_path / "col"), "--image", str(photos / "p1.png"), "--near-duplicates", "-k", "1",
              "--json")
    assert dup.returncode == 0, dup.stderr
    assert json.loads(dup.stdout)["results"][0]["hits"][0] == {**json.loads(dup.stdout)["results"][0]["hits"][0],
                                                               "id": "p1.png", "score": 64.0}
    wrong = cli("index", str(photos), str(tmp_path / "col2"), "--images", "--passages", "sentences")
    assert wrong.returncode != 0 and "--passages does not apply to --images" in wrong.stderr
