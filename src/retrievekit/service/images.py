"""Image collections for the faces (HTTP API, web UI, MCP): which dense index embeds images, query images decoded
from untrusted bytes within limits, image search (``search_image``: image → image, or image + text composed), the
stored thumbnails, and hit metadata without the inline base64 thumbnail.

    response = search_image(col, ImageSearchRequest(open("cat.jpg", "rb").read(), k=5, text="at night"))
    response.to_json()      # the shape of ``search``'s: {"query", "mode", "k", "offset", "took_ms", "hits"}

Query images are refused over ``max_bytes``, then decoded by ``core.images.decode_image``: sniffed from their bytes
(never from a file name or a content type), limited to common raster formats (``QUERY_FORMATS``), refused over
``max_pixels`` from the header before decoding (decompression bombs), and decoded completely, so a truncated file
fails here with a clear error.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from retrievekit.core.errors import RetrievekitError
from retrievekit.core.images import ImageDecodeError, decode_image
from retrievekit.service.collections import is_sharded
from retrievekit.service.search import MAX_K, MAX_OFFSET, MAX_QUERY_CHARS, Hit, SearchRequest, SearchResponse
from retrievekit.service.types import ServiceError, check_filter, check_int, check_text

if TYPE_CHECKING:
    from retrievekit.collection import Collection
    from retrievekit.service.collections import AnyCollection

__all__ = ["DEFAULT_MAX_IMAGE_BYTES", "DEFAULT_MAX_IMAGE_PIXELS", "HIDDEN_METADATA", "QUERY_FORMATS",
           "ImageSearchRequest", "decode_query_image", "has_image_index", "image_index", "original_image",
           "public_metadata", "search_image", "thumbnail_jpeg"]

DEFAULT_MAX_IMAGE_BYTES = 10 * 2**20
#: a query image over this many pixels is refused before decoding (40 MP: a 7,300 x 5,500 photo; decoded as RGB
#: it takes 120 MB)
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
#: the formats a query image may have (Pillow's names): common raster formats only. Others Pillow can open are
#: refused: some hand the bytes to external programs (EPS to Ghostscript) or are rarely what a user means.
QUERY_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
#: metadata keys never sent with a hit: the inline base64 thumbnail (a URL to it is sent instead)
HIDDEN_METADATA = ("thumbnail",)
_THUMBNAIL_PREFIX = "data:image/jpeg;base64,"


def image_index(col: AnyCollection, index: str = "default") -> str:
    """``index`` if it is a dense index that embeds images (an image-text, CLIP, index); else ServiceError
    ``image_search_unavailable`` saying what the collection has and how to get one."""
    if is_sharded(col):
        raise ServiceError("image_search_unavailable", "image search is not offered on a sharded collection; serve "
                           "a plain collection with an image-text (CLIP) dense index", param="image")
    dense = col.config.get("dense") or {}
    config = dense.get(index)
    if config is None:
        has = f"its dense indexes: {', '.join(dense)}" if dense else "it has no dense index"
        raise ServiceError("image_search_unavailable", f"this collection has no image-text (CLIP) index to search "
                           f"images with ({has}); create one with dense='clip:MODEL' and add images with "
                           "`retrievekit index --images`", param="image")
    if config.get("modality") != "image":
        encoder = config.get("encoder") or {}
        raise ServiceError("image_search_unavailable", f"this collection's dense index {index!r} embeds text "
                           f"({encoder.get('backend')}:{encoder.get('model')}), not images: image queries need an "
                           "image-text (CLIP) index, e.g. dense='clip:clip-ViT-B-32'", param="image")
    return index


def has_image_index(col: AnyCollection, index: str = "default") -> bool:
    try:
        image_index(col, index)
    except ServiceError:
        return False
    return True


def decode_query_image(data: bytes, *, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
                       max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Any:
    """An RGB ``PIL.Image`` decoded from untrusted ``data``, or ServiceError: ``payload_too_large`` (over
    ``max_bytes``), ``unsupported_image`` (not an image of ``QUERY_FORMATS``, judged from the bytes),
    ``image_too_large`` (over ``max_pixels``, judged from the header before decoding) or ``bad_image`` (empty,
    truncated or corrupt)."""
    if not isinstance(data, bytes | bytearray):
        raise ServiceError("bad_image", f"the image must be bytes, got {type(data).__name__}", param="image")
    if len(data) > max_bytes:
        raise ServiceError("payload_too_large", f"the image is {len(data):,} bytes, over the limit of {max_bytes:,} "
                           "bytes for a query image", param="image")
    try:
        img = decode_image(bytes(data), max_pixels=max_pixels, formats=QUERY_FORMATS)
    except ImageDecodeError as exc:
        code = _DECODE_ERRORS[exc.reason]
        message = f"the upload is {exc.detail}" if exc.reason == "not_an_image" else exc.detail
        raise ServiceError(code, message, param="image") from None
    except RetrievekitError as exc:  # Pillow is not installed
        raise ServiceError("missing_extra", f"image queries: {exc}") from None
    with img:
        return img.convert("RGB")


#: ServiceError codes of ``core.images.decode_image``'s reasons
_DECODE_ERRORS = {"not_an_image": "unsupported_image", "too_many_pixels": "image_too_large", "corrupt": "bad_image"}


@dataclass
class ImageSearchRequest:
    """An image query: ``image`` as encoded bytes (decoded within ``max_bytes``/``max_pixels``) or a PIL image;
    ``text``: compose "this image, changed as the text says" with ``weight`` (0: the image only, 1: the text
    only); ``k``, ``offset``, ``filter`` as for ``SearchRequest``; ``index``: the image-text dense index."""

    image: Any
    k: int = 10
    offset: int = 0
    text: str | None = None
    weight: float = 0.5
    filter: dict[str, Any] | None = None
    index: str = "default"
    max_k: int = MAX_K
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS


def search_image(col: AnyCollection, request: ImageSearchRequest) -> SearchResponse:
    """Rank the documents of ``col``'s image-text index for an image (and text) query; the response has the shape
    of ``search``'s (its mode is "image", or "image+text" for a composed query; its query is the text)."""
    started = time.perf_counter()
    index = image_index(col, request.index)  # first: the collection cannot answer at all
    check_int(request.k, "k", 1, request.max_k)
    check_int(request.offset, "offset", 0, MAX_OFFSET)
    text = request.text
    if text is not None:
        check_text(text, "text", max_chars=MAX_QUERY_CHARS)
    weight = request.weight
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not (
            math.isfinite(weight) and 0.0 <= weight <= 1.0):
        raise ServiceError("bad_request", f"weight must be a number from 0 to 1 (the text's share of a composed "
                           f"query), got {weight!r}", param="weight")
    filt = check_filter(request.filter, col=col)
    image = request.image
    if isinstance(image, bytes | bytearray):
        image = decode_query_image(bytes(image), max_bytes=request.max_bytes, max_pixels=request.max_pixels)
    plain = cast("Collection", col)  # image_index refused a sharded collection
    results = plain.search_images([image], request.offset + request.k, text=text, weight=float(weight),
                                  index=index, filter=filt)
    hits = [Hit(request.offset + n, doc, score)
            for n, (doc, score) in enumerate(col.hit_documents(results, 0, start=request.offset), start=1)]
    shown = SearchRequest(text or "", k=request.k, offset=request.offset,
                          mode="image" if text is None else "image+text", filter=filt)
    return SearchResponse(shown, hits, (time.perf_counter() - started) * 1000, col.analyzer)


def public_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` without ``HIDDEN_METADATA`` (the inline base64 thumbnail)."""
    if not any(key in metadata for key in HIDDEN_METADATA):
        return metadata
    return {key: value for key, value in metadata.items() if key not in HIDDEN_METADATA}


def thumbnail_jpeg(col: AnyCollection, doc_id: str) -> bytes:
    """The JPEG bytes of document ``doc_id``'s stored thumbnail; ServiceError ``not_found`` when there is no such
    document or it has no thumbnail."""
    doc = col.get(doc_id) if isinstance(doc_id, str) and doc_id else None
    if doc is None:
        raise ServiceError("not_found", f"no document with id {doc_id!r}", param="id")
    value = doc.metadata.get("thumbnail")
    if not isinstance(value, str) or not value.startswith(_THUMBNAIL_PREFIX):
        raise ServiceError("not_found", f"document {doc_id!r} has no thumbnail (only images indexed with "
                           "thumbnails have one)", param="id")
    try:
        return base64.b64decode(value[len(_THUMBNAIL_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise ServiceError("not_found", f"document {doc_id!r} has no valid thumbnail (its base64 is damaged)",
                           param="id") from None


_MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp",
                "BMP": "image/bmp", "TIFF": "image/tiff"}


def original_image(col: AnyCollection, doc_id: str, roots: Sequence[str | Path]) -> tuple[Path, str]:
    """(path, media type) of document ``doc_id``'s original image file, only when that file, symbolic links
    resolved, is a regular file inside one of ``roots`` (the folders a server was told to serve images from) and
    is an image of ``QUERY_FORMATS``; ServiceError ``not_found`` otherwise (``forbidden`` when it lies outside every
    root). Nothing else a document's metadata names is ever read."""
    from PIL import Image

    if not roots:
        raise ServiceError("not_found", "this server serves no original images (none of its folders is shared: "
                           "start it with image_roots); use the thumbnail instead", param="id")
    doc = col.get(doc_id) if isinstance(doc_id, str) and doc_id else None
    if doc is None:
        raise ServiceError("not_found", f"no document with id {doc_id!r}", param="id")
    named = doc.metadata.get("image")
    if not isinstance(named, str) or not named or "\x00" in named:
        raise ServiceError("not_found", f"document {doc_id!r} names no image file", param="id")
    real = Path(os.path.realpath(named))
    inside = False
    for root in roots:
        base = os.path.realpath(root)
        if os.path.commonpath([base, str(real)]) == base:
            inside = True
            break
    if not inside:
        raise ServiceError("forbidden", f"the image of document {doc_id!r} is outside the folders this server "
                           "serves images from", param="id")
    if not real.is_file():
        raise ServiceError("not_found", f"the image file of document {doc_id!r} is gone", param="id")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(real, formats=list(QUERY_FORMATS)) as img:
                kind = str(img.format)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            raise ServiceError("not_found", f"the file of document {doc_id!r} is not an image of a served format "
                               f"({', '.join(QUERY_FORMATS)})", param="id") from None
    return real, _MEDIA_TYPES[kind]
