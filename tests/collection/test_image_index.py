"""Image indexes: a collection whose dense index is an image-text (CLIP) model embeds each document's image (its
metadata ``image`` path), searches by text, by image and by image+text, keeps working through updates and
deletes, and caches image vectors by content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("PIL")
from clip_helpers import make_tiny_clip
from PIL import Image

from retrievekit import Collection
from retrievekit.core.errors import CollectionError


@pytest.fixture(scope="module")
def clip_model(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("clip"))


def _picture(path, seed: int):
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((40, 48, 3)) * 255).astype("uint8")).save(path)
    return str(path)


@pytest.fixture
def images(tmp_path):
    return [_picture(tmp_path / f"img{i}.png", i) for i in range(8)]


def test_image_search_finds_the_same_picture_first(tmp_path, clip_model, images):
    col = Collection.create(tmp_path / "c", dense=f"clip:{clip_model}")
    assert col.index_config("dense")["modality"] == "image"
    col.add([{"id": f"p{i}", "text": f"caption {i}", "metadata": {"image": path}} for i, path in enumerate(images)]
            + [{"id": "note", "text": "a text document without a picture"}])
    results = col.search_images(images[:4], k=3)
    assert [results.ids[i][0] for i in range(4)] == ["p0", "p1", "p2", "p3"]
    assert np.allclose(results.scores[:, 0], 1.0, atol=1e-5)  # the identical picture: cosine 1
    text = col.search(["caption 3"], 9, mode="dense")  # text -> image through the text tower
    assert len(text.hits(0)) == 9
    composed = col.search_images([images[0]], k=9, text="caption 5", weight=0.3)
    assert len(composed.hits(0)) == 9
    # BM25 over captions and the image vectors fuse like any hybrid
    assert col.search(["caption"], 5, mode="hybrid").hits(0)


def test_updates_deletes_and_the_cache_follow_the_image_bytes(tmp_path, clip_model, images):
    col = Collection.create(tmp_path / "c", dense=f"clip:{clip_model}")
    col.add([{"id": f"p{i}", "metadata": {"image": path}} for i, path in enumerate(images[:4])])
    col.add([{"id": "p0", "metadata": {"image": images[6]}}])  # p0 now shows picture 6
    col.delete(["p1"])
    first = col.search_images([images[6], images[1]], k=1)
    assert first.ids[0][0] == "p0" and first.ids[1][0] != "p1"
    # a copy of the same bytes elsewhere gets the same (cached) vector
    copy = tmp_path / "copy.png"
    copy.write_bytes(Path(images[2]).read_bytes())
    col.add([{"id": "dup", "metadata": {"image": str(copy)}}])
    hits = dict(col.search_images([images[2]], k=5).hits(0))
    assert hits["dup"] == pytest.approx(hits["p2"], abs=1e-6)


def test_image_queries_on_a_text_index_and_missing_files_fail_clearly(tmp_path, clip_model, images):
    pytest.importorskip("wordllama")
    text_col = Collection.create(tmp_path / "t", dense="wordllama")
    text_col.add([{"id": "a", "text": "words"}])
    with pytest.raises(CollectionError, match="image-text \\(CLIP\\) index"):
        text_col.search_images([images[0]])
    col = Collection.create(tmp_path / "c", dense=f"clip:{clip_model}")
    with pytest.raises(Exception, match="gone.png"):
        col.add([{"id": "x", "metadata": {"image": str(tmp_path / "gone.png")}}])
    assert len(col) == 0  # the failed commit left nothing


def test_ingest_images_indexes_a_folder_and_reports_what_it_skipped(tmp_path, clip_model, images):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, path in enumerate(images[:3]):
        (folder / f"p{i}.png").write_bytes(Path(path).read_bytes())
    (folder / "p0.txt").write_text("a caption for the first picture")
    (folder / "broken.jpg").write_text("not a picture")
    col = Collection.create(tmp_path / "c", dense=f"clip:{clip_model}")
    report = col.ingest_images(folder)
    assert report["documents"] == 3
    assert [Path(p).name for p, _ in report["skipped"]] == ["broken.jpg"]
    doc = col.get("p0.png")
    assert doc.text == "a caption for the first picture"
    assert Path(doc.metadata["image"]).is_absolute() and doc.metadata["thumbnail"].startswith("data:image/jpeg")
    assert col.search_images([images[1]], k=1).ids[0][0] == "p1.png"
    assert col.search(["caption"], 3).ids[0][0] == "p0.png"  # BM25 over captions


def test_near_duplicate_search_with_perceptual_hashes(tmp_path, images):
    pytest.importorskip("imagehash")
    col = Collection.create(tmp_path / "c")  # no neural model at all
    col.add([{"id": f"p{i}", "metadata": {"image": path}} for i, path in enumerate(images[:6])]
            + [{"id": "text-only", "text": "no picture"}])
    col.add_image_hash_index("phash")
    small = tmp_path / "small.png"
    Image.open(images[3]).resize((24, 20)).save(small)  # an edited copy
    results = col.search_near_duplicates([images[3], small], k=3)
    assert results.ids[0][0] == "p3" and results.scores[0][0] == 64  # identical: all 64 bits match
    assert results.ids[1][0] == "p3"
    assert "text-only" not in set(results.ids[0])
    # new images are hashed at their commit, deletions and filters apply, merges keep the codes
    col.add([{"id": "p9", "metadata": {"image": images[7], "kind": "new"}}])
    col.delete(["p3"])
    col.optimize()
    again = col.search_near_duplicates([images[7], images[3]], k=2, filter={"kind": "new"})
    assert again.ids[0][0] == "p9" and again.ids[1][0] == "p9"
    with pytest.raises(CollectionError, match="no image hash index 'other'"):
        col.search_near_duplicates([images[0]], index="other")


@pytest.mark.parametrize("tier", ["int8", "binary+rescore", "hnsw"])
def test_compressed_tiers_and_ann_work_on_image_vectors(tmp_path, clip_model, images, tier):
    if tier == "hnsw":
        pytest.importorskip("faiss")
    col = Collection.create(tmp_path / "c", dense=f"clip:{clip_model}", vectors=tier)
    col.add([{"id": f"p{i}", "metadata": {"image": path, "album": "even" if i % 2 == 0 else "odd"}}
             for i, path in enumerate(images)])
    results = col.search_images(images[:3], k=1)
    assert [results.ids[i][0] for i in range(3)] == ["p0", "p1", "p2"]
    # text -> image, restricted by metadata: only the filtered pictures come back, ranked as without the filter
    filtered = col.search(["caption"], 8, mode="dense", filter={"album": "odd"}).hits(0)
    assert {doc for doc, _ in filtered} == {"p1", "p3", "p5", "p7"}
    unfiltered = [doc for doc, _ in col.search(["caption"], 8, mode="dense").hits(0)]
    assert [doc for doc, _ in filtered] == [doc for doc in unfiltered if doc in {"p1", "p3", "p5", "p7"}]
