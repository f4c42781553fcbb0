"""What the HTTP endpoints share: the collection (opened on first use), the generator (built once), the write
lock, reranker instances and request statistics."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrievekit.core.errors import CollectionError
from retrievekit.rag.generators.base import GenerationError, Generator, PromptInput
from retrievekit.serve import ServeError
from retrievekit.serve.errors import ApiError
from retrievekit.service.ask import Asker
from retrievekit.service.collections import AnyCollection, is_sharded, open_collection
from retrievekit.service.info import metadata_fields

if TYPE_CHECKING:
    from retrievekit.sharding.collection import ShardedWriter
    from retrievekit.storage.writer import CollectionWriter

logger = logging.getLogger("retrievekit.serve.app")

MAX_CONCURRENT_GENERATIONS = 2
GENERATION_WAIT_SECONDS = 60.0
# Questions that may wait for a generation slot; more are answered 503 at once (waiting costs no worker thread,
# but an unbounded queue would only turn a slow generator into ever longer waits).
MAX_WAITING_GENERATIONS = 32
RETRY_AFTER_SECONDS = 10


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
            raise GenerationError(f"the generator failed: {type(exc).__name__}: {exc}",
                                  public=f"the generator failed ({type(exc).__name__})") from exc

    def config(self) -> dict[str, Any]:
        return self.inner.config()

    def close(self) -> None:
        self.inner.close()


class GeneratorSlot:
    """The server's generator, built once on first use (loading a local model takes seconds) and shared by every
    request; thread-safe. A failed load is remembered, so requests do not each retry an expensive load.

    At most MAX_CONCURRENT_GENERATIONS answers are generated at once. A question waits for a slot in the event
    loop (``slot``), never in a worker thread: threads waiting for a slow generator would starve /api/search and
    /health of workers. At most MAX_WAITING_GENERATIONS wait; more are answered 503 with Retry-After."""

    def __init__(self, spec: str | Generator | None) -> None:
        if spec is not None and not isinstance(spec, Generator) and not (isinstance(spec, str) and spec.strip()):
            raise ServeError(f"generator must be a spec such as 'local' or 'openai:MODEL@URL', a Generator or None; "
                             f"got {spec!r}")
        self.spec = spec.strip() if isinstance(spec, str) else spec
        self._generator: Generator | None = _Guarded(spec) if isinstance(spec, Generator) else None
        self._failure: str | None = None
        self._lock = threading.Lock()
        # A threading semaphore, not an asyncio one: it does not belong to one event loop, and ``gate`` (for
        # callers in threads) shares it.
        self.slots = threading.BoundedSemaphore(MAX_CONCURRENT_GENERATIONS)
        self._waiting = 0
        self._waiting_lock = threading.Lock()

    def get(self) -> Generator | None:
        """The generator (None when the server has none); raises GenerationError when it cannot be loaded."""
        if self.spec is None or self._generator is not None:
            return self._generator
        with self._lock:
            if self._generator is None:
                if self._failure is not None:
                    raise GenerationError(self._failure, kind="unavailable")
                from retrievekit.rag.generators.base import get_generator

                started = time.perf_counter()
                try:
                    self._generator = _Guarded(get_generator(self.spec))
                except Exception as exc:  # missing packages, unknown names, a model that will not load
                    self._failure = f"the generator {self.spec!r} cannot be loaded: {type(exc).__name__}: {exc}"
                    logger.error("%s", self._failure)
                    raise GenerationError(self._failure, kind="unavailable") from None
                logger.info("generator %r ready in %.1f s", self.spec, time.perf_counter() - started)
        return self._generator

    def _busy(self, why: str) -> ApiError:
        return ApiError(503, "generator_busy", f"{MAX_CONCURRENT_GENERATIONS} answers are being generated and {why}; "
                        f"retry in {RETRY_AFTER_SECONDS} s", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Held (from the event loop) while an answer is generated. Waiting polls the semaphore with short sleeps:
        a waiting question holds no thread, and the semaphore is shared by every event loop and thread."""
        if not self.slots.acquire(blocking=False):
            with self._waiting_lock:
                if self._waiting >= MAX_WAITING_GENERATIONS:
                    raise self._busy(f"{self._waiting} more questions are waiting")
                self._waiting += 1
            try:
                deadline, pause = time.monotonic() + GENERATION_WAIT_SECONDS, 0.005
                while not self.slots.acquire(blocking=False):
                    if time.monotonic() >= deadline:
                        raise self._busy(f"none finished within {GENERATION_WAIT_SECONDS:.0f} s")
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.1)
            finally:
                with self._waiting_lock:
                    self._waiting -= 1
        try:
            yield
        finally:
            self.slots.release()

    @contextmanager
    def gate(self) -> Iterator[None]:
        """``slot`` for a caller in a worker thread (it blocks that thread while it waits)."""
        if not self.slots.acquire(timeout=GENERATION_WAIT_SECONDS):
            raise self._busy(f"none finished within {GENERATION_WAIT_SECONDS:.0f} s")
        try:
            yield
        finally:
            self.slots.release()

    def describe(self) -> dict[str, Any] | None:
        """For /api/info: the config once loaded, the spec before (describing never loads a model)."""
        if self.spec is None:
            return None
        if self._generator is not None:
            return self._generator.config()
        out: dict[str, Any] = {"spec": self.spec, "loaded": False}
        if self._failure is not None:  # the details (paths, exceptions) are in the server log
            out["error"] = GenerationError.KINDS["unavailable"] + "; see the server log"
        return out


class ServerState:
    """What the endpoints share: the collection (opened on first use: a plain or a sharded one, see
    ``service.collections.open_collection``; ``ray``: where a sharded collection's shards run), the write lock and
    request statistics."""

    def __init__(self, path: Path, reports: Path, lock_timeout: float, generator: GeneratorSlot | None = None,
                 rag_options: Mapping[str, Any] | None = None, ray: str | None = None) -> None:
        self.path = path
        self.reports = reports
        self.lock_timeout = lock_timeout
        self.ray = ray
        self.write_lock = threading.Lock()
        self._collection: AnyCollection | None = None
        self._lock = threading.Lock()  # held briefly: counters, opening the collection
        self._reranker_lock = threading.Lock()  # held while a reranker loads its model
        self._rerankers: dict[str, Any] = {}
        self._fields: tuple[int, list[str]] | None = None
        self.requests: Counter[str] = Counter()
        self.latencies: deque[float] = deque(maxlen=2048)
        self.ask_latencies: deque[float] = deque(maxlen=2048)
        self.generator = generator or GeneratorSlot(None)
        self.rag_options = dict(rag_options or {})
        self.document_files = False  # /api/documents/{id}/file serves source files (the server has document roots)
        self._asker: Asker | None = None

    def collection(self) -> AnyCollection:
        col = self._collection
        if col is None:
            with self._lock:
                if self._collection is None:
                    try:
                        self._collection = open_collection(self.path, ray=self.ray)
                    except CollectionError as exc:
                        raise ApiError(503, "not_ready", f"the collection cannot be opened: {exc}") from None
                col = self._collection
        return col

    def close(self) -> None:
        """Release what the open collection holds beyond its files (a sharded collection's shard threads or Ray
        actor handles); the next request opens it again."""
        with self._lock:
            col, self._collection = self._collection, None
        if is_sharded(col):
            col.close()

    def asker(self) -> Asker:
        """Answers /api/ask: the RAGConfig defaults, the server's rag_options, and one RetrievalCache shared by every
        question (its keys include the search settings and the commit generation)."""
        if self._asker is None:
            from retrievekit.rag.pipeline import RetrievalCache

            with self._lock:
                if self._asker is None:
                    self._asker = Asker(options={"cache": RetrievalCache(), **self.rag_options})
        return self._asker

    def record(self, endpoint: str) -> None:
        with self._lock:
            self.requests[endpoint] += 1

    def record_latency(self, ms: float, *, ask: bool = False) -> None:
        with self._lock:
            (self.ask_latencies if ask else self.latencies).append(ms)

    def snapshot_stats(self) -> tuple[dict[str, int], list[float], list[float]]:
        with self._lock:
            return dict(self.requests), list(self.latencies), list(self.ask_latencies)

    def reranker(self, name: str) -> Any:
        """One instance per name for the server's lifetime (building one may load a model)."""
        from retrievekit.retrieval.rerank import get_reranker

        with self._reranker_lock:
            reranker = self._rerankers.get(name)
            if reranker is None:
                reranker = self._rerankers[name] = get_reranker(name)
        return reranker

    def metadata_fields(self, col: AnyCollection) -> list[str]:
        """Metadata field names, read again only after a commit."""
        generation = col.snapshot().generation
        cached = self._fields
        if cached is not None and cached[0] == generation:
            return cached[1]
        self._fields = (generation, metadata_fields(col))
        return self._fields[1]

    @contextmanager
    def writer(self) -> Iterator[tuple[AnyCollection, CollectionWriter | ShardedWriter]]:
        """The collection's writer (a ``CollectionWriter``, or a sharded collection's ``ShardedWriter``), under this
        server's write lock; commits when the block ends without error."""
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
