"""Perceptual image hashes and HashIndex: near duplicates are near, search order, persistence and errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL")
pytest.importorskip("imagehash")
from PIL import Image

from retrievekit.index.images import HASHES, HashIndex, ImageHashError, image_hash, image_hashes
from retrievekit.index.images.phash import MANIFEST


def synthetic_image(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A smooth random colour picture (8×6 random cells upsampled) plus a bright rectangle: unrelated per seed."""
    rng = np.random.default_rng(seed)
    cells = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), "RGB")
    img = cells.resize(size, Image.Resampling.BICUBIC)
    x, y = int(rng.integers(0, size[0] // 2)), int(rng.integers(0, size[1] // 2))
    img.paste((255, 255, 255), (x, y, x + size[0] // 4, y + size[1] // 4))
    return img


def half(img: Image.Image) -> Image.Image:
    return img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)


def jpeg(img: Image.Image, quality: int = 30) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def distance(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.unpackbits(a ^ b).sum())


@pytest.mark.parametrize("kind", HASHES)
def test_identical_images_have_distance_zero(kind: str, tmp_path: Path) -> None:
    img = synthetic_image(1)
    path = tmp_path / "a.png"
    img.save(path)
    code = image_hash(img, kind)
    assert code.dtype == np.uint8 and code.shape == (8,)
    assert distance(code, image_hash(img.copy(), kind)) == 0
    assert distance(code, image_hash(path, kind)) == 0  # from a path
    assert distance(code, image_hash(str(path), kind)) == 0
    assert distance(code, image_hash(path.read_bytes(), kind)) == 0  # from the encoded bytes


@pytest.mark.parametrize("kind", HASHES)
def test_resized_copy_is_nearer_than_unrelated_images(kind: str) -> None:
    original = synthetic_image(2)
    resized = image_hash(half(original), kind)
    near = distance(image_hash(original, kind), resized)
    others = [distance(image_hash(synthetic_image(seed), kind), resized) for seed in range(3, 9)]
    assert near < min(others), (near, others)


@pytest.mark.parametrize("hash_size", [4, 8, 16, 32])
def test_code_width_follows_hash_size(hash_size: int) -> None:
    codes = image_hashes([synthetic_image(0), synthetic_image(1)], "dhash", hash_size)
    assert codes.shape == (2, hash_size * hash_size // 8) and codes.dtype == np.uint8
    assert image_hashes([], "dhash", hash_size).shape == (0, hash_size * hash_size // 8)


@pytest.mark.parametrize("kind", HASHES)
def test_search_finds_the_near_duplicate_first(kind: str) -> None:
    images = [synthetic_image(seed) for seed in range(20)]
    index = HashIndex(kind)
    index.add_images([f"img{i}" for i in range(20)], images)
    queries = [half(images[i]) for i in range(0, 20, 2)] + [jpeg(images[i]) for i in range(1, 20, 2)]
    want = [f"img{i}" for i in range(0, 20, 2)] + [f"img{i}" for i in range(1, 20, 2)]
    ids, dist = index.search_images(queries, k=3)
    assert ids.shape == (20, 3) and ids.dtype == object and dist.shape == (20, 3)
    assert list(ids[:, 0]) == want
    assert (np.diff(dist, axis=1) >= 0).all()


def test_ties_go_by_insertion_order_and_padding() -> None:
    index = HashIndex("phash", 8)
    code = np.arange(8, dtype=np.uint8)
    far = np.full(8, 255, dtype=np.uint8)
    index.add(["b", "a", "far"], np.stack([code, code, far]))
    ids, dist = index.search(code, k=5)  # one 1-d query is one row
    assert ids.tolist() == [["b", "a", "far", None, None]]
    assert dist[0, :2].tolist() == [0, 0] and dist[0, 2] == distance(code, far) and dist[0, 3:].tolist() == [-1, -1]
    index.delete(["b"])
    index.add(["b"], code)  # added again: now inserted last
    assert index.search(code, k=2)[0].tolist() == [["a", "b"]]
    assert index.search(code, k=0)[0].shape == (1, 0)


def test_allowed_as_ids_or_mask() -> None:
    codes = image_hashes([synthetic_image(seed) for seed in range(6)])
    index = HashIndex()
    index.add([f"i{j}" for j in range(6)], codes)
    ids, _ = index.search(codes[:1], k=3, allowed={"i2", "i4", "not-there"})
    assert ids[0, 2] is None and sorted(ids[0, :2]) == ["i2", "i4"]
    mask = np.zeros(6, dtype=bool)
    mask[[0, 5]] = True
    ids, dist = index.search(codes[:1], k=2, allowed=mask)
    assert ids.tolist() == [["i0", "i5"]] and dist[0, 0] == 0
    with pytest.raises(ImageHashError, match=r"shape \(6,\)"):
        index.search(codes[:1], k=2, allowed=np.ones(5, dtype=bool))
    with pytest.raises(ImageHashError, match="string ids or a numpy bool mask"):
        index.search(codes[:1], k=2, allowed=[True, False, True, True, True, True])


def test_delete() -> None:
    images = [synthetic_image(seed) for seed in range(5)]
    index = HashIndex("dhash")
    index.add_images(list("abcde"), images)
    assert index.delete(["b", "d", "b"]) == 2
    assert len(index) == 3 and index.ids == ["a", "c", "e"] and "b" not in index
    ids, _ = index.search_images([images[1]], k=5)
    assert "b" not in ids[0].tolist() and ids[0, 3] is None
    assert index.search_images([images[2]], k=1)[0][0, 0] == "c"
    with pytest.raises(ImageHashError, match=r"not in the index: \['zz'\]"):
        index.delete(["a", "zz"])
    assert len(index) == 3  # nothing removed on error
    assert index.delete([]) == 0


def test_save_load_round_trip(tmp_path: Path) -> None:
    images = [synthetic_image(seed) for seed in range(8)]
    index = HashIndex("whash", 16)
    index.add_images([f"é{i}" for i in range(8)], images)
    index.delete(["é3"])
    folder = index.save(tmp_path / "idx")
    loaded = HashIndex.load(folder)
    assert (loaded.kind, loaded.hash_size, loaded.ids) == ("whash", 16, index.ids)
    np.testing.assert_array_equal(loaded.codes, index.codes)
    queries = image_hashes([half(im) for im in images], "whash", 16)
    for got, want in zip(loaded.search(queries, 4), index.search(queries, 4)):
        np.testing.assert_array_equal(got, want)
    # saving again replaces the codes file and leaves no stale one
    loaded.add_images(["new"], [synthetic_image(99)])
    loaded.save(folder)
    assert len(list(folder.glob("codes-*.npy"))) == 1
    assert HashIndex.load(folder).ids[-1] == "new"
    empty = HashIndex().save(tmp_path / "empty")
    assert len(HashIndex.load(empty)) == 0


def test_load_damaged_or_missing(tmp_path: Path) -> None:
    with pytest.raises(ImageHashError, match="not a saved image hash index"):
        HashIndex.load(tmp_path / "nothing")
    index = HashIndex()
    index.add(["x", "y"], np.array([[1] * 8, [2] * 8], dtype=np.uint8))
    folder = index.save(tmp_path / "idx")
    manifest = json.loads((folder / MANIFEST).read_text())
    codes_file = folder / manifest["codes"]
    original = codes_file.read_bytes()

    codes_file.write_bytes(original[:-3])  # truncated
    with pytest.raises(ImageHashError, match="damaged codes file"):
        HashIndex.load(folder)
    codes_file.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # one bit flipped
    with pytest.raises(ImageHashError, match="checksum"):
        HashIndex.load(folder)
    codes_file.unlink()
    with pytest.raises(ImageHashError, match="is missing"):
        HashIndex.load(folder)
    codes_file.write_bytes(original)
    assert HashIndex.load(folder).ids == ["x", "y"]

    (folder / MANIFEST).write_text(json.dumps({**manifest, "count": 3}))
    with pytest.raises(ImageHashError, match="ids are not 3 strings"):
        HashIndex.load(folder)
    (folder / MANIFEST).write_text(json.dumps({**manifest, "kind": "bogus"}))
    with pytest.raises(ImageHashError, match="unknown image hash kind 'bogus'"):
        HashIndex.load(folder)
    (folder / MANIFEST).write_text('{"format": 1, "kind": "ph')
    with pytest.raises(ImageHashError, match="not valid JSON"):
        HashIndex.load(folder)


def test_errors(tmp_path: Path) -> None:
    img = synthetic_image(0)
    with pytest.raises(ImageHashError, match="valid kinds: phash, dhash, whash, ahash"):
        image_hash(img, "md5")
    with pytest.raises(ImageHashError, match="valid kinds"):
        HashIndex("colorhash")
    for bad in (6, 2, 0, 128, True, 8.0):
        with pytest.raises(ImageHashError, match="hash_size must be"):
            image_hash(img, "phash", bad)  # type: ignore[arg-type]
    with pytest.raises(ImageHashError, match="no such image file"):
        image_hash(tmp_path / "missing.jpg")
    with pytest.raises(ImageHashError, match="not an image in a supported format"):
        image_hash(b"not an image at all")
    bomb = tmp_path / "bomb.png"
    Image.new("1", (12_000, 12_000)).save(bomb)  # 144 megapixels in a few kB: refused before decoding
    with pytest.raises(ImageHashError, match=r"bomb.png: the image is 12000x12000 .* \(a decompression bomb\?\)"):
        image_hash(bomb)
    small = io.BytesIO()
    img.save(small, format="PNG")
    with pytest.raises(ImageHashError, match="over the limit of 1,000"):
        image_hash(small.getvalue(), max_pixels=1_000)
    with pytest.raises(ImageHashError, match="the PNG image cannot be decoded, it is truncated"):
        image_hash(small.getvalue()[:-40])
    with pytest.raises(ImageHashError, match="PIL image, a file path or encoded image bytes"):
        image_hash(np.zeros((8, 8)))  # type: ignore[arg-type]

    index = HashIndex("phash", 8)
    with pytest.raises(ImageHashError, match=r"shape \(n, 8\).*got shape \(1, 32\)"):
        index.add(["a"], np.zeros((1, 32), dtype=np.uint8))  # a hash_size 16 code
    with pytest.raises(ImageHashError, match="dtype uint8"):
        index.add(["a"], np.zeros((1, 8), dtype=np.int64))
    with pytest.raises(ImageHashError, match="2 ids for 1 codes"):
        index.add(["a", "b"], np.zeros((1, 8), dtype=np.uint8))
    with pytest.raises(ImageHashError, match="ids must be strings"):
        index.add([7], np.zeros((1, 8), dtype=np.uint8))  # type: ignore[list-item]
    index.add(["a"], np.zeros((1, 8), dtype=np.uint8))
    with pytest.raises(ImageHashError, match=r"already in the index.*\['a', 'b'\]"):
        index.add(["a", "b", "b"], np.zeros((3, 8), dtype=np.uint8))
    assert index.ids == ["a"]
    with pytest.raises(ImageHashError, match="query codes must be uint8 of shape"):
        index.search(np.zeros((2, 4), dtype=np.uint8), 1)
    with pytest.raises(ImageHashError, match="k must be a non-negative integer"):
        index.search(np.zeros((1, 8), dtype=np.uint8), -1)
