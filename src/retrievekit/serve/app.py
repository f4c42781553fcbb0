"""The HTTP API of a collection (FastAPI): search, questions answered from it (RAG), documents, info, stats and
evaluation reports. ``create_app`` wires the routers of ``retrievekit.serve.routes`` (each over the service layer,
``retrievekit.service``), the error handlers and the middleware.

Endpoints are plain functions, so FastAPI runs them in its thread pool: a search proceeds while another request
commits (readers see the last committed snapshot). Writes of this server are serialised by a lock; across processes
the collection's writer lock serialises them, and a writer that cannot get it in ``lock_timeout`` seconds gets 409.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retrievekit.core.errors import require
from retrievekit.serve import ServeError
from retrievekit.serve.security import BodySizeLimitMiddleware, GuardMiddleware, TokenBucketLimiter, is_loopback
from retrievekit.service.collections import CLUSTER_MANIFEST, is_sharded_folder
from retrievekit.storage.manifest import MANIFEST

require("fastapi", "serve")

from fastapi import Depends, FastAPI, Request  # noqa: E402
from fastapi.middleware.cors import CORSMiddleware  # noqa: E402
from fastapi.responses import RedirectResponse  # noqa: E402
from fastapi.staticfiles import StaticFiles  # noqa: E402

from retrievekit.rag.generators.base import GenerationError, Generator  # noqa: E402
from retrievekit.serve.errors import ApiError, install_error_handlers  # noqa: E402
from retrievekit.serve.routes import ask, documents, eval, images, info, search  # noqa: E402
from retrievekit.serve.routes.eval import latest_report  # noqa: E402
from retrievekit.serve.state import GeneratorSlot, ServerState  # noqa: E402
from retrievekit.service.images import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS  # noqa: E402
from retrievekit.service.search import html_snippet  # noqa: E402

__all__ = ["ApiError", "create_app", "html_snippet", "latest_report", "run", "startup_message"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
DEFAULT_HEADER_TIMEOUT = 10.0  # seconds for a request head (see serve.protocol)


def _check_rag_options(rag_options: dict[str, Any]) -> None:
    import inspect

    from retrievekit.rag.pipeline import RAG

    accepted = set(inspect.signature(RAG).parameters) - {"collection", "generator"}
    unknown = sorted(set(rag_options) - accepted)
    if unknown:
        raise ServeError(f"unknown rag_options {unknown}; accepted: {', '.join(sorted(accepted))}")


def create_app(
    collection: str | Path,
    *,
    api_key: str | None = None,
    cors_origins: Sequence[str] = (),
    max_body_bytes: int = 10 * 2**20,
    rate_limit: float | None = None,
    reports: str | Path | None = None,
    lock_timeout: float = 5.0,
    generator: str | Generator | None = None,
    rag_options: dict[str, Any] | None = None,
    ray: str | None = None,
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    image_roots: Sequence[str | Path] = (),
    document_roots: Sequence[str | Path] = (),
) -> FastAPI:
    """The API of the collection at ``collection`` (opened on first use: ``/ready`` says 503 until it can be): a
    plain collection, or a sharded one (a folder holding ``cluster.json``; ``ray``: None runs its shards in this
    process, an address such as "local" or "HOST:PORT" as Ray actors) with the same API.

    ``api_key``: every route but /health, /ready and the UI needs ``Authorization: Bearer KEY``. ``cors_origins``:
    origins allowed to call from a browser (none: no CORS headers). ``rate_limit``: requests per second per client
    address on /api (bursts of twice that). ``reports``: folder of evaluation reports (default
    ``<collection>/reports``). ``lock_timeout``: seconds a write waits for the writer lock before 409.
    ``generator``: what answers /api/ask: None (the default: the selected contexts, no answer text), ``"local"`` (the
    offline gemma-3-270m, loaded on the first question), ``"openai:MODEL@URL"`` or a Generator; it is built once and
    shared by all requests. ``rag_options``: further ``retrievekit.rag.RAG`` settings (template, instruction, allow,
    safety, expand, ...) and server defaults for the request's (depth, selector, compress, drop_flagged,
    max_tokens, mode, filter), which a request may override; the rest of the defaults are ``RAGConfig``'s.

    Image collections (an image-text, CLIP, index): ``max_image_bytes`` and ``max_image_pixels`` limit a query image
    uploaded to /api/search/image (the body limit ``max_body_bytes`` applies too); ``image_roots``: folders whose
    image files /api/documents/{id}/image may serve (none: original images are not served, thumbnails are).

    ``document_roots``: folders (the ones indexed) whose PDF, Office, EPUB and e-mail files
    /api/documents/{id}/file may serve, by the path a document of a folder ingest carries (none: not served)."""
    from retrievekit.core.version import __version__

    if max_body_bytes <= 0:
        raise ServeError(f"max_body_bytes must be positive, got {max_body_bytes}")
    if rate_limit is not None and not (rate_limit > 0 and math.isfinite(rate_limit)):
        raise ServeError(f"rate_limit must be a positive number of requests per second, got {rate_limit}")
    if max_image_bytes <= 0 or max_image_pixels <= 0:
        raise ServeError(f"max_image_bytes and max_image_pixels must be positive, got {max_image_bytes} and "
                         f"{max_image_pixels}")
    for root in image_roots:
        if not Path(root).is_dir():
            raise ServeError(f"image_roots: {root} is not a folder")
    for root in document_roots:
        if not Path(root).is_dir():
            raise ServeError(f"document_roots: {root} is not a folder")
    if rag_options:
        _check_rag_options(rag_options)
    path = Path(collection)
    state = ServerState(path, Path(reports) if reports is not None else path / "reports", lock_timeout,
                        GeneratorSlot(generator), rag_options, ray=ray)

    async def count(request: Request) -> None:
        route = request.scope.get("route")
        state.record(f"{request.method} {getattr(route, 'path_format', request.url.path)}")

    app = FastAPI(title="retrievekit", version=__version__, dependencies=[Depends(count)],
                  description=f"Search and manage the retrievekit collection {path.name!r}.",
                  generate_unique_id_function=lambda route: route.name)  # operation ids = function names
    app.state.server = state
    state.document_files = bool(document_roots)
    install_error_handlers(app)
    # images before documents: its /api/documents/{id}/thumbnail must not be read as the document "{id}/thumbnail"
    image_routes = images.router(state, max_image_bytes=max_image_bytes, max_image_pixels=max_image_pixels,
                                 image_roots=image_roots)
    for router in (info.health_router(state), search.router(state), image_routes, ask.router(state),
                   documents.router(state, document_roots), info.router(state), eval.router(state)):
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    if STATIC_DIR.is_dir():
        app.mount("/ui", StaticFiles(directory=STATIC_DIR, html=True), name="ui")

    # Added last = outermost: CORS answers preflights before the key is checked; the size limit runs innermost.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes)  # type: ignore[arg-type,unused-ignore]
    app.add_middleware(GuardMiddleware, api_key=api_key,  # type: ignore[arg-type,unused-ignore]
                       limiter=TokenBucketLimiter(rate_limit) if rate_limit else None)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins),  # type: ignore[arg-type,unused-ignore]
                           allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    return app


def run(
    collection: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    *,
    cors_origins: Sequence[str] = (),
    max_body_bytes: int = 10 * 2**20,
    rate_limit: float | None = None,
    reports: str | Path | None = None,
    log_level: str = "info",
    generator: str | Generator | None = None,
    rag_options: dict[str, Any] | None = None,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    keep_alive: int = 5,
    max_connections: int = 256,
    ray: str | None = None,
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    image_roots: Sequence[str | Path] = (),
    document_roots: Sequence[str | Path] = (),
) -> None:
    """Serve ``collection`` (plain or sharded; ``ray``: see ``create_app``) with uvicorn until interrupted. Refuses a
    host other machines can reach unless an API key is set, and a folder that holds no collection. ``generator``
    answers /api/ask (see ``create_app``): a ``"local"`` model loads on the first question; any other spec is built
    now, so a typo fails at start; a sharded collection's shards are opened now too.

    Connections: a client must send a complete request head within ``header_timeout`` seconds of connecting (and
    of each response), an idle kept-alive connection is closed after ``keep_alive`` seconds, and beyond
    ``max_connections`` open connections requests are answered 503, so idle or trickling clients cannot hold the
    server."""
    if not is_loopback(host) and not api_key:
        raise ServeError(f"refusing to serve on {host!r} without an API key: anyone who can reach that address could "
                         "read and change the collection. Pass --api-key KEY (or set RETRIEVEKIT_API_KEY), or serve "
                         "on 127.0.0.1")
    sharded = is_sharded_folder(collection)
    if not sharded and not (Path(collection) / MANIFEST).is_file():
        raise ServeError(f"no collection at {collection} (no {MANIFEST}, nor a sharded collection's "
                         f"{CLUSTER_MANIFEST}); create one with `retrievekit index`")
    if ray is not None and not sharded:
        raise ServeError(f"{collection} is not a sharded collection (no {CLUSTER_MANIFEST}): a Ray address applies "
                         "to the shards of a sharded collection only")
    if not (header_timeout > 0 and math.isfinite(header_timeout)):
        raise ServeError(f"header_timeout must be a positive number of seconds, got {header_timeout}")
    if keep_alive < 1 or max_connections < 1:
        raise ServeError(f"keep_alive and max_connections must be at least 1, got {keep_alive} and {max_connections}")
    uvicorn = require("uvicorn", "serve")
    from retrievekit.serve.protocol import HeaderTimeoutProtocol
    app = create_app(collection, api_key=api_key, cors_origins=cors_origins, max_body_bytes=max_body_bytes,
                     rate_limit=rate_limit, reports=reports, generator=generator, rag_options=rag_options, ray=ray,
                     max_image_bytes=max_image_bytes, max_image_pixels=max_image_pixels, image_roots=image_roots,
                     document_roots=document_roots)
    if isinstance(generator, str) and generator.strip().partition(":")[0].lower() != "local":
        try:
            app.state.server.generator.get()
        except GenerationError as exc:
            raise ServeError(str(exc)) from None
    if sharded:
        try:
            app.state.server.collection()  # open the shards now: a wrong Ray address fails at start
        except ApiError as exc:
            raise ServeError(exc.message) from None
    print(startup_message(collection, host, port, api_key=bool(api_key), sharded=sharded), flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level,
                    http=HeaderTimeoutProtocol.with_timeout(header_timeout), timeout_keep_alive=keep_alive,
                    limit_concurrency=max_connections)
    finally:
        app.state.server.close()


def startup_message(collection: str | Path, host: str, port: int, *, api_key: bool = False,
                    sharded: bool = False) -> str:
    """What ``serve`` prints before uvicorn's log: where the UI, the API docs and the API are, and how to reach the
    collection over MCP (not offered for a sharded collection)."""
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    lines = [f"retrievekit: serving {collection} at {base}/",
             f"  web UI     {base}/ui/",
             f"  API docs   {base}/docs  (OpenAPI schema: {base}/openapi.json)",
             f"  search     curl '{base}/api/search?query=your+words'"]
    if not sharded:
        lines.append(f"  MCP        retrievekit mcp {collection}  (stdio, for MCP clients such as Claude Desktop)")
    if api_key:
        lines.append("  API calls need 'Authorization: Bearer KEY' (the UI asks for the key)")
    lines.append("  stop with Ctrl+C")
    return "\n".join(lines)
