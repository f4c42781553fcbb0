"""The onnx-clip backend against the clip backend on a tiny random CLIP built in the test (no CLIP weights ship on
PyPI): the same text and image vectors (longer texts truncated alike, images of any size and aspect ratio), image
preprocessing equal to transformers' CLIPImageProcessor, one export reused by later constructions, inference without
torch, an image collection that ranks as the clip backend's does and accepts either backend's queries, and clear
errors for what it cannot do."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")
from clip_helpers import make_tiny_clip
from PIL import Image

import retrievekit.encoders.onnx_clip as onnx_clip
from retrievekit import Collection
from retrievekit.core.errors import MissingExtraError
from retrievekit.encoders import get_encoder
from retrievekit.encoders.base import check_compatible
from retrievekit.encoders.clip import preprocessing_settings
from retrievekit.encoders.onnx import ONNXExportError

TEXTS = ["a red car", "two dogs on grass, playing!", "x", "a very long caption " * 40, "Upper Case and émoji 🙂"]
SIZES = [(48, 40), (40, 48), (32, 32), (200, 31), (17, 90), (3, 5)]  # (width, height): wide, tall, tiny


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def onnx_encoder(tiny_clip: Path, onnx_cache: Path) -> onnx_clip.ONNXClipEncoder:
    return onnx_clip.ONNXClipEncoder(str(tiny_clip), cache_dir=onnx_cache)


@pytest.fixture(scope="module")
def clip_encoder(tiny_clip: Path):  # type: ignore[no-untyped-def]
    return get_encoder(f"clip:{tiny_clip}")


def _image(seed: int, size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype("uint8"))


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_vectors_match_the_clip_backend(onnx_encoder, clip_encoder) -> None:  # type: ignore[no-untyped-def]
    assert onnx_encoder.max_length == clip_encoder.max_length == 32  # the tiny model's text window
    for name, ours, theirs in [("queries", onnx_encoder.encode_queries(TEXTS), clip_encoder.encode_queries(TEXTS)),
                               ("documents", onnx_encoder.encode_documents(TEXTS),
                                clip_encoder.encode_documents(TEXTS))]:
        assert ours.shape == (len(TEXTS), 16), name
        assert _cosines(ours, theirs).min() > 0.9999, (name, _cosines(ours, theirs))
    images = [_image(i, size) for i, size in enumerate(SIZES)]
    ours, theirs = onnx_encoder.encode_images(images), clip_encoder.encode_images(images)
    assert ours.shape == (len(SIZES), 16) and np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert _cosines(ours, theirs).min() > 0.9999, _cosines(ours, theirs)
    assert _cosines(ours[:1], ours[1:2])[0] < 0.999  # different pictures: different vectors
    # the same prompt prefixes queries in both backends
    prompted = get_encoder(onnx_encoder.spec(), query_prompt="a photo of ", cache_dir=onnx_encoder.folder.parent)
    reference = clip_encoder.encode([f"a photo of {t}" for t in TEXTS])
    assert _cosines(prompted.encode_queries(TEXTS), reference).min() > 0.9999


def test_specs_are_interchangeable_with_the_clip_backend(onnx_encoder, clip_encoder) -> None:  # type: ignore[no-untyped-def]
    spec = onnx_encoder.spec()
    assert spec["backend"] == "onnx-clip" and spec["modalities"] == ["text", "image"] and spec["dim"] == 16
    check_compatible(clip_encoder.spec(), spec)  # onnx-clip queries for a clip index ...
    check_compatible(spec, clip_encoder.spec())  # ... and the other way round
    assert spec["image_preprocessing"] == clip_encoder.spec()["image_preprocessing"]
    rebuilt = get_encoder(spec, cache_dir=onnx_encoder.folder.parent)  # a stored spec rebuilds the same encoder
    assert rebuilt.spec() == spec and rebuilt.folder == onnx_encoder.folder


def test_a_transformers_clip_folder_matches_the_hf_clip_backend(tiny_clip: Path, onnx_cache: Path,  # type: ignore[no-untyped-def]
                                                                onnx_encoder) -> None:
    folder = tiny_clip.parent / "hf"  # the transformers CLIP that the sentence-transformers folder wraps
    ours = get_encoder(f"onnx-clip:{folder}", cache_dir=onnx_cache)
    theirs = get_encoder(f"hf-clip:{folder}")
    check_compatible(theirs.spec(), ours.spec())
    images = [_image(i, size) for i, size in enumerate(SIZES)]
    for a, b in [(ours.encode_queries(TEXTS), theirs.encode_queries(TEXTS)),
                 (ours.encode_images(images), theirs.encode_images(images))]:
        assert _cosines(a, b).min() > 0.9999, _cosines(a, b)
    # the same weights reached through the sentence-transformers folder
    assert np.allclose(ours.encode_images(images), onnx_encoder.encode_images(images), atol=1e-6)


@pytest.mark.parametrize("settings", [
    {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}},  # CLIP's own
    {"size": {"shortest_edge": 20}, "crop_size": {"height": 24, "width": 28}},  # crop larger than the image: padding
    {"size": {"height": 30, "width": 26}, "do_center_crop": False, "resample": 2},  # fixed size, bilinear
])
def test_image_preprocessing_equals_clip_image_processor(settings) -> None:  # type: ignore[no-untyped-def]
    from transformers import CLIPImageProcessor

    processor = CLIPImageProcessor(**settings)
    steps = onnx_clip.ImageSteps.from_settings(preprocessing_settings(processor.to_dict()))
    for i, size in enumerate([*SIZES, (33, 33), (31, 64)]):
        image = _image(i, size)
        expected = processor(images=image, return_tensors="np")["pixel_values"][0]
        got = steps(image)
        assert got.dtype == np.float32 and got.shape == expected.shape, (settings, size, got.shape)
        assert np.abs(got - expected).max() < 1e-6, (settings, size)


def test_a_second_construction_reuses_the_export(onnx_encoder, tiny_clip: Path, onnx_cache: Path,  # type: ignore[no-untyped-def]
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    files = [onnx_encoder.folder / name for name in (onnx_clip.TEXT_FILE, onnx_clip.VISION_FILE, "meta.json")]
    mtimes = [f.stat().st_mtime_ns for f in files]

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached export should have been used")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    monkeypatch.setattr(onnx_clip, "_export_into", refuse)
    again = get_encoder(f"onnx-clip:{tiny_clip}", cache_dir=onnx_cache)
    assert again.folder == onnx_encoder.folder
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    assert not [p.name for p in onnx_cache.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    assert np.allclose(again.encode_queries(TEXTS[:2]), onnx_encoder.encode_queries(TEXTS[:2]), atol=1e-6)
    assert onnx_clip.cached_clip_export(str(tiny_clip), cache_dir=onnx_cache) == onnx_encoder.folder


def test_inference_does_not_import_torch(onnx_encoder, tiny_clip: Path, onnx_cache: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    picture = tmp_path / "p.png"
    _image(7, (50, 30)).save(picture)
    script = f"""
import json, sys
from retrievekit.encoders import get_encoder
enc = get_encoder({f"onnx-clip:{tiny_clip}"!r}, cache_dir={str(onnx_cache)!r})
out = {{"text": enc.encode_queries({TEXTS!r}).tolist(), "image": enc.encode_images([{str(picture)!r}]).tolist(),
       "loaded": sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)}}
print(json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["loaded"] == [], f"inference imported {out['loaded']}"
    assert np.allclose(out["text"], onnx_encoder.encode_queries(TEXTS), atol=1e-6)
    assert np.allclose(out["image"], onnx_encoder.encode_images([picture]), atol=1e-6)


def test_an_image_collection_ranks_as_with_the_clip_backend(tiny_clip: Path, onnx_home: Path, onnx_encoder,  # type: ignore[no-untyped-def]
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRIEVEKIT_CACHE", str(onnx_home))  # the module's export: no second one
    monkeypatch.setenv("RETRIEVEKIT_EMBEDDING_CACHE", "off")  # every vector computed by its own backend
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, size in enumerate(SIZES + [(64, 48), (30, 60)]):
        _image(i, size).save(photos / f"p{i}.png")
    (photos / "p0.txt").write_text("a caption for the first picture")
    collections = {}
    for backend in ("onnx-clip", "clip"):
        col = Collection.create(tmp_path / backend, dense=f"{backend}:{tiny_clip}")
        assert col.ingest_images(photos)["documents"] == 8
        assert col.index_config("dense")["modality"] == "image"
        collections[backend] = col
    onnx_col, clip_col = collections["onnx-clip"], collections["clip"]
    queries = [photos / "p1.png", photos / "p5.png", _image(99, (45, 45))]
    texts = ["a caption", "two dogs", "p3"]
    runs = {
        "image": (onnx_col.search_images(queries, k=8), clip_col.search_images(queries, k=8)),
        "text": (onnx_col.search(texts, 8, mode="dense"), clip_col.search(texts, 8, mode="dense")),
        # each index searched with the other backend's query encoder
        "crossed": (onnx_col.search(texts, 8, mode="dense", encoder=f"clip:{tiny_clip}"),
                    clip_col.search(texts, 8, mode="dense", encoder=f"onnx-clip:{tiny_clip}")),
    }
    assert runs["image"][0].ids[0][0] == "p1.png" and runs["image"][0].ids[1][0] == "p5.png"
    for name, (ours, theirs) in runs.items():
        for row in range(len(ours.ids)):
            assert ours.ids[row][0] == theirs.ids[row][0], (name, row, ours.hits(row), theirs.hits(row))
            a, b = dict(ours.hits(row)), dict(theirs.hits(row))
            assert a.keys() == b.keys() and all(abs(a[d] - b[d]) < 1e-4 for d in a), (name, row, a, b)


def test_what_is_not_clip_fails_clearly(tmp_path: Path) -> None:
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ONNXExportError, match=r"is not a CLIP model \(its .*bert/config.json says model_type 'bert'"):
        onnx_clip.ONNXClipEncoder(str(bert), cache_dir=tmp_path / "cache")
    st_text = tmp_path / "st-text"
    st_text.mkdir()
    (st_text / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    with pytest.raises(ONNXExportError, match=r"is not a CLIP model: its sentence-transformers modules are "
                                              r"\['Transformer', 'Pooling'\]"):
        onnx_clip.ONNXClipEncoder(str(st_text), cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_a_failed_export_leaves_nothing_and_says_why(tiny_clip: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated exporter failure\nwith a long second line")

    monkeypatch.setattr(torch.onnx, "export", crash)
    with pytest.raises(ONNXExportError, match=r"cannot export the CLIP model .* RuntimeError: simulated exporter "
                                              r"failure$"):
        onnx_clip.ONNXClipEncoder(str(tiny_clip), cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_runtime_names_the_extra(tiny_clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an install without it looks like to import
    with pytest.raises(MissingExtraError, match=r"onnxruntime.*pip install 'retrievekit\[onnx\]'"):
        get_encoder(f"onnx-clip:{tiny_clip}")


@pytest.mark.parametrize("damage", ["vision.onnx", "meta.json"])
def test_a_damaged_cache_is_exported_again(onnx_encoder, tiny_clip: Path, tmp_path: Path, damage: str,  # type: ignore[no-untyped-def]
                                           caplog: pytest.LogCaptureFixture) -> None:
    import shutil

    copy = tmp_path / onnx_encoder.folder.name  # the finished export, in a cache of its own
    shutil.copytree(onnx_encoder.folder, copy)
    (copy / damage).write_bytes(b"\x00 half a file")
    with caplog.at_level(logging.WARNING, logger="retrievekit.encoders.onnx_clip"):
        rebuilt = onnx_clip.ONNXClipEncoder(str(tiny_clip), cache_dir=tmp_path)
    assert rebuilt.folder == copy and "is damaged" in caplog.text and "exporting it again" in caplog.text
    assert json.loads((copy / "meta.json").read_text())["dim"] == 16
    picture = _image(3, (40, 48))
    assert np.allclose(rebuilt.encode_images([picture]), onnx_encoder.encode_images([picture]), atol=1e-6)


def test_the_int8_variant_is_quantized_once_and_stays_near_the_float_vectors(onnx_encoder, tiny_clip: Path,  # type: ignore[no-untyped-def]
                                                                             onnx_cache: Path) -> None:
    int8 = get_encoder(f"onnx-clip-int8:{tiny_clip}", cache_dir=onnx_cache)
    assert int8.folder == onnx_encoder.folder  # one export, the int8 towers beside the float ones
    files = [int8.folder / "text.int8.onnx", int8.folder / "vision.int8.onnx"]
    mtimes = [f.stat().st_mtime_ns for f in files]
    assert get_encoder(f"onnx-clip-int8:{tiny_clip}", cache_dir=onnx_cache).folder == int8.folder
    assert [f.stat().st_mtime_ns for f in files] == mtimes  # quantized once
    assert int8.spec()["backend"] == "onnx-clip-int8"
    check_compatible(onnx_encoder.spec(), int8.spec())
    images = [_image(i, size) for i, size in enumerate(SIZES)]
    # measured 0.9999 (images) and 0.9994 (texts) on this model; MiniLM's text int8 export reaches 0.991
    assert _cosines(int8.encode_images(images), onnx_encoder.encode_images(images)).min() > 0.99
    assert _cosines(int8.encode_queries(TEXTS), onnx_encoder.encode_queries(TEXTS)).min() > 0.99
