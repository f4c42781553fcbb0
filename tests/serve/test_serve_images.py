"""Image collections over HTTP and MCP: POST /api/search/image (an uploaded image, optionally composed with text),
thumbnails and original images by document id, hits without inline base64, the errors of bad uploads, and the
shape of MCP image hits. A tiny random CLIP (tests/clip_helpers.py) stands in for a real model."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("PIL")
pytest.importorskip("python_multipart")
from clip_helpers import make_tiny_clip
from fastapi.testclient import TestClient
from PIL import Image
from toy_encoder import ToyEncoder  # noqa: F401  (registers the "toy" backend)

from retrievekit import Collection
from retrievekit.serve.app import create_app
from retrievekit.service.images import DEFAULT_MAX_IMAGE_PIXELS

N_PICTURES = 6


def picture_bytes(seed: int, fmt: str = "PNG", size: tuple[int, int] = (48, 40)) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype("uint8")).save(out, fmt)
    return out.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels in a few dozen bytes: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def clip_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(shared, elsewhere): pictures img0..img5 with captions, and one picture in another folder."""
    root = tmp_path_factory.mktemp("pictures")
    shared, elsewhere = root / "shared", root / "elsewhere"
    shared.mkdir()
    elsewhere.mkdir()
    for i in range(N_PICTURES):
        (shared / f"img{i}.png").write_bytes(picture_bytes(i))
        (shared / f"img{i}.txt").write_text(f"caption {i}")
    (elsewhere / "far0.png").write_bytes(picture_bytes(100))
    return shared, elsewhere


@pytest.fixture(scope="module")
def image_col(tmp_path_factory: pytest.TempPathFactory, clip_model: Path, folders: tuple[Path, Path]) -> Collection:
    shared, elsewhere = folders
    col = Collection.create(tmp_path_factory.mktemp("images") / "col", dense=f"clip:{clip_model}")
    report = col.ingest_images(shared)
    assert report["documents"] == N_PICTURES and not report["skipped"]
    assert col.ingest_images(elsewhere)["documents"] == 1
    (shared / "link.png").symlink_to(elsewhere / "far0.png")  # inside the shared folder, leading out of it
    col.add([{"id": "escape", "text": "a link out", "metadata": {"image": str(shared / "link.png")}},
             {"id": "note", "text": "a text document without a picture"},
             {"id": "notes/thumbnail", "text": "a document whose id ends like the thumbnail route"}])
    return col


@pytest.fixture(scope="module")
def client(image_col: Collection, folders: tuple[Path, Path]) -> TestClient:
    return TestClient(create_app(image_col.path, image_roots=[folders[0]]))


def upload(client: TestClient, image: bytes | None, name: str = "query.png", **fields: Any) -> Any:
    files = {"image": (name, image, "image/png")} if image is not None else None
    data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
    return client.post("/api/search/image", files=files, data=data)


def error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return dict(body["error"])


# -- search -------------------------------------------------------------------------------------------------------
def test_the_identical_picture_comes_first_with_a_thumbnail_url(client: TestClient) -> None:
    for i in (0, 3, 5):
        r = upload(client, picture_bytes(i), k=3)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"query", "mode", "k", "offset", "took_ms", "hits"}  # /api/search's shape
        assert (body["query"], body["mode"], body["k"], body["offset"]) == ("", "image", 3, 0)
        first = body["hits"][0]
        assert first["id"] == f"img{i}.png" and first["rank"] == 1
        assert first["score"] == pytest.approx(1.0, abs=1e-4)  # the same picture: cosine 1
        assert first["title"] == f"img{i}" and f"caption {i}" in first["snippet"]
        assert first["thumbnail_url"] == f"/api/documents/img{i}.png/thumbnail"
        assert "thumbnail" not in first["metadata"] and first["metadata"]["image_format"] == "PNG"
        assert "base64" not in r.text
        assert len(body["hits"]) == 3 and body["hits"][1]["score"] < first["score"]


def test_the_type_comes_from_the_bytes_not_the_name(client: TestClient) -> None:
    r = client.post("/api/search/image", files={"image": ("photo.gif", picture_bytes(2), "text/plain")})
    assert r.status_code == 200 and r.json()["hits"][0]["id"] == "img2.png"
    bmp = upload(client, picture_bytes(4, "BMP"), name="x.png").json()  # the same pixels as a BMP named .png
    assert bmp["hits"][0]["id"] == "img4.png" and bmp["hits"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert upload(client, picture_bytes(4, "JPEG"), name="x.gif").status_code == 200


def test_composed_queries_mix_the_text_in(client: TestClient) -> None:
    alone = upload(client, picture_bytes(0), k=9).json()
    composed = upload(client, picture_bytes(0), k=9, text="caption 5", weight="0.5").json()
    assert (composed["mode"], composed["query"]) == ("image+text", "caption 5")
    assert [h["score"] for h in composed["hits"]] != [h["score"] for h in alone["hits"]]
    # all text: the ranking of a dense text search for it
    text_only = upload(client, picture_bytes(0), k=5, text="caption 5", weight="1").json()
    dense = client.get("/api/search", params={"query": "caption 5", "mode": "dense", "k": 5}).json()
    assert [h["id"] for h in text_only["hits"]] == [h["id"] for h in dense["hits"]]
    assert [h["score"] for h in text_only["hits"]] == pytest.approx([h["score"] for h in dense["hits"]], abs=1e-4)
    # weight 0 and a blank text: the image alone
    for fields in ({"text": "caption 5", "weight": "0"}, {"text": "  "}):
        same = upload(client, picture_bytes(0), k=9, **fields).json()
        assert [h["id"] for h in same["hits"]] == [h["id"] for h in alone["hits"]]


def test_paging_and_filters(client: TestClient) -> None:
    full = upload(client, picture_bytes(1), k=5).json()["hits"]
    page = upload(client, picture_bytes(1), k=2, offset=1).json()
    assert page["offset"] == 1 and [h["id"] for h in page["hits"]] == [h["id"] for h in full[1:3]]
    assert [h["rank"] for h in page["hits"]] == [2, 3]
    only = upload(client, picture_bytes(1), k=5, filter={"image_format": "PNG", "image_width": {"lt": 0}}).json()
    assert only["hits"] == []
    chosen = upload(client, picture_bytes(1), k=5, filter={"id_hint": {"exists": False},
                                                           "image_sha256": {"exists": True}}).json()
    assert chosen["hits"][0]["id"] == "img1.png"


def test_text_search_hits_of_an_image_collection_carry_urls_not_base64(client: TestClient) -> None:
    r = client.get("/api/search", params={"query": "caption", "k": 20})
    assert r.status_code == 200 and "base64" not in r.text
    hits = {h["id"]: h for h in r.json()["hits"]}
    assert hits["img1.png"]["thumbnail_url"] == "/api/documents/img1.png/thumbnail"
    info = client.get("/api/info").json()
    assert info["image_search"] is True
    assert "thumbnail" not in info["metadata_fields"] and "image" in info["metadata_fields"]
    schema = client.get("/openapi.json").json()["paths"]["/api/search/image"]["post"]
    assert "multipart/form-data" in schema["requestBody"]["content"]


# -- thumbnails and images ----------------------------------------------------------------------------------------
def test_thumbnail_is_the_stored_jpeg(client: TestClient, image_col: Collection) -> None:
    r = client.get("/api/documents/img2.png/thumbnail")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    stored = image_col.get("img2.png").metadata["thumbnail"]  # type: ignore[union-attr]
    assert r.content == base64.b64decode(stored.split(",", 1)[1])
    with Image.open(io.BytesIO(r.content)) as img:
        img.load()
        assert img.format == "JPEG" and img.size == (48, 40)
    assert error(client.get("/api/documents/note/thumbnail"), 404) == {
        "code": "not_found",
        "message": "document 'note' has no thumbnail (only images indexed with thumbnails have one)"}
    assert error(client.get("/api/documents/nope/thumbnail"), 404) == {
        "code": "not_found", "message": "no document with id 'nope'"}
    # a document whose own id ends in /thumbnail is still served as the document
    r = client.get("/api/documents/notes/thumbnail")
    assert r.status_code == 200 and r.json()["id"] == "notes/thumbnail"


def test_original_images_only_from_shared_folders(client: TestClient, image_col: Collection,
                                                  folders: tuple[Path, Path]) -> None:
    shared, _ = folders
    r = client.get("/api/documents/img3.png/image")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content == (shared / "img3.png").read_bytes()
    assert error(client.get("/api/documents/far0.png/image"), 403) == {
        "code": "forbidden",
        "message": "the image of document 'far0.png' is outside the folders this server serves images from"}
    assert error(client.get("/api/documents/escape/image"), 403)["code"] == "forbidden"  # a symlink out
    assert error(client.get("/api/documents/note/image"), 404)["message"] == "document 'note' names no image file"
    unshared = TestClient(create_app(image_col.path))
    assert error(unshared.get("/api/documents/img3.png/image"), 404) == {
        "code": "not_found", "message": "this server serves no original images (none of its folders is shared: "
        "start it with image_roots); use the thumbnail instead"}
    assert unshared.get("/api/documents/img3.png/thumbnail").status_code == 200


# -- errors -------------------------------------------------------------------------------------------------------
def test_not_an_image_truncated_and_empty_uploads(client: TestClient) -> None:
    assert error(upload(client, b"hello, I am text", name="cat.png"), 415) == {
        "code": "unsupported_image",
        "message": "the upload is not an image in a supported format (judged from its bytes; accepted: JPEG, PNG, "
                   "GIF, WEBP, BMP, TIFF; it starts with b'hello, I am text')"}
    whole = picture_bytes(7, size=(200, 200))
    err = error(upload(client, whole[: len(whole) // 2]), 400)
    assert err["code"] == "bad_image"
    assert err["message"].startswith("the PNG image cannot be decoded, it is truncated or corrupt (")
    assert error(upload(client, b""), 400) == {"code": "bad_image", "message": "the image is empty (0 bytes)"}
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"  # Pillow could open it, through Ghostscript
    assert error(upload(client, eps), 415)["code"] == "unsupported_image"


def test_too_large_uploads_and_decompression_bombs(image_col: Collection) -> None:
    small = TestClient(create_app(image_col.path, max_image_bytes=1000))
    assert error(upload(small, b"\0" * 1001), 413) == {
        "code": "payload_too_large",
        "message": "the uploaded image is over the limit of 1,000 bytes for a query image (the server's "
                   "max_image_bytes)"}
    tiny_body = TestClient(create_app(image_col.path, max_body_bytes=2000))
    assert error(upload(tiny_body, b"\0" * 5000), 413)["code"] == "payload_too_large"  # the body limit
    client = TestClient(create_app(image_col.path))
    assert error(upload(client, png_header(10_000, 10_000)), 413) == {
        "code": "image_too_large",
        "message": f"the image is 10000x10000 = 100,000,000 pixels, over the limit of {DEFAULT_MAX_IMAGE_PIXELS:,} "
                   "(a decompression bomb?)"}
    # so large that Pillow itself refuses to open it
    err = error(upload(client, png_header(30_000, 30_000)), 413)
    assert err["code"] == "image_too_large"
    assert err["message"].startswith("the image has more pixels than Pillow allows (Image size (900000000 pixels)")
    assert err["message"].endswith(f"over the limit of {DEFAULT_MAX_IMAGE_PIXELS:,} (a decompression bomb?)")
    strict = TestClient(create_app(image_col.path, max_image_pixels=1000))
    assert error(upload(strict, picture_bytes(0)), 413)["message"] == (
        "the image is 48x40 = 1,920 pixels, over the limit of 1,000 (a decompression bomb?)")


def test_form_errors(client: TestClient) -> None:
    assert error(client.post("/api/search/image", files={"k": (None, "3")}), 422) == {
        "code": "validation_error",
        "message": "image: Field required (upload the query image as the multipart file field 'image', e.g. curl "
                   "-F image=@photo.jpg)"}
    assert error(client.post("/api/search/image", files={"image": (None, b"abc")}), 422) == {
        "code": "validation_error",
        "message": "image: must be a file upload (multipart file field with a filename), not text"}
    assert error(upload(client, picture_bytes(0), colour="red"), 422) == {
        "code": "validation_error",
        "message": "unknown form field(s) 'colour'; accepted: image, text, weight, k, offset, filter"}
    assert error(upload(client, picture_bytes(0), k="many"), 422) == {
        "code": "validation_error", "message": "k: must be an integer, got 'many'"}
    assert error(upload(client, picture_bytes(0), k=0), 400) == {
        "code": "bad_request", "message": "k must be an integer from 1 to 1000, got 0"}
    assert error(upload(client, picture_bytes(0), weight=2, text="x"), 400) == {
        "code": "bad_request",
        "message": "weight must be a number from 0 to 1 (the text's share of a composed query), got 2.0"}
    assert error(upload(client, picture_bytes(0), filter="{nope"), 400)["code"] == "bad_filter"
    assert error(upload(client, picture_bytes(0), filter="[1]"), 400) == {
        "code": "bad_filter", "message": "filter must be a JSON object of field -> condition"}
    assert error(client.post("/api/search/image", json={"image": "x"}), 415)["code"] == "unsupported_media_type"
    assert error(client.post("/api/search/image", data={"k": "3"}), 415) == {
        "code": "unsupported_media_type",
        "message": "send the query image as multipart/form-data with the file in the field 'image' (got "
                   "Content-Type 'application/x-www-form-urlencoded'); e.g. curl -F image=@photo.jpg"}


def test_collections_without_an_image_index_say_why(tmp_path: Path) -> None:
    plain = Collection.create(tmp_path / "plain")
    plain.add([{"id": "a", "text": "words"}])
    r = upload(TestClient(create_app(plain.path)), picture_bytes(0))
    assert error(r, 400) == {
        "code": "image_search_unavailable",
        "message": "this collection has no image-text (CLIP) index to search images with (it has no dense index); "
                   "create one with dense='clip:MODEL' and add images with `retrievekit index --images`"}
    text = Collection.create(tmp_path / "text", dense="toy:bow")
    text.add([{"id": "a", "text": "words"}])
    app = TestClient(create_app(text.path))
    assert error(upload(app, picture_bytes(0)), 400) == {
        "code": "image_search_unavailable",
        "message": "this collection's dense index 'default' embeds text (toy:bow), not images: image queries need "
                   "an image-text (CLIP) index, e.g. dense='clip:clip-ViT-B-32'"}
    assert app.get("/api/info").json()["image_search"] is False
    hit = app.get("/api/search", params={"query": "words"}).json()["hits"][0]
    assert hit["thumbnail_url"] is None


# -- MCP ----------------------------------------------------------------------------------------------------------
def test_mcp_image_hits_name_the_file_and_caption_without_base64(image_col: Collection,
                                                                 folders: tuple[Path, Path]) -> None:
    pytest.importorskip("mcp")
    from retrievekit.serve.mcp import CollectionTools

    tools = CollectionTools(image_col.path, mode="bm25")
    out = tools.search("caption 4", k=3)
    assert "base64" not in json.dumps(out)
    first = out["hits"][0]
    assert first["id"] == "img4.png"
    assert first["image"] == str((folders[0] / "img4.png").resolve()) and first["caption"] == "caption 4"
    assert "thumbnail" not in first["metadata"]
    text_hit = next(h for h in tools.search("document picture", k=10)["hits"] if h["id"] == "note")
    assert "image" not in text_hit and "caption" not in text_hit
    document = tools.get_document("img4.png")
    assert "thumbnail" not in document["metadata"] and "base64" not in json.dumps(document)


def test_mcp_searches_by_a_local_image_file(image_col: Collection, folders: tuple[Path, Path]) -> None:
    pytest.importorskip("mcp")
    from retrievekit.serve.mcp import CollectionTools

    tools = CollectionTools(image_col.path, mode="bm25")
    out = tools.search_images(str(folders[0] / "img2.png"), k=2)
    assert out["mode"] == "image" and out["hits"][0]["id"] == "img2.png"
    assert out["hits"][0]["image"] == str((folders[0] / "img2.png").resolve()) and "base64" not in json.dumps(out)
    assert tools.search_images(str(folders[0] / "img2.png"), k=2, text="caption 3", weight=0.4)["mode"] == \
        "image+text"
    from retrievekit.service.types import ServiceError

    with pytest.raises(ServiceError, match="no image file at"):
        tools.search_images(str(folders[0] / "missing.png"))
