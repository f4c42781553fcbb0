"""Health, readiness, ``/api/info`` (what the collection and server offer) and ``/api/stats``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter

from retrievekit.serve.errors import responses
from retrievekit.serve.schemas import ErrorResponse, HealthResponse, InfoResponse, ReadyResponse, StatsResponse
from retrievekit.serve.state import ServerState
from retrievekit.service.images import HIDDEN_METADATA, has_image_index
from retrievekit.service.info import collection_info, collection_stats, compressors, offline_rerankers


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)], 3)


def health_router(state: ServerState) -> APIRouter:
    api = APIRouter(tags=["health"])

    @api.get("/health", response_model=HealthResponse)
    async def health() -> dict[str, Any]:  # async: answered by the event loop even when every worker is busy
        return {"status": "ok"}

    @api.get("/ready", response_model=ReadyResponse,
             responses={503: {"model": ErrorResponse, "description": "the collection cannot be opened"}})
    def ready() -> dict[str, Any]:
        return {"status": "ready", "documents": len(state.collection())}

    return api


def router(state: ServerState) -> APIRouter:
    api = APIRouter(tags=["collection"])

    @api.get("/api/info", response_model=InfoResponse, responses=responses())
    def info() -> dict[str, Any]:
        from retrievekit.rag.selection import available_selectors

        col = state.collection()
        found = collection_info(col)
        return {"collection": found.collection, "modes": found.modes, "rerankers": offline_rerankers(col),
                "metadata_fields": [f for f in state.metadata_fields(col) if f not in HIDDEN_METADATA],
                "image_search": has_image_index(col), "document_files": state.document_files,
                "ask": {"generator": state.generator.describe(), "defaults": state.asker().defaults(),
                        "compressors": compressors(col), "selectors": available_selectors()}}

    @api.get("/api/stats", response_model=StatsResponse, responses=responses())
    def stats() -> dict[str, Any]:
        documents, segments = collection_stats(state.collection())
        requests, latencies, ask_latencies = state.snapshot_stats()
        return {"documents": documents, "segments": segments, "requests": requests,
                "search_latency_ms": {f"p{q}": percentile(latencies, q) for q in (50, 95, 99)},
                "ask_latency_ms": {f"p{q}": percentile(ask_latencies, q) for q in (50, 95, 99)}}

    return api
