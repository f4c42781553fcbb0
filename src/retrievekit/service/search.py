"""Search requests and responses: defaults, validation, mode checks and hit formatting, for the HTTP API, the MCP
server and the ``search`` command.

    response = search(col, SearchRequest("what is bm25", k=5))
    response.to_json()                       # {"query", "mode", "k", "offset", "took_ms", "hits": [...]}
    response.to_json(PLAIN_HITS)             # plain-text snippets (MCP)
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from retrievekit.analysis.highlight import MAX_SCAN_CHARS, snippet
from retrievekit.core.document import Document
from retrievekit.service.types import check_filter, check_int, check_mode, check_text, finite

if TYPE_CHECKING:
    from retrievekit.analysis import Analyzer
    from retrievekit.service.collections import AnyCollection

__all__ = ["DEFAULT_K", "HTML_HITS", "MAX_K", "MAX_OFFSET", "MAX_QUERY_CHARS", "PLAIN_HITS", "Hit", "HitFormat",
           "SearchRequest", "SearchResponse", "html_snippet", "search", "search_batch"]

MAX_QUERY_CHARS = 4096
DEFAULT_K = 10
MAX_K = 1000
MAX_OFFSET = 10_000
SNIPPET_WIDTH = 240  # characters of an HTML snippet
RERANK_DEPTH = 100  # candidates reranked unless a request says otherwise (at least offset + k)
# Private-use characters stand in for <mark> while the snippet is HTML-escaped; they are removed from the text first.
_OPEN, _CLOSE = "\ue000", "\ue001"


@dataclass
class SearchRequest:
    """One query. ``mode`` None: the collection's default mode. ``filter``: metadata filter (field -> condition).
    ``rerank``: a reranker or its name, applied to the first ``rerank_depth`` hits (default: max(100, offset + k)).
    ``highlight``: mark query terms in snippets. ``options``: further ``Collection.search`` settings (scorer,
    rm3, fusion, k1, b, ...). ``max_k``: the largest ``k`` this caller accepts; ``max_query_chars``: the longest query
    (the command line takes pasted code snippets longer than the HTTP default)."""

    query: str
    k: int = DEFAULT_K
    offset: int = 0
    mode: str | None = None
    filter: dict[str, Any] | None = None
    rerank: Any = None
    rerank_depth: int | None = None
    highlight: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    max_k: int = MAX_K
    max_query_chars: int = MAX_QUERY_CHARS

    def validated(self, col: AnyCollection) -> SearchRequest:
        """This request with its mode resolved, or ServiceError naming the parameter at fault."""
        check_text(self.query, "query", max_chars=self.max_query_chars, blank=True)
        check_int(self.k, "k", 1, self.max_k)
        check_int(self.offset, "offset", 0, MAX_OFFSET)
        if self.rerank_depth is not None:
            check_int(self.rerank_depth, "rerank_depth", 1, MAX_OFFSET + MAX_K)
        mode = check_mode(col, self.mode)
        return replace(self, mode=mode, filter=check_filter(self.filter, col=col))


@dataclass(frozen=True)
class HitFormat:
    """How hits are written out: ``markup`` "html" (escaped, matches in <mark>: the HTTP API and web UI) or
    "plain" (no marks: MCP); ``width``: snippet characters; ``score_digits``: round scores (None: as they are)."""

    markup: str = "html"
    width: int = SNIPPET_WIDTH
    score_digits: int | None = None


HTML_HITS = HitFormat()
PLAIN_HITS = HitFormat("plain", 300, 6)


def html_snippet(text: str, query: str, analyzer: Analyzer, *, highlight: bool = True,
                 width: int = HTML_HITS.width) -> str:
    """The best window of ``text`` for ``query`` as HTML: escaped, with query terms in ``<mark>`` when asked."""
    head = text[:MAX_SCAN_CHARS]  # all a snippet reads: cleaning a 200 MB text would cost more than the snippet
    clean = head.replace(_OPEN, "").replace(_CLOSE, "")
    raw = snippet(clean, query if highlight else "", analyzer, width=width, style=(_OPEN, _CLOSE),
                  truncated=len(text) > len(head))
    return html.escape(raw, quote=True).replace(_OPEN, "<mark>").replace(_CLOSE, "</mark>")


@dataclass
class Hit:
    """A ranked document: ``rank`` is 1-based, offset included."""

    rank: int
    document: Document
    score: float

    @property
    def id(self) -> str:
        return self.document.id

    def to_json(self, query: str, analyzer: Analyzer, fmt: HitFormat = HTML_HITS, *,
                highlight: bool = True) -> dict[str, Any]:
        doc = self.document
        score = finite(float(self.score))
        if fmt.score_digits is not None:
            score = round(score, fmt.score_digits)
        if fmt.markup == "html":
            text = html_snippet(doc.text or doc.title, query, analyzer, highlight=highlight, width=fmt.width)
        else:
            text = snippet(doc.text or doc.title, query, analyzer, width=fmt.width, style=("", ""))
        return {"rank": self.rank, "id": doc.id, "score": score, "title": doc.title, "snippet": text,
                "metadata": doc.metadata}


@dataclass
class SearchResponse:
    request: SearchRequest
    hits: list[Hit]
    took_ms: float
    analyzer: Analyzer = field(repr=False)

    @property
    def mode(self) -> str:
        return str(self.request.mode)

    def to_json(self, fmt: HitFormat = HTML_HITS) -> dict[str, Any]:
        req = self.request
        return {"query": req.query, "mode": self.mode, "k": req.k, "offset": req.offset,
                "took_ms": round(self.took_ms, 3),
                "hits": [h.to_json(req.query, self.analyzer, fmt, highlight=req.highlight) for h in self.hits]}


def search(col: AnyCollection, request: SearchRequest) -> SearchResponse:
    """Run one validated search request."""
    return search_batch(col, [request.query], request)[0]


def search_batch(col: AnyCollection, queries: Sequence[str], request: SearchRequest) -> list[SearchResponse]:
    """The settings of ``request`` for each of ``queries``, searched as one batch (one response per query)."""
    started = time.perf_counter()
    checked = [replace(request, query=q).validated(col) for q in queries]
    if not checked:
        return []
    req = checked[0]
    wanted = req.offset + req.k
    options = dict(req.options)
    if req.rerank is not None:
        depth = req.rerank_depth if req.rerank_depth is not None else max(RERANK_DEPTH, wanted)
        options.update(rerank=req.rerank, depth=depth)
    results = col.search([r.query for r in checked], wanted, mode=str(req.mode), filter=req.filter, **options)
    hits = [[Hit(req.offset + n, doc, score)
             for n, (doc, score) in enumerate(col.hit_documents(results, i, start=req.offset), start=1)]
            for i in range(len(checked))]
    took = (time.perf_counter() - started) * 1000
    return [SearchResponse(r, h, took, col.analyzer) for r, h in zip(checked, hits)]
