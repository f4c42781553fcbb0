"""Questions answered from a collection (RAG): requests whose left-out settings come from ``RAGConfig`` (and a
server's own defaults), checked before any work, answered by the collection's cached pipeline
(``Collection.rag``), so repeated questions reuse the retrieval cache the same way from HTTP, MCP, CLI or Python.

    asker = Asker()                                   # RAGConfig defaults
    response = asker.ask(col, AskRequest("who wrote it?", selector="top:3"), generator="local")
    response.to_json()
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retrievekit.rag.config import DEFAULT_RAG_CONFIG, RAGConfig
from retrievekit.service.types import UNSET, ServiceError, Unset, check_filter, check_mode, check_text, finite

if TYPE_CHECKING:
    from retrievekit.rag.generators.base import Generator
    from retrievekit.rag.pipeline import RAG, Answer
    from retrievekit.service.collections import AnyCollection

__all__ = ["MAX_QUESTION_CHARS", "REQUEST_SETTINGS", "AskRequest", "AskResponse", "Asker", "check_compress",
           "check_selector"]

MAX_QUESTION_CHARS = 2048
# The RAGConfig settings a request may set (and /api/info lists as defaults), in that order.
REQUEST_SETTINGS = ("depth", "selector", "compress", "drop_flagged", "max_tokens")


@dataclass
class AskRequest:
    """A question. Settings left None take the asker's defaults (``RAGConfig``, then a server's options);
    ``compress`` and ``filter`` are left out with UNSET, since None means "none" for them. ``allow``: document ids
    or a metadata mapping the answer may use; ``expand``: "multi-query[:N]" or "hyde"."""

    question: str
    mode: str | None = None
    depth: int | None = None
    selector: str | None = None
    compress: str | Unset | None = UNSET
    filter: dict[str, Any] | Unset | None = UNSET
    drop_flagged: bool | None = None
    max_tokens: int | None = None
    expand: str | None = None
    allow: Any = None


def _no_embed(texts: Any) -> Any:
    raise RuntimeError("only used to check selector specs; never called")


def check_selector(spec: str, dense: bool, name: str = "selector") -> str:
    """A selection spec (the grammar of ``retrievekit.rag.selection``), checked without embedding anything."""
    from retrievekit.rag.selection import SelectionError, get_selector

    if not isinstance(spec, str):
        return spec  # a Selector object given in code
    try:
        get_selector(spec, embed=_no_embed)  # building a selector checks the grammar and embeds nothing
    except SelectionError as exc:
        raise ServiceError("bad_selector", str(exc), param=name) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise ServiceError("bad_selector", f"invalid selector {spec!r}: {exc}", param=name) from None
    if not dense and any(part.split(":")[0].strip().lower() == "mmr" for part in spec.split("+")):
        raise ServiceError("bad_selector", "the 'mmr' selector compares passage embeddings, which needs a dense "
                           "index; this collection has none (use top, gap or budget)", param=name)
    return spec


def check_compress(spec: Any, dense: bool, name: str = "compress") -> Any:
    """None, or a compress spec ``lexical[:N|:ratio]`` / ``dense[:N|:ratio]`` (dense needs a dense index)."""
    from retrievekit.rag.pipeline import RAGError, parse_compress

    if spec is None or not isinstance(spec, str):
        return spec  # None, or a SentenceCompressor given in code
    try:
        kind, _ = parse_compress(spec)
    except RAGError as exc:
        raise ServiceError("bad_compress", str(exc), param=name) from None
    if kind == "dense" and not dense:
        raise ServiceError("bad_compress", "compress 'dense' needs a dense index, which this collection does not "
                           "have (use 'lexical')", param=name)
    return spec


@dataclass
class AskResponse:
    answer: Answer
    took_ms: float
    generator: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        out = self.answer.to_json()
        for context in out["contexts"]:
            context["score"] = finite(float(context["score"]))
        out["took_ms"] = round(self.took_ms, 3)
        out["generator"] = self.generator
        return out


class Asker:
    """Answers AskRequests. ``config``: the defaults (``RAGConfig``); ``options``: further ``RAG`` settings that
    apply to every request (a server's allow-list, template, cache, ...), which also override ``config``'s
    defaults for the request settings of the same name."""

    def __init__(self, config: RAGConfig | None = None, options: Mapping[str, Any] | None = None) -> None:
        self.config = config or DEFAULT_RAG_CONFIG
        self.options = dict(options or {})

    def defaults(self) -> dict[str, Any]:
        """The request settings' defaults as JSON (objects given as options are named by repr)."""
        out: dict[str, Any] = {key: getattr(self.config, key) for key in REQUEST_SETTINGS}
        for key in (*REQUEST_SETTINGS, "mode"):
            if key in self.options:
                value = self.options[key]
                out[key] = value if value is None or isinstance(value, str | int | float | bool) else repr(value)
        return out

    def rag_options(self, col: AnyCollection, request: AskRequest) -> dict[str, Any]:
        """The ``Collection.rag`` settings of a request, checked before any work (ServiceError naming the
        parameter)."""
        check_text(request.question, "question", max_chars=MAX_QUESTION_CHARS)
        dense = "default" in (col.config.get("dense") or {})
        options: dict[str, Any] = {**{k: v for k, v in self.config.to_json().items() if v is not None},
                                   **self.options}
        given: dict[str, Any] = {"mode": request.mode, "depth": request.depth, "selector": request.selector,
                                 "drop_flagged": request.drop_flagged, "max_tokens": request.max_tokens,
                                 "expand": request.expand, "allow": request.allow}
        options.update({k: v for k, v in given.items() if v is not None})
        if request.compress is not UNSET:
            options["compress"] = request.compress
        if request.filter is not UNSET:
            options["filter"] = request.filter
        # The mode is resolved here, so a cached pipeline follows an index added later.
        options["mode"] = check_mode(col, options.get("mode"))
        if isinstance(options["depth"], bool) or not isinstance(options["depth"], int) or options["depth"] < 1:
            raise ServiceError("bad_request", f"depth must be a positive integer, got {options['depth']!r}",
                               param="depth")
        check_selector(options["selector"], dense)
        check_compress(options.get("compress"), dense)
        if "filter" in options:
            options["filter"] = check_filter(options["filter"], col=col)
        return options

    def pipeline(self, col: AnyCollection, request: AskRequest, generator: str | Generator | None = None) -> RAG:
        """The collection's cached pipeline for this request's settings."""
        return col.rag(generator=generator, **self.rag_options(col, request))

    def ask(self, col: AnyCollection, request: AskRequest, *,
            generator: str | Generator | Callable[[], Generator | None] | None = None,
            gate: Callable[[], AbstractContextManager[Any]] | None = None) -> AskResponse:
        """Answer ``request``. ``generator``: a spec, a Generator, None (contexts only) or a function returning one,
        called once the request's settings are checked (so a bad request never loads a model); ``gate``: entered
        around a generation (e.g. to bound concurrent ones)."""
        from retrievekit.rag.compression import CompressionError
        from retrievekit.rag.generators.base import GenerationError, Generator
        from retrievekit.rag.selection import SelectionError

        started = time.perf_counter()
        options = self.rag_options(col, request)
        try:
            if callable(generator) and not isinstance(generator, Generator):
                generator = generator()
            pipeline = col.rag(generator=generator, **options)
            with gate() if gate is not None and pipeline.generator is not None else contextlib.nullcontext():
                answer = pipeline.ask(request.question)
        except GenerationError as exc:
            raise ServiceError("generator_unavailable", str(exc)) from exc
        except SelectionError as exc:
            raise ServiceError("bad_selector", str(exc), param="selector") from None
        except CompressionError as exc:
            raise ServiceError("bad_compress", str(exc), param="compress") from None
        took = (time.perf_counter() - started) * 1000
        described = pipeline.generator.config() if pipeline.generator is not None else None
        return AskResponse(answer, took, described)
