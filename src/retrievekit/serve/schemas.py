"""Request and response models of the HTTP API: they validate input and make ``/openapi.json`` complete."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

SEARCH_MODES = ("bm25", "dense", "hybrid", "sparse")
Mode = Literal["bm25", "dense", "hybrid", "sparse"]


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
    query: Text = Field(min_length=1, max_length=4096, description="the query text")
    k: int = Field(10, ge=1, le=1000, description="number of hits to return")
    offset: int = Field(0, ge=0, le=10_000, description="hits to skip (pagination)")
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
    metadata: dict[str, Any]


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


class DocumentOut(BaseModel):
    id: str
    title: str
    text: str
    metadata: dict[str, Any]


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


class InfoResponse(BaseModel):
    collection: dict[str, Any] = Field(description="Collection.info(): documents, segments, analyzer, indexes, ...")
    modes: list[str] = Field(description="search modes usable on this collection")
    rerankers: list[str] = Field(description="reranker names usable offline")
    metadata_fields: list[str] = Field(description="metadata field names seen in a sample of documents")


class Latency(BaseModel):
    p50: float | None
    p95: float | None
    p99: float | None


class StatsResponse(BaseModel):
    documents: int
    segments: int
    requests: dict[str, int] = Field(description="requests served since start, by endpoint")
    search_latency_ms: Latency


class EvalReport(BaseModel):
    """The latest evaluation report (report.json), as written by ``retrievekit eval --report``."""

    model_config = ConfigDict(extra="allow")
    plots: list[str] = Field(default_factory=list, description="plot names to fetch from /api/eval/plots/{name}")
