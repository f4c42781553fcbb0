"""Request and response models of the HTTP API: they validate input and make ``/openapi.json`` complete."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field

from retrievekit.rag.config import DEFAULT_RAG_CONFIG as RAG_DEFAULTS
from retrievekit.service.ask import MAX_QUESTION_CHARS
from retrievekit.service.search import DEFAULT_K, MAX_K, MAX_OFFSET, MAX_QUERY_CHARS
from retrievekit.service.types import MODES

SEARCH_MODES = MODES
Mode = Literal["bm25", "dense", "hybrid", "sparse"]  # what OpenAPI lists: the service's MODES
assert get_args(Mode) == MODES, "Mode must list retrievekit.service.MODES"


def _encodable(value: Any) -> Any:
    """Reject text JSON allows but UTF-8 cannot hold (unpaired surrogates such as "\\ud800"): it could be neither
    stored nor sent back."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text contains an unpaired UTF-16 surrogate, which is not valid Unicode") from None
    return value


Text = Annotated[str, AfterValidator(_encodable)]
JSONObject = Annotated[dict[str, Any], AfterValidator(_encodable)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str = Field(description="short snake_case error code, e.g. not_found, bad_filter, writer_busy")
    message: str = Field(description="what was wrong")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class SearchRequest(_Strict):
    query: Text = Field(min_length=1, max_length=MAX_QUERY_CHARS, validation_alias=AliasChoices("query", "q"),
                        description="the query text (`q` is accepted as an alias, as in GET /api/search)")
    k: int = Field(DEFAULT_K, ge=1, le=MAX_K, description="number of hits to return")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="hits to skip (pagination)")
    mode: Mode = Field("bm25", description="search mode; /api/info lists the modes this collection supports (an "
                       "unknown or unsupported one is answered 400 mode_unavailable)")
    filter: JSONObject | None = Field(None, description='metadata filter, e.g. {"year": {"gte": 2020}, "lang": "en"} '
                                      "(operators: eq, ne, in, nin, gt, gte, lt, lte, exists)")
    rerank: str | None = Field(None, max_length=256, description="a reranker listed by /api/info, e.g. maxsim")
    highlight: bool = Field(True, description="mark query terms in the snippet with <mark>")


class Hit(BaseModel):
    rank: int = Field(description="1-based rank, offset included")
    id: str
    score: float
    title: str
    snippet: str = Field(description="HTML: the text around the query terms, HTML-escaped, matches in <mark>")
    metadata: dict[str, Any] = Field(description="the document's metadata, less an image's inline thumbnail")
    thumbnail_url: str | None = Field(None, description="an image document's thumbnail (GET: image/jpeg); null "
                                      "for documents without one")


class SearchResponse(BaseModel):
    query: str
    mode: str
    k: int
    offset: int
    took_ms: float
    hits: list[Hit]


class DocumentIn(_Strict):
    id: Text = Field(min_length=1, max_length=1024, description="opaque document id; an existing id is replaced")
    title: Text = ""
    text: Text = ""
    metadata: JSONObject = Field(default_factory=dict, description="flat JSON values, used by filters")


class DocumentsIn(_Strict):
    documents: list[DocumentIn] = Field(min_length=1, max_length=10_000)


class DocumentPatch(_Strict):
    title: Text | None = None
    text: Text | None = None
    metadata: JSONObject | None = Field(None, description="replaces the whole metadata dict when given")


class PassageRef(BaseModel):
    id: str = Field(description="the passage id, DOC_ID#N (what search hits name)")
    start: int | None = Field(description="character offset of the passage in the document text")
    end: int | None


class DocumentOut(BaseModel):
    id: str
    title: str
    text: str
    metadata: dict[str, Any]
    passages: list[PassageRef] | None = Field(None, description="in a passage collection: the document's passages "
                                              "(read-only; the text is reassembled from them)")


class AddedResponse(BaseModel):
    added: int
    documents: int = Field(description="live documents in the collection after the commit")


class UpdatedResponse(BaseModel):
    updated: int


class DeletedResponse(BaseModel):
    deleted: int


class HealthResponse(BaseModel):
    status: str


class ReadyResponse(BaseModel):
    status: str
    documents: int


class AskInfo(BaseModel):
    generator: dict[str, Any] | None = Field(description="the generator's config once loaded, {spec, loaded: false} "
                                             "before a lazily loaded one is first used, null when the server has "
                                             "none (then /api/ask answers with the selected contexts only)")
    defaults: dict[str, Any] = Field(description="settings used when a request leaves them out")
    compressors: list[str] = Field(description="compress values usable on this collection (with :N or :ratio)")
    selectors: list[str] = Field(description="selector stage names (see the selector field of /api/ask)")


class InfoResponse(BaseModel):
    collection: dict[str, Any] = Field(description="Collection.info(): documents, segments, analyzer, indexes, ...")
    modes: list[str] = Field(description="search modes usable on this collection")
    rerankers: list[str] = Field(description="reranker names usable offline")
    metadata_fields: list[str] = Field(description="metadata field names seen in a sample of documents")
    image_search: bool = Field(False, description="the collection has an image-text (CLIP) index: POST "
                               "/api/search/image takes an image as the query, and hits carry thumbnail URLs")
    document_files: bool = Field(False, description="GET /api/documents/{id}/file serves the source files of "
                                 "documents (the server shares the indexed folders); a PDF page opens with #page=N")
    ask: AskInfo = Field(description="what /api/ask offers")


class Latency(BaseModel):
    p50: float | None
    p95: float | None
    p99: float | None


class StatsResponse(BaseModel):
    documents: int
    segments: int
    requests: dict[str, int] = Field(description="requests served since start, by endpoint")
    search_latency_ms: Latency
    ask_latency_ms: Latency


class EvalReport(BaseModel):
    """The latest evaluation report (report.json), as written by ``retrievekit eval --report``."""

    model_config = ConfigDict(extra="allow")
    plots: list[str] = Field(default_factory=list, description="plot names to fetch from /api/eval/plots/{name}")


class AskRequest(_Strict):
    """A question for ``/api/ask``. Fields left out (or null, except ``compress`` and ``filter``) take the server's
    defaults, listed by /api/info under ``ask.defaults``."""

    question: Text = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="the question")
    mode: Mode | None = Field(None, description="search mode (default: hybrid with a dense index, else bm25)")
    depth: int | None = Field(None, ge=1, le=100, validation_alias=AliasChoices("depth", "k"),
                              description=f"passages retrieved before selection (default {RAG_DEFAULTS.depth}); "
                              "'k' is accepted too")
    selector: str | None = Field(None, min_length=1, max_length=256,
                                 description="context selection spec: stages joined by '+', each top[:k], "
                                 "gap[:drop[:max_keep]][:ratio=r][:min=n][:max=n][:ref=n], mmr[:k[:lambda]] "
                                 f"(needs a dense index) or budget:tokens; default {RAG_DEFAULTS.selector}")
    compress: str | None = Field(None, max_length=64,
                                 description="sentence extraction: null (none), lexical[:N|:ratio] or, with a dense "
                                 "index, dense[:N|:ratio]")
    filter: JSONObject | None = Field(None, description="metadata filter, as for /api/search")
    drop_flagged: bool | None = Field(None, description="leave out passages flagged as prompt injection (default: "
                                      "keep them, flagged, passed to the generator as data)")
    max_tokens: int | None = Field(None, ge=1, le=1024, description="longest answer, in generator tokens "
                                   f"(default {RAG_DEFAULTS.max_tokens})")


class AskLocation(BaseModel):
    path: str = Field(description="the file, relative to the indexed repository's or folder's root")
    start_line: int | None = Field(description="first line (1-based); null for a paged document")
    end_line: int | None = Field(description="last line (inclusive); null for a paged document")
    line_spans: list[list[int]] | None = Field(description="after compression: [first, last] lines of each kept "
                                               "piece")
    page: int | None = Field(None, description="first page (1-based) of a PDF or slide of a PPTX; null for lines")
    page_end: int | None = Field(None, description="last page")
    ref: str = Field(description="path:start_line-end_line, or 'path p. N' ('pp. N-M') for pages")


class AskCitation(BaseModel):
    number: int = Field(description="the [n] marker in the answer: context number n")
    passage_id: str
    doc_id: str
    start: int = Field(description="character offset of the cited passage in its document's text")
    end: int
    spans: list[list[int]] | None = Field(description="document offsets of the sentences kept by compression")
    location: AskLocation | None = Field(None, description="the cited lines of a source file, for documents with "
                                         "path/start_line/end_line metadata (code collections), or its pages (PDF, "
                                         "PPTX files); null otherwise")


class AskContext(BaseModel):
    number: int = Field(description="1-based; what [n] in the answer refers to")
    id: str = Field(description="passage id (document id, or ID#i in a passage collection)")
    doc_id: str
    title: str
    text: str = Field(description="plain text (not HTML): what the generator saw")
    score: float
    start: int = Field(description="character offset of the passage in its document's text")
    end: int
    spans: list[list[int]] | None = Field(description="document offsets of the sentences kept by compression")
    flags: list[str] = Field(description="safety warnings, e.g. injection:ignore_previous")
    location: AskLocation | None = Field(None, description="the passage's lines of a source file (code "
                                         "collections) or its pages (PDF, PPTX files); null otherwise")


class AskResponse(BaseModel):
    question: str
    answer: str = Field(description="plain text from the generator (empty without one); cites contexts as [n]")
    unknown: bool = Field(description="the answer says the sources do not contain it (or there were no contexts)")
    citations: list[AskCitation]
    contexts: list[AskContext]
    context_tokens: int = Field(description="approximate tokens of context given to the generator")
    retrieval_cached: bool = Field(description="the passages came from the retrieval cache")
    citations_attributed: bool = Field(False, description="citation markers were added after generation by word "
                                       "overlap with the sources (small base models rarely write them)")
    unsupported_answer: str | None = Field(None, description="a generated answer withheld because it cited no "
                                           "source (the answer is then \"I don't know\")")
    queries: list[str] = Field(description="what was searched")
    timings: dict[str, float] = Field(description="seconds per stage (retrieve, select, generate)")
    took_ms: float
    generator: dict[str, Any] | None = Field(description="the generator's config, null without one")
