"""``/api/search`` (POST with a JSON body, GET with query parameters)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query

from retrievekit.serve.errors import ApiError, responses
from retrievekit.serve.routes.images import public_hits
from retrievekit.serve.schemas import Mode, SearchRequest, SearchResponse
from retrievekit.serve.state import ServerState
from retrievekit.service.info import offline_rerankers
from retrievekit.service.search import DEFAULT_K, HTML_HITS, MAX_K, MAX_OFFSET, MAX_QUERY_CHARS, search
from retrievekit.service.search import SearchRequest as Search
from retrievekit.service.types import names


def router(state: ServerState) -> APIRouter:
    api = APIRouter(tags=["search"])

    def run_search(req: SearchRequest) -> dict[str, Any]:
        col = state.collection()
        request = Search(req.query, k=req.k, offset=req.offset, mode=req.mode, filter=req.filter,
                                        highlight=req.highlight).validated(col)  # mode and filter errors first
        if req.rerank is not None:
            offered = offline_rerankers(col)
            if req.rerank not in offered:
                raise ApiError(400, "rerank_unavailable", f"unknown or unavailable reranker {req.rerank!r}; this "
                               f"server offers: {names(offered)}")
            request.rerank = state.reranker(req.rerank)
        response = search(col, request)
        state.record_latency(response.took_ms)
        return public_hits(response.to_json(HTML_HITS))

    @api.post("/api/search", response_model=SearchResponse, responses=responses())
    def search_post(req: SearchRequest) -> dict[str, Any]:
        """Rank documents for a query; ``offset`` + ``k`` page through the ranking."""
        return run_search(req)

    @api.get("/api/search", response_model=SearchResponse, responses=responses())
    def search_get(
        query: str | None = Query(None, min_length=1, max_length=MAX_QUERY_CHARS,
                                  description="the query text (required: as `query` or its alias `q`)"),
        q: str | None = Query(None, min_length=1, max_length=MAX_QUERY_CHARS,
                              description="alias of `query` (the name the web UI's URLs use)"),
        k: int = Query(DEFAULT_K, ge=1, le=MAX_K),
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
        mode: Mode = Query("bm25", description="search mode (see /api/info)"),
        filter: str | None = Query(None, max_length=65_536, description="metadata filter as JSON"),
        rerank: str | None = Query(None, max_length=256),
        highlight: bool = Query(True),
    ) -> dict[str, Any]:
        """The same search for simple clients: ``/api/search?query=...&k=10`` (``q=`` works too)."""
        if query is not None and q is not None and query != q:
            raise ApiError(400, "bad_request", "query and its alias q were both given, with different values; "
                           "pass one of them")
        text = query if query is not None else q
        if text is None:
            raise ApiError(422, "validation_error", "query: Field required (pass ?query=TEXT, or its alias ?q=TEXT)")
        parsed = None
        if filter:
            try:
                parsed = json.loads(filter)
            except (ValueError, RecursionError) as exc:
                raise ApiError(400, "bad_filter", f"filter is not valid JSON: {exc}") from None
            if not isinstance(parsed, dict):
                raise ApiError(400, "bad_filter", "filter must be a JSON object of field -> condition")
        try:
            req = SearchRequest(query=text, k=k, offset=offset, mode=mode, filter=parsed, rerank=rerank,
                                highlight=highlight)
        except ValueError as exc:
            raise ApiError(400, "bad_filter", f"invalid filter: {exc}") from None
        return run_search(req)

    return api
