"""Image-text retrieval evaluation (the Flickr convention): exact recall values on a hand-built 3-image set with an
encoder whose vectors the test controls, sanity properties with a tiny random CLIP on the first 20 images of
flickr8k-1k, the errors, and ``retrievekit eval --mode image``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("PIL")
from paths import shared_data
from PIL import Image
from toy_encoder import ToyEncoder

from retrievekit.core.errors import RetrievekitError
from retrievekit.encoders.clip import ImageTextEncoder
from retrievekit.evaluation.image_text import best_ranks, evaluate_image_text

# three images, each a solid colour whose red channel names it; the encoder maps it to a unit vector
IMAGE_VECTORS = {"A": [1, 0, 0], "B": [0, 1, 0], "C": [0, 0, 1]}
RED = {"A": 40, "B": 120, "C": 200}
# caption -> (its image, its vector); the comment is the text->image ranking (ties keep the corpus order A, B, C)
CAPTIONS = {
    "a1": ("A", [1, 0, 0]),        # A B C          -> A at rank 1
    "a2": ("A", [0, 1, 0]),        # B, then A = C  -> A at rank 2
    "b1": ("B", [0.6, 0, 0.8]),    # C A B          -> B at rank 3
    "c1": ("C", [0, 0.6, 0.8]),    # C B A          -> C at rank 1
    "c2": ("C", [1, 0, 1]),        # A = C, then B  -> C at rank 2 (the tie goes to A, earlier in the corpus)
}


class FakeImageText(ImageTextEncoder):
    """Vectors set by the test: an image's from its red channel, a caption's from its text."""

    backend = "fake"
    name = "fake-clip"

    @property
    def dim(self) -> int:
        return 3

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        return np.array([CAPTIONS[t][1] for t in texts], dtype=np.float32)

    def _encode_image_batch(self, images: list[Any]) -> np.ndarray:
        by_red = {red: IMAGE_VECTORS[name] for name, red in RED.items()}
        return np.array([by_red[img.getpixel((0, 0))[0]] for img in images], dtype=np.float32)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def three(tmp_path) -> Path:
    folder = tmp_path / "three"
    (folder / "images").mkdir(parents=True)
    (folder / "qrels").mkdir()
    for name, red in RED.items():
        Image.new("RGB", (8, 6), (red, 10, 10)).save(folder / "images" / f"{name}.png")
    _write_jsonl(folder / "corpus.jsonl", [{"_id": n, "title": "", "text": "", "image": f"images/{n}.png"}
                                           for n in RED])
    _write_jsonl(folder / "queries.jsonl", [{"_id": c, "text": c} for c in CAPTIONS]
                 + [{"_id": "unjudged", "text": "not in the qrels"}])
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                               + "".join(f"{c}\t{img}\t1\n" for c, (img, _) in CAPTIONS.items()))
    return folder


def test_exact_recall_both_directions_with_ties_broken_by_order(three):
    out = evaluate_image_text(three, FakeImageText(), ks=(1, 2, 3, 5))
    assert (out["images"], out["captions"], out["images_without_captions"]) == (3, 5, 0)
    # text->image ranks: a1 1, a2 2, b1 3, c1 1, c2 2
    t2i = out["text_to_image"]
    assert (t2i["recall@1"], t2i["recall@2"], t2i["recall@3"], t2i["recall@5"]) == (0.4, 0.8, 1.0, 1.0)
    assert (t2i["median_rank"], t2i["mean_rank"], t2i["queries"]) == (2.0, 1.8, 5)
    # image->text, captions in file order a1 a2 b1 c1 c2: A ranks a1 first (1); B ranks a2 (1), c1 (.6), then its
    # b1 ties a1 and is after it (4); C ties b1 and c1 at .8, b1 first, so its best caption c1 is at 2
    i2t = out["image_to_text"]
    assert i2t["recall@1"] == pytest.approx(1 / 3, abs=1e-6)
    assert i2t["recall@2"] == pytest.approx(2 / 3, abs=1e-6)
    assert i2t["recall@3"] == pytest.approx(2 / 3, abs=1e-6)
    assert i2t["recall@5"] == 1.0
    assert (i2t["median_rank"], i2t["queries"]) == (2.0, 3)
    assert out["rsum"] == pytest.approx(100 * (0.4 + 0.8 + 1 + 1 + 1 / 3 + 2 / 3 + 2 / 3 + 1), abs=1e-3)
    assert out["model"] == "fake-clip" and set(out["seconds"]) == {"encode_images", "encode_captions", "score"}


def test_limit_keeps_the_first_images_and_only_their_captions(three):
    out = evaluate_image_text(three, FakeImageText(), ks=(1, 2), limit=2)
    assert (out["images"], out["captions"]) == (2, 3)  # A, B and a1, a2, b1
    # over A, B only: a1 -> A first; a2 -> B, A; b1 ([.6, 0, .8]) -> A .6, B 0
    assert (out["text_to_image"]["recall@1"], out["text_to_image"]["recall@2"]) == (pytest.approx(1 / 3), 1.0)


def test_best_ranks_takes_the_best_of_several_relevant_items():
    scores = np.array([[0.1, 0.9, 0.5, 0.5], [0.2, 0.2, 0.2, 0.2]], dtype=np.float32)
    assert best_ranks(scores, [[0, 3], [3, 2]]).tolist() == [3, 3]


def test_errors_name_the_problem(three, tmp_path):
    with pytest.raises(RetrievekitError, match="needs an image-text encoder.*toy:toy is a text encoder"):
        evaluate_image_text(three, ToyEncoder())
    with pytest.raises(RetrievekitError, match="no such image-text dataset folder"):
        evaluate_image_text(tmp_path / "nowhere", FakeImageText())
    (tmp_path / "empty").mkdir()
    with pytest.raises(RetrievekitError, match="corpus.jsonl is missing"):
        evaluate_image_text(tmp_path / "empty", FakeImageText())
    with pytest.raises(RetrievekitError, match="no split 'dev'"):
        evaluate_image_text(three, FakeImageText(), split="dev")
    for bad in ({"ks": ()}, {"ks": (0, 5)}, {"limit": 0}, {"batch_size": 0}):
        with pytest.raises(RetrievekitError, match="ks must be|limit must be|batch_size must be"):
            evaluate_image_text(three, FakeImageText(), **bad)
    (three / "images" / "B.png").unlink()
    (three / "images" / "C.png").unlink()
    with pytest.raises(RetrievekitError, match=r"2 of the 3 image files .* missing: .*B\.png, .*C\.png"):
        evaluate_image_text(three, FakeImageText())
    _write_jsonl(three / "corpus.jsonl", [{"_id": "A", "image": "images/A.png"}, {"_id": "B", "text": "no picture"}])
    with pytest.raises(RetrievekitError, match="line 2: document 'B' has no 'image' field"):
        evaluate_image_text(three, FakeImageText())
    _write_jsonl(three / "corpus.jsonl", [{"_id": "A", "image": "images/A.png"}])
    with pytest.raises(RetrievekitError, match="judges 3 caption-image pairs whose image is not in corpus.jsonl"):
        evaluate_image_text(three, FakeImageText())


# ------------------------------------------------------------------------------------ tiny random CLIP, flickr8k


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    from clip_helpers import make_tiny_clip

    model = make_tiny_clip(tmp_path_factory.mktemp("clip"))
    # the tiny model has 32 text positions and no length limit in its tokenizer: set one, as real CLIP
    # tokenizers do (77), so that long captions are truncated instead of overflowing the position table
    config = model / "tokenizer_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "model_max_length": 32}))
    return model


def test_tiny_clip_on_the_first_20_flickr_images(tiny_clip):
    from retrievekit.encoders import get_encoder

    folder = shared_data("flickr8k-1k")
    out = evaluate_image_text(folder, get_encoder(f"clip:{tiny_clip}"), ks=(1, 5, 10, 20, 100), limit=20)
    assert (out["images"], out["captions"], out["images_without_captions"]) == (20, 100, 0)
    assert (out["text_to_image"]["queries"], out["image_to_text"]["queries"]) == (100, 20)
    for direction in ("text_to_image", "image_to_text"):
        recalls = [out[direction][f"recall@{k}"] for k in (1, 5, 10, 20, 100)]
        assert all(0.0 <= r <= 1.0 for r in recalls)
        assert recalls == sorted(recalls)  # monotone in K
    # K >= the number of items ranked: every query finds its match
    assert out["text_to_image"]["recall@20"] == 1.0  # 20 images
    assert out["image_to_text"]["recall@100"] == 1.0  # 100 captions
    assert out["images_per_second"] > 0 and out["captions_per_second"] > 0


def test_cli_eval_mode_image(tiny_clip):
    folder = shared_data("flickr8k-1k")
    args = [sys.executable, "-m", "retrievekit", "eval", str(folder), "--mode", "image", "--model",
            f"clip:{tiny_clip}", "--no-progress"]
    done = subprocess.run([*args, "--limit", "10", "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["images"], out["captions"], out["limit"]) == (10, 50, 10)
    assert out["text_to_image"]["recall@10"] == 1.0  # 10 images
    assert 0.0 <= out["image_to_text"]["recall@1"] <= out["image_to_text"]["recall@5"] <= 1.0
    wrong = subprocess.run([*args, "--limit", "10", "--system", "lucene"], capture_output=True, text=True,
                           timeout=300)
    assert wrong.returncode != 0 and "do not apply to it: --system" in wrong.stderr
