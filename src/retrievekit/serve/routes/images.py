"""Image collections: ``POST /api/search/image`` (an uploaded image as the query, optionally composed with text),
``GET /api/documents/{id}/thumbnail`` (the stored JPEG thumbnail) and ``GET /api/documents/{id}/image`` (the
original file, only from folders the server was told to share).

Search hits never carry the inline base64 thumbnail: ``public_hits`` moves it out of the metadata and gives the
hit a ``thumbnail_url`` instead (for /api/search too).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from retrievekit.serve.errors import ApiError, responses
from retrievekit.serve.schemas import ErrorResponse, SearchResponse
from retrievekit.serve.state import ServerState
from retrievekit.service import documents as documents_service
from retrievekit.service.images import (
    QUERY_FORMATS,
    ImageSearchRequest,
    original_image,
    public_metadata,
    search_image,
    thumbnail_jpeg,
)
from retrievekit.service.search import DEFAULT_K, HTML_HITS, MAX_K, MAX_OFFSET, MAX_QUERY_CHARS
from retrievekit.service.types import ServiceError

FORM_FIELDS = ("image", "text", "weight", "k", "offset", "filter")
MAX_FIELD_BYTES = 65_536  # a form field other than the image (the filter is the longest)

_UPLOAD_SCHEMA = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["image"],
        "properties": {
            "image": {"type": "string", "format": "binary",
                      "description": f"the query image ({', '.join(QUERY_FORMATS)}; the type is judged from the "
                      "bytes)"},
            "text": {"type": "string", "maxLength": MAX_QUERY_CHARS,
                     "description": "compose: this image, changed as the text says"},
            "weight": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5,
                       "description": "the text's share of a composed query (0: the image only)"},
            "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": DEFAULT_K},
            "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
            "filter": {"type": "string", "description": "metadata filter as JSON, as for /api/search"},
        }}}},
}


def thumbnail_url(doc_id: str) -> str:
    return f"/api/documents/{quote(doc_id, safe='')}/thumbnail"


def public_hits(payload: dict[str, Any]) -> dict[str, Any]:
    """A search response with each hit's inline thumbnail replaced by ``thumbnail_url`` (null when it has none)."""
    for hit in payload.get("hits", ()):
        metadata = hit.get("metadata") or {}
        hit["thumbnail_url"] = thumbnail_url(hit["id"]) if "thumbnail" in metadata else None
        hit["metadata"] = public_metadata(metadata)
    return payload


def _invalid(message: str) -> ApiError:
    return ApiError(422, "validation_error", message)


def _number(form: Any, name: str, kind: type, default: Any) -> Any:
    raw = form.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return default
    if not isinstance(raw, str):
        raise _invalid(f"{name}: must be a form field, not a file")
    try:
        return kind(raw.strip())
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise _invalid(f"{name}: must be {what}, got {raw[:40]!r}") from None


def _filter(raw: Any) -> dict[str, Any] | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str):
        raise _invalid("filter: must be a form field holding JSON, not a file")
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "bad_filter", f"filter is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise ApiError(400, "bad_filter", "filter must be a JSON object of field -> condition")
    return parsed


def _multipart_available() -> bool:
    return any(importlib.util.find_spec(name) is not None for name in ("python_multipart", "multipart"))


def router(state: ServerState, *, max_image_bytes: int, max_image_pixels: int,
           image_roots: Sequence[str | Path] = ()) -> APIRouter:
    api = APIRouter(tags=["images"])
    roots = [Path(r) for r in image_roots]

    @api.post("/api/search/image", response_model=SearchResponse, openapi_extra={"requestBody": _UPLOAD_SCHEMA},
              responses={**responses(), 415: {"model": ErrorResponse, "description": "not multipart, or not an "
                                              "image of a supported format"}})
    async def search_image_upload(request: Request) -> dict[str, Any]:
        """Rank the documents of an image collection (one with an image-text, CLIP, index) for an uploaded
        image: multipart/form-data with the file in ``image``, optional ``text`` (a composed query: this image,
        changed as the text says) and ``weight`` (the text's share, 0 to 1), ``k``, ``offset`` and ``filter``
        (JSON). E.g. ``curl -F image=@photo.jpg -F k=5 URL``. Hits have the shape of /api/search's."""
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise ApiError(415, "unsupported_media_type", f"send the query image as multipart/form-data with the "
                           f"file in the field 'image' (got Content-Type {content_type[:80]!r}); e.g. curl -F "
                           "image=@photo.jpg")
        if not _multipart_available():
            raise ApiError(503, "missing_extra", "image uploads need python-multipart on the server: pip install "
                           "python-multipart")
        async with request.form(max_files=1, max_fields=len(FORM_FIELDS),
                                max_part_size=MAX_FIELD_BYTES) as form:
            unknown = sorted(set(form.keys()) - set(FORM_FIELDS))
            if unknown:
                raise _invalid(f"unknown form field(s) {', '.join(map(repr, unknown))}; accepted: "
                               f"{', '.join(FORM_FIELDS)}")
            repeated = sorted(name for name in set(form.keys()) if len(form.getlist(name)) > 1)
            if repeated:
                raise _invalid(f"form field(s) {', '.join(map(repr, repeated))} given more than once")
            upload = form.get("image")
            if upload is None:
                raise _invalid("image: Field required (upload the query image as the multipart file field "
                               "'image', e.g. curl -F image=@photo.jpg)")
            if not isinstance(upload, UploadFile):
                raise _invalid("image: must be a file upload (multipart file field with a filename), not text")
            data = await upload.read(max_image_bytes + 1)
            if len(data) > max_image_bytes:
                raise ApiError(413, "payload_too_large", f"the uploaded image is over the limit of "
                               f"{max_image_bytes:,} bytes for a query image (the server's max_image_bytes)")
            text = form.get("text")
            if text is not None and not isinstance(text, str):
                raise _invalid("text: must be a form field, not a file")
            search = ImageSearchRequest(
                data, k=_number(form, "k", int, DEFAULT_K), offset=_number(form, "offset", int, 0),
                text=text if text and text.strip() else None, weight=_number(form, "weight", float, 0.5),
                filter=_filter(form.get("filter")), max_bytes=max_image_bytes, max_pixels=max_image_pixels)

        def run() -> dict[str, Any]:
            response = search_image(state.collection(), search)
            state.record_latency(response.took_ms)
            return public_hits(response.to_json(HTML_HITS))

        return await run_in_threadpool(run)

    def shadowed(doc_id: str, suffix: str) -> JSONResponse | None:
        """A document whose own id ends in /thumbnail or /image keeps being served as a document."""
        col = state.collection()
        if col.get(doc_id) is not None:
            return None
        try:
            return JSONResponse(documents_service.describe_document(col, f"{doc_id}/{suffix}"))
        except ServiceError:
            return None

    @api.get("/api/documents/{doc_id:path}/thumbnail", response_class=Response, responses={
        **responses(404), 200: {"content": {"image/jpeg": {}}, "description": "the thumbnail (JPEG)"}})
    def get_thumbnail(doc_id: str) -> Response:
        """The document's stored thumbnail as image/jpeg (images indexed with thumbnails have one); 404 when the
        document has none."""
        document = shadowed(doc_id, "thumbnail")
        if document is not None:
            return document
        data = thumbnail_jpeg(state.collection(), doc_id)
        return Response(data, media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=60", "X-Content-Type-Options": "nosniff"})

    @api.get("/api/documents/{doc_id:path}/image", response_class=Response, responses={
        **responses(404), 403: {"model": ErrorResponse, "description": "the file is outside the shared folders"},
        200: {"content": {"image/*": {}}, "description": "the original image file"}})
    def get_image(doc_id: str) -> Response:
        """The document's original image file, served only when it lies inside a folder the server was started
        to share images from (``image_roots``); 404 otherwise."""
        document = shadowed(doc_id, "image")
        if document is not None:
            return document
        path, media_type = original_image(state.collection(), doc_id, roots)
        return FileResponse(path, media_type=media_type,
                            headers={"Cache-Control": "private, max-age=60", "X-Content-Type-Options": "nosniff"})

    return api


__all__ = ["public_hits", "router", "thumbnail_url"]
