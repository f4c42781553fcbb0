"""The other image-text backends beside sentence-transformers' CLIP: ``hf-clip`` (transformers: CLIP, SigLIP ...)
and ``open-clip`` (the open_clip library), each with a tiny random model built in the test. hf-clip must compute
the same vectors as the clip backend for the same CLIP weights, pad SigLIP texts to the full window (so a text's
vector does not depend on its batch), record the image preprocessing in the spec and rebuild from it. open_clip
needs torchvision, which does not import beside this project's pinned CPU torch: its tests run where open_clip
imports (``benchmarks/check_open_clip.sh`` builds such an environment), and here only its naming rules and its
clear error are checked."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("PIL")
from clip_helpers import make_tiny_open_clip, make_tiny_siglip
from PIL import Image

from retrievekit import Collection
from retrievekit.core.errors import RetrievekitError
from retrievekit.encoders import get_encoder
from retrievekit.encoders.clip import ImageTextEncoder
from retrievekit.encoders.openclip import open_clip_source


def _image(seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype("uint8"))


def _open_clip_imports() -> bool:
    if importlib.util.find_spec("open_clip") is None:
        return False
    try:
        import open_clip  # noqa: F401
    except Exception:  # torchvision built for another torch
        return False
    return True


needs_open_clip = pytest.mark.skipif(not _open_clip_imports(),
                                     reason="open_clip (with a torchvision matching torch) is not importable "
                                            "here; benchmarks/check_open_clip.sh runs these tests where it is")

TEXTS = ["a red car", "two dogs running on the green grass by the river", "x"]


@pytest.fixture(scope="module")
def tiny_clip_folders(tmp_path_factory):
    from clip_helpers import make_tiny_clip

    st = make_tiny_clip(tmp_path_factory.mktemp("clip"))
    return st, st.parent / "hf"  # the sentence-transformers folder and the transformers CLIP inside it


@pytest.fixture(scope="module")
def tiny_siglip(tmp_path_factory) -> Path:
    return make_tiny_siglip(tmp_path_factory.mktemp("siglip"))


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_hf_clip_computes_the_clip_backends_vectors(tiny_clip_folders):
    st, hf = tiny_clip_folders
    ours, theirs = get_encoder(f"hf-clip:{hf}"), get_encoder(f"clip:{st}")
    assert isinstance(ours, ImageTextEncoder) and ours.dim == theirs.dim == 16
    assert ours.spec()["padding"] == "longest" and ours.max_length == 32
    assert np.all(_cosines(ours.encode_queries(TEXTS), theirs.encode_queries(TEXTS)) > 0.9999)
    images = [_image(1), _image(2, (64, 20)), _image(3, (20, 70))]
    assert np.all(_cosines(ours.encode_images(images), theirs.encode_images(images)) > 0.9999)
    preprocessing = ours.spec()["image_preprocessing"]
    assert preprocessing["crop_size"] == {"height": 32, "width": 32} and preprocessing["resample"] == 3
    assert preprocessing == theirs.spec()["image_preprocessing"]  # both read the same processor config


def test_siglip_pads_to_the_window_and_rebuilds_from_its_spec(tiny_siglip):
    enc = get_encoder(f"hf-clip:{tiny_siglip}")
    spec = enc.spec()
    assert spec["padding"] == "max_length" and spec["max_length"] == 16 and spec["dim"] == 32
    assert spec["image_preprocessing"]["size"] == {"height": 32, "width": 32}
    alone = np.vstack([enc.encode([t]) for t in TEXTS])
    assert np.allclose(enc.encode(TEXTS), alone, atol=1e-5)  # full-window padding: batch-independent vectors
    long_text = "word " * 200  # far over the 16-token window: truncated, not an error
    assert enc.encode([long_text]).shape == (1, 32)
    again = get_encoder(spec)
    assert again.spec() == spec
    picture = _image(5)
    assert np.allclose(again.encode_images([picture]), enc.encode_images([picture]), atol=1e-6)


def test_an_image_collection_searches_through_hf_clip(tmp_path, tiny_siglip):
    paths = []
    for i in range(6):
        paths.append(str(tmp_path / f"p{i}.png"))
        _image(10 + i).save(paths[-1])
    col = Collection.create(tmp_path / "c", dense=f"hf-clip:{tiny_siglip}")
    assert col.index_config("dense")["modality"] == "image"
    col.add([{"id": f"p{i}", "text": f"caption {i}", "metadata": {"image": p}} for i, p in enumerate(paths)])
    found = col.search_images(paths[:3], k=2)
    assert [found.ids[i][0] for i in range(3)] == ["p0", "p1", "p2"]
    reopened = Collection.open(tmp_path / "c")  # the stored spec rebuilds the hf-clip encoder for text queries
    assert len(reopened.search(["caption"], 6, mode="dense").hits(0)) == 6


def test_hf_clip_refuses_a_text_model(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(tmp_path / "bert")
    with pytest.raises(RetrievekitError, match="not an image-text model"):
        get_encoder(f"hf-clip:{tmp_path / 'bert'}")
    with pytest.raises(RetrievekitError, match="cannot load the image-text model"):
        get_encoder(f"hf-clip:{tmp_path / 'empty-folder-that-is-not-there'}")


def test_open_clip_names(tmp_path):
    assert open_clip_source("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K")[:2] == (
        "hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", None)
    assert open_clip_source("ViT-B-32@laion2b_s34b_b79k")[:2] == ("ViT-B-32", "laion2b_s34b_b79k")
    with pytest.raises(RetrievekitError, match="random weights"):
        open_clip_source("ViT-B-32")  # open_clip would build it untrained, silently
    (tmp_path / "m").mkdir()
    with pytest.raises(RetrievekitError, match="no open_clip_config.json"):
        open_clip_source(str(tmp_path / "m"))
    (tmp_path / "m" / "open_clip_config.json").write_text("{}")
    assert open_clip_source(str(tmp_path / "m"))[0] == f"local-dir:{(tmp_path / 'm').resolve()}"


@pytest.mark.skipif(_open_clip_imports(), reason="open_clip imports here")
def test_open_clip_missing_says_what_to_install(tmp_path):
    with pytest.raises(RetrievekitError, match="open_clip"):
        get_encoder(f"open-clip:{tmp_path}")


@needs_open_clip
def test_open_clip_texts_and_images_embed_and_rebuild(tmp_path):
    folder = make_tiny_open_clip(tmp_path / "oc")
    enc = get_encoder(f"open-clip:{folder}")
    assert isinstance(enc, ImageTextEncoder) and enc.dim == 16 and enc.max_length == 16
    texts = enc.encode_queries(TEXTS + ["word " * 100])  # the long one is cut to the context by the tokenizer
    images = enc.encode_images([_image(1), _image(2, (64, 20))])
    assert texts.shape == (4, 16) and images.shape == (2, 16)
    assert np.allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    spec = enc.spec()
    assert spec["image_preprocessing"]["mean"][0] == pytest.approx(0.48145466)
    assert np.allclose(get_encoder(spec).encode_images([_image(1)]), images[:1], atol=1e-6)
    with pytest.raises(RetrievekitError, match="reads texts of 16 tokens"):
        get_encoder(f"open-clip:{folder}", max_length=77)


@needs_open_clip
def test_an_image_collection_searches_through_open_clip(tmp_path):
    folder = make_tiny_open_clip(tmp_path / "oc")
    paths = []
    for i in range(5):
        paths.append(str(tmp_path / f"p{i}.png"))
        _image(20 + i).save(paths[-1])
    col = Collection.create(tmp_path / "c", dense=f"open-clip:{folder}")
    col.add([{"id": f"p{i}", "metadata": {"image": p}} for i, p in enumerate(paths)])
    found = col.search_images(paths, k=1)
    assert [found.ids[i][0] for i in range(5)] == [f"p{i}" for i in range(5)]
