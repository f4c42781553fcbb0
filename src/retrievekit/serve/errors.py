"""Errors of the HTTP API: every failure is answered as ``{"error": {"code", "message"}}`` with a fitting status.

Messages never carry the server's file paths (``redact``) or what an upstream generator answered (its URL, its
body): those go to the server log, and the client gets the kind of failure."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from retrievekit.core.errors import (
    CollectionError,
    CollectionLockedError,
    InputFormatError,
    MissingExtraError,
    RetrievekitError,
)
from retrievekit.core.filters import FilterError
from retrievekit.serve.redact import redact_paths
from retrievekit.serve.schemas import SEARCH_MODES, ErrorResponse
from retrievekit.service.types import ServiceError

logger = logging.getLogger("retrievekit.serve.app")

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}
# Service error codes answered with a status other than 400.
_SERVICE_STATUS = {"not_found": 404, "read_only": 409, "generator_unavailable": 503, "generator_busy": 503,
                   "forbidden": 403, "payload_too_large": 413, "image_too_large": 413, "unsupported_image": 415,
                   "missing_extra": 503}
# Library errors -> (status, code); the first matching class wins.
_LIBRARY_ERRORS: list[tuple[type[Exception], int, str]] = [
    (CollectionLockedError, 409, "writer_busy"),
    (FilterError, 400, "bad_filter"),
    (InputFormatError, 400, "bad_document"),
    (MissingExtraError, 503, "missing_extra"),
    (CollectionError, 503, "collection_unavailable"),
    (RetrievekitError, 400, "bad_request"),
]


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in [(400, "bad request"), (401, "missing or wrong API key"), (413, "request body too large"),
                         (422, "invalid parameters"), (429, "rate limited"), (503, "collection not available")]
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses of a route for the OpenAPI document."""
    extra = {404: "not found", 409: "another writer holds the collection, or the id names a read-only passage"}
    return {**_ERRORS, **{s: {"model": ErrorResponse, "description": extra[s]} for s in statuses}}


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _redacted(request: Request, message: str) -> str:
    """``message`` without the server's paths (the collection and reports folders are named, others shortened)."""
    server = getattr(request.app.state, "server", None)
    named = [] if server is None else [(server.path, "<collection>"), (server.reports, "<reports>")]
    return redact_paths(message, named)


def _public(exc: BaseException) -> str | None:
    """What a remote client may be told of a generator failure (its ``public`` text), if ``exc`` is or wraps one."""
    for err in (exc, exc.__cause__):
        public = getattr(err, "public", None)
        if isinstance(public, str):
            return f"{public}; the server log has the details"
    return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, _redacted(request, exc.message), exc.headers)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        status = _SERVICE_STATUS.get(exc.code, 400)
        message = exc.message
        if status >= 500:
            logger.warning("%s %s: %s", request.method, request.url.path, exc)
            message = _public(exc) or _redacted(request, message)
        return error_response(status, exc.code, message)

    @app.exception_handler(RetrievekitError)
    async def library_error(request: Request, exc: RetrievekitError) -> JSONResponse:
        from retrievekit.retrieval.rerank import RerankerError

        if isinstance(exc, RerankerError):
            return error_response(400, "rerank_unavailable", str(exc))
        public = _public(exc)
        if public is not None:  # a GenerationError outside the ask service
            logger.warning("%s %s: %s", request.method, request.url.path, exc)
            return error_response(503, "generator_unavailable", public)
        status, code = next((s, c) for cls, s, c in _LIBRARY_ERRORS if isinstance(exc, cls))
        if status >= 500:
            logger.warning("%s %s: %s", request.method, request.url.path, exc)
        return error_response(status, code, _redacted(request, str(exc)))

    @app.exception_handler(OSError)
    async def storage_error(request: Request, exc: OSError) -> JSONResponse:
        # e.g. the collection folder was removed or its disk failed while serving: not the client's fault
        logger.warning("%s %s: %s", request.method, request.url.path, exc)
        what = exc.strerror or type(exc).__name__
        name = f" ({Path(exc.filename).name})" if isinstance(exc.filename, str) else ""
        return error_response(503, "collection_unavailable", f"the collection cannot be read: {what}{name}")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "invalid_json",
                                  f"the request body is not valid JSON: {_validation_message(exc)}")
        bad_mode = next((e for e in errors if tuple(e.get("loc", ()))[-1:] == ("mode",)
                         and e.get("type") in ("literal_error", "string_type")), None)
        if bad_mode is not None and request.url.path in ("/api/search", "/api/ask"):
            return error_response(400, "mode_unavailable", f"unknown search mode {bad_mode.get('input')!r}; choose "
                                  f"one of {', '.join(SEARCH_MODES)}")
        return error_response(422, "validation_error", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return error_response(exc.status_code, _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}"),
                              message, dict(exc.headers) if exc.headers else None)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(500, "internal_error",
                              f"internal server error ({type(exc).__name__}); see the server log")
