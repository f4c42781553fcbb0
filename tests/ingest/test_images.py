"""Tests of retrievekit.ingest.images.read_images: every fixture image is made here with Pillow."""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import logging
import os
import shutil
import struct
import warnings
import zlib
from pathlib import Path

import pytest
from paths import shared_data

from retrievekit.core.document import Document
from retrievekit.core.errors import InputFormatError
from retrievekit.ingest import SourceNotFoundError
from retrievekit.ingest.images import DEFAULT_MAX_PIXELS, read_images

Image = pytest.importorskip("PIL.Image", reason="needs the images extra (Pillow)")
ImageFile = pytest.importorskip("PIL.ImageFile")


# ------------------------------------------------------------------------------------------------------ fixtures


def exif_jpeg(path: Path, size: tuple[int, int] = (300, 200), orientation: int | None = None) -> bytes:
    """A JPEG with camera make/model, DateTimeOriginal (+ offset) and GPS 52°30'36" N, 1°15'0" W."""
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS 5D"
    exif[0x0132] = "2020:01:01 00:00:00"  # DateTime: the fallback, not used when DateTimeOriginal is there
    if orientation is not None:
        exif[0x0112] = orientation
    details = exif.get_ifd(0x8769)
    details[0x9003] = "2021:06:05 14:30:15"
    details[0x9011] = "+02:00"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (52.0, 30.0, 36.0), "W", (1.0, 15.0, 0.0)
    Image.new("RGB", size, (200, 30, 40)).save(path, "JPEG", exif=exif, quality=90)
    return path.read_bytes()


def png(path: Path, size: tuple[int, int] = (40, 30), mode: str = "RGB", color: object = (10, 200, 30)) -> bytes:
    Image.new(mode, size, color).save(path, "PNG")
    return path.read_bytes()


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose IHDR header claims ``width`` x ``height`` (CRC fixed), like a decompression bomb."""
    out = io.BytesIO()
    Image.new("1", (8, 8)).save(out, "PNG")
    data = bytearray(out.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def thumbnail_of(doc: Document) -> Image.Image:
    prefix = "data:image/jpeg;base64,"
    value = doc.metadata["thumbnail"]
    assert value.startswith(prefix)
    img = Image.open(io.BytesIO(base64.b64decode(value[len(prefix):], validate=True)))
    img.load()
    assert img.format == "JPEG"
    return img


def collect(source: Path, **options: object) -> tuple[list[Document], list[tuple[Path, str]]]:
    skips: list[tuple[Path, str]] = []
    docs = list(read_images(source, on_skip=lambda path, reason: skips.append((path, reason)), **options))
    return docs, skips


# -------------------------------------------------------------------------------------------------------- folder


def test_jpeg_with_exif_gps_and_caption(tmp_path: Path) -> None:
    data = exif_jpeg(tmp_path / "beach.jpg")
    (tmp_path / "beach.txt").write_text("  Two dogs on a beach.\n", encoding="utf-8")
    docs, skips = collect(tmp_path)
    assert skips == []
    [doc] = docs
    assert (doc.id, doc.title, doc.text) == ("beach.jpg", "beach", "Two dogs on a beach.")
    thumbnail = doc.metadata.pop("thumbnail")
    assert doc.metadata == {
        "image": "beach.jpg",
        "image_sha256": hashlib.sha256(data).hexdigest(),
        "image_format": "JPEG",
        "image_width": 300,
        "image_height": 200,
        "image_bytes": len(data),
        "taken_at": "2021-06-05T14:30:15+02:00",
        "camera_make": "Canon",
        "camera_model": "Canon EOS 5D",
        "gps_lat": 52.51,
        "gps_lon": -1.25,
    }
    img = thumbnail_of(Document(id="t", metadata={"thumbnail": thumbnail}))
    assert img.size == (128, 85)  # 300x200 scaled to a longer side of 128
    assert img.getpixel((64, 42)) == pytest.approx((200, 30, 40), abs=8)


def test_datetime_fallback_and_no_exif(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0132] = "2019:12:31 23:59:58"
    exif[0x0110] = "Pixel 7\x00\x00"  # NUL padding is removed
    Image.new("RGB", (20, 10)).save(tmp_path / "a.jpg", exif=exif)
    zero = Image.Exif()
    zero[0x0132] = "0000:00:00 00:00:00"  # the clock was never set: not a date
    Image.new("RGB", (20, 10)).save(tmp_path / "b.jpg", exif=zero)
    png(tmp_path / "c.png")
    docs, skips = collect(tmp_path)
    assert skips == []
    exif_keys = {"taken_at", "camera_make", "camera_model", "gps_lat", "gps_lon"}
    assert [(d.id, {k: v for k, v in d.metadata.items() if k in exif_keys}) for d in docs] == [
        ("a.jpg", {"taken_at": "2019-12-31T23:59:58", "camera_model": "Pixel 7"}),
        ("b.jpg", {}),
        ("c.png", {}),
    ]


def test_mislabelled_png_is_indexed_with_its_true_format(tmp_path: Path) -> None:
    data = png(tmp_path / "photo.jpg", size=(40, 30))
    docs, skips = collect(tmp_path)
    assert skips == []
    [doc] = docs
    assert doc.metadata["image_format"] == "PNG"
    assert (doc.metadata["image_width"], doc.metadata["image_height"]) == (40, 30)
    assert doc.metadata["image_sha256"] == hashlib.sha256(data).hexdigest()
    assert thumbnail_of(doc).size == (40, 30)  # never enlarged


def test_bad_files_are_skipped_with_reasons_and_the_rest_is_read(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                                 ) -> None:
    good = exif_jpeg(tmp_path / "a_good.jpg")
    (tmp_path / "b_truncated.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "c_text.png").write_text("this is not a picture, just text\n", encoding="utf-8")
    png_claiming(tmp_path / "d_bomb.png", 20_000, 20_000)
    os.symlink(tmp_path / "nowhere.jpg", tmp_path / "e_broken.jpg")
    png(tmp_path / "f_good.png")
    with caplog.at_level(logging.WARNING, logger="retrievekit.ingest.images"):
        docs, skips = collect(tmp_path)
    assert [d.id for d in docs] == ["a_good.jpg", "f_good.png"]
    reasons = {path.name: reason for path, reason in skips}
    assert [path.name for path, _ in skips] == ["b_truncated.jpg", "c_text.png", "d_bomb.png", "e_broken.jpg"]
    assert reasons["b_truncated.jpg"].startswith("the JPEG image cannot be decoded, it is truncated or corrupt (")
    assert "truncated" in reasons["b_truncated.jpg"].split("(", 1)[1]
    assert reasons["c_text.png"] == (
        "not an image in a supported format (judged from its bytes; accepted: JPEG, PNG, GIF, WEBP, BMP, TIFF, AVIF; "
        "it starts with b'this is not a pi')")
    # 20000 x 20000 is over twice Pillow's limit: Pillow refuses it while opening, the reason names the limit
    assert reasons["d_bomb.png"].startswith("the image has more pixels than Pillow allows (Image size (400000000 "
                                            "pixels) exceeds limit of")
    assert reasons["d_bomb.png"].endswith(f"over the limit of {DEFAULT_MAX_PIXELS:,} (a decompression bomb?)")
    assert reasons["e_broken.jpg"] == "unreadable: a broken symlink"
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert logged == [f"skipping {path}: {reason}" for path, reason in skips]


def test_pixel_limit_is_checked_from_the_header(tmp_path: Path) -> None:
    # Pillow's own check only warns here (between its limit and twice it): this reader's limit decides, silently
    png_claiming(tmp_path / "big.png", 10_000, 10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        docs, skips = collect(tmp_path)
    assert docs == []
    assert skips == [(tmp_path / "big.png", "the image is 10000x10000 = 100,000,000 pixels, over the limit of "
                                            f"{DEFAULT_MAX_PIXELS:,} (a decompression bomb?)")]
    # a real, small image against a small explicit limit
    png(tmp_path / "big.png", size=(100, 100))
    docs, skips = collect(tmp_path, max_pixels=9_999)
    assert docs == []
    assert skips == [(tmp_path / "big.png", "the image is 100x100 = 10,000 pixels, over the limit of 9,999 (a "
                                            "decompression bomb?)")]
    assert [d.id for d in collect(tmp_path, max_pixels=10_000)[0]] == ["big.png"]


def test_pillow_globals_are_left_alone(tmp_path: Path) -> None:
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    png_claiming(tmp_path / "bomb.png", 20_000, 20_000)
    good = png(tmp_path / "ok.png")
    (tmp_path / "cut.png").write_bytes(good[:-30])
    # a limit above Pillow's ceiling does not lift Pillow's refusal of a 400-megapixel header
    docs, skips = collect(tmp_path, max_pixels=10**9)
    assert [d.id for d in docs] == ["ok.png"]
    assert [p.name for p, _ in skips] == ["bomb.png", "cut.png"]
    assert skips[0][1].startswith("the image has more pixels than Pillow allows")
    assert skips[1][1].startswith("the PNG image cannot be decoded, it is truncated or corrupt")
    assert before == (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)


def test_byte_limit(tmp_path: Path) -> None:
    data = png(tmp_path / "a.png")
    docs, skips = collect(tmp_path, max_bytes=len(data) - 1)
    assert docs == []
    assert skips == [(tmp_path / "a.png", f"too many bytes: the file is {len(data):,} bytes, over the limit "
                                          f"max_bytes={len(data) - 1:,}")]
    assert len(collect(tmp_path, max_bytes=len(data))[0]) == 1


def test_sidecar_captions(tmp_path: Path) -> None:
    png(tmp_path / "a.png")
    (tmp_path / "a.json").write_text(json.dumps({"title": "Harbour", "caption": "Boats at dusk", "alt": "boats"}))
    png(tmp_path / "b.png")
    (tmp_path / "b.json").write_text(json.dumps({"alt": "A red door"}))
    png(tmp_path / "c.png")
    (tmp_path / "c.txt").write_text("\ufeffFrom the text file\n", encoding="utf-8")
    (tmp_path / "c.json").write_text(json.dumps({"title": "C", "caption": "From the JSON file"}))
    png(tmp_path / "d.png")
    (tmp_path / "d.json").write_text("{not json")
    png(tmp_path / "e.png")
    (tmp_path / "e.json").write_text(json.dumps({"caption": ["a", "list"]}))
    png(tmp_path / "f.png")
    (tmp_path / "f.txt").write_bytes(b"caf\xe9 au lait")
    png(tmp_path / "g.png")
    (tmp_path / "g.json").write_text('{"caption": "\\ud800"}')
    docs, skips = collect(tmp_path)
    assert [(d.id, d.title, d.text) for d in docs] == [
        ("a.png", "Harbour", "Boats at dusk"),
        ("b.png", "b", "A red door"),
        ("c.png", "C", "From the text file"),  # NAME.txt is the caption; the JSON still gives the title
    ]
    reasons = {path.name: reason for path, reason in skips}
    assert list(reasons) == ["d.png", "e.png", "f.png", "g.png"]
    assert reasons["d.png"].startswith("caption file d.json is not valid JSON: Expecting property name")
    assert reasons["e.png"] == "caption file e.json: 'caption' must be a string, got list"
    assert reasons["f.png"] == "caption file f.txt is not valid UTF-8 (byte 3: invalid continuation byte)"
    assert reasons["g.png"].startswith("the document cannot be stored: text contains a lone surrogate")


def test_walk_order_hidden_recursive_symlinks_and_determinism(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden").mkdir()
    png(root / "b.png")
    png(root / "A.PNG")
    png(root / "sub" / "x.gif")  # a PNG named .gif: picked up by its extension, read by its bytes
    Image.new("P", (9, 9)).save(root / "sub" / "deeper" / "y.gif")
    png(root / ".hidden" / "h.png")
    png(root / ".dot.png")
    (root / "notes.md").write_text("not an image")
    os.symlink(root, root / "sub" / "loop")  # a loop back to the top: entered once only
    png(tmp_path / "outside.png")
    os.symlink(tmp_path / "outside.png", root / "z_out.png")
    docs, skips = collect(root)
    assert [d.id for d in docs] == ["A.PNG", "b.png", "sub/deeper/y.gif", "sub/x.gif"]
    assert [(d.metadata["image"], d.metadata["image_format"]) for d in docs][2:] == [
        ("sub/deeper/y.gif", "GIF"), ("sub/x.gif", "PNG")]
    assert skips == [(root / "z_out.png", "a symlink pointing outside the folder; not followed")]
    assert [d.id for d in collect(root, recursive=False)[0]] == ["A.PNG", "b.png"]
    # the same input gives the same documents, wherever the folder lies
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, symlinks=True, ignore=shutil.ignore_patterns("loop", "z_out.png"))
    assert collect(copy)[0] == collect(root)[0] == docs


def test_thumbnails_of_other_modes(tmp_path: Path) -> None:
    exif_jpeg(tmp_path / "a_rotated.jpg", size=(300, 200), orientation=6)  # shown rotated by 90 degrees
    png(tmp_path / "b_alpha.png", size=(500, 100), mode="RGBA", color=(0, 0, 0, 0))
    Image.new("I;16", (64, 256), 40_000).save(tmp_path / "c_16bit.png")
    Image.new("CMYK", (1000, 999), (0, 255, 255, 0)).save(tmp_path / "d_cmyk.tiff")
    docs, skips = collect(tmp_path)
    assert skips == []
    sizes = {d.id: (d.metadata["image_width"], d.metadata["image_height"], thumbnail_of(d).size) for d in docs}
    assert sizes == {"a_rotated.jpg": (300, 200, (85, 128)), "b_alpha.png": (500, 100, (128, 26)),
                     "c_16bit.png": (64, 256, (32, 128)), "d_cmyk.tiff": (1000, 999, (128, 128))}
    alpha = next(d for d in docs if d.id == "b_alpha.png")
    assert thumbnail_of(alpha).getpixel((10, 10)) == pytest.approx((255, 255, 255), abs=3)  # transparent -> white
    assert next(d for d in docs if d.id == "d_cmyk.tiff").metadata["image_format"] == "TIFF"
    assert "thumbnail" not in collect(tmp_path, thumbnail_size=None)[0][0].metadata
    assert max(thumbnail_of(collect(tmp_path, thumbnail_size=16)[0][0]).size) == 16


# -------------------------------------------------------------------------------------------------- JSONL corpus


def test_jsonl_corpus_rows_name_images(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    data = exif_jpeg(tmp_path / "images" / "one.jpg")
    png(tmp_path / "images" / "two.jpg")
    png(tmp_path.parent / f"{tmp_path.name}-outside.png")
    rows = [
        {"_id": "one", "title": "First", "text": "a red square", "image": "images/one.jpg",
         "metadata": {"split": "train"}},
        {"_id": "gone", "text": "x", "image": "images/missing.jpg"},
        {"_id": "two", "image": "images/two.jpg", "image_format": "stale"},
        {"_id": "none", "text": "no image here"},
        {"_id": "escape", "image": f"../{tmp_path.name}-outside.png"},
        {"_id": "absolute", "image": str(tmp_path / "images" / "one.jpg")},
        {"_id": "folder", "image": "images"},
    ]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(row) + "\n" for row in rows[:2]) + "\n"
                      + "".join(json.dumps(row) + "\n" for row in rows[2:]), encoding="utf-8")
    docs, skips = collect(corpus)
    assert [(d.id, d.title, d.text) for d in docs] == [("one", "First", "a red square"), ("two", "", "")]
    one = docs[0].metadata
    assert {k: one[k] for k in ("split", "image", "image_sha256", "image_format", "image_bytes", "gps_lat")} == {
        "split": "train", "image": "images/one.jpg", "image_sha256": hashlib.sha256(data).hexdigest(),
        "image_format": "JPEG", "image_bytes": len(data), "gps_lat": 52.51}
    assert docs[1].metadata["image_format"] == "PNG"  # computed values win over a row's own keys
    assert skips == [
        (tmp_path / "images" / "missing.jpg", "corpus.jsonl line 2: image file not found"),
        (corpus, "corpus.jsonl line 5: the row has no 'image' field naming its image file"),
        (tmp_path / f"../{tmp_path.name}-outside.png",
         f"corpus.jsonl line 6: the image path '../{tmp_path.name}-outside.png' leads outside the corpus file's "
         "folder; not read"),
        (tmp_path / "images" / "one.jpg",
         f"corpus.jsonl line 7: the image path '{tmp_path / 'images' / 'one.jpg'}' is absolute; it must be relative "
         "to the corpus file's folder"),
        (tmp_path / "images", "corpus.jsonl line 8: unreadable: a folder, not an image file"),
    ]
    # a BEIR folder (one holding corpus.jsonl) is read through its corpus, not walked as an image folder
    assert collect(tmp_path) == (docs, skips)


def test_jsonl_corpus_errors_follow_read_jsonl(tmp_path: Path) -> None:
    png(tmp_path / "a.png")
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"_id": "a", "image": "a.png"}\n{"_id": "a", "image": "a.png"}\n', encoding="utf-8")
    with pytest.raises(InputFormatError, match=r"c\.jsonl:2: duplicate id 'a' \(first seen on line 1\)"):
        list(read_images(corpus))
    corpus.write_text('{"_id": "a", "image": "a.png"}\n{"_id": \n', encoding="utf-8")
    with pytest.raises(InputFormatError, match=r"c\.jsonl:2: malformed JSON"):
        list(read_images(corpus))


def test_call_time_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError):
        read_images(tmp_path / "nope")
    (tmp_path / "list.txt").write_text("a.png\n")
    with pytest.raises(InputFormatError, match="reads an image folder or a JSONL corpus"):
        read_images(tmp_path / "list.txt")
    with pytest.raises(ValueError, match="max_pixels must be a positive integer, got 0"):
        read_images(tmp_path, max_pixels=0)
    with pytest.raises(ValueError, match="thumbnail_size must be a positive integer or None"):
        read_images(tmp_path, thumbnail_size=0)


# ---------------------------------------------------------------------------------------------------- real data


def test_flickr8k_first_rows() -> None:
    folder = shared_data("flickr8k-1k")
    with open(folder / "corpus.jsonl", encoding="utf-8") as file:
        rows = [json.loads(line) for line in itertools.islice(file, 20)]
    skips: list[tuple[Path, str]] = []
    docs = list(itertools.islice(read_images(folder, on_skip=lambda p, r: skips.append((p, r))), 20))
    assert skips == []
    assert [d.id for d in docs] == [row["_id"] for row in rows]
    for doc, row in zip(docs, rows):
        data = (folder / row["image"]).read_bytes()
        with Image.open(folder / row["image"]) as img:
            size = img.size
        meta = doc.metadata
        assert meta["image"] == row["image"]
        assert meta["flickr8k_split"] == row["metadata"]["flickr8k_split"]
        assert meta["image_sha256"] == hashlib.sha256(data).hexdigest()
        assert (meta["image_format"], meta["image_bytes"]) == ("JPEG", len(data))
        assert (meta["image_width"], meta["image_height"]) == size
        assert max(thumbnail_of(doc).size) == min(128, max(size))
