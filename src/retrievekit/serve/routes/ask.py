"""``/api/ask``: questions answered from the collection with citations, by the collection's cached pipeline."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from retrievekit.serve.errors import responses
from retrievekit.serve.schemas import AskRequest, AskResponse, ErrorResponse
from retrievekit.serve.state import ServerState
from retrievekit.service import ask as service
from retrievekit.service.types import UNSET


def to_service(req: AskRequest) -> service.AskRequest:
    """The service request of a request body (fields left out of the body keep the defaults)."""
    given = req.model_fields_set
    return service.AskRequest(req.question, mode=req.mode, depth=req.depth, selector=req.selector,
                              compress=req.compress if "compress" in given else UNSET,
                              filter=req.filter if "filter" in given else UNSET,
                              drop_flagged=req.drop_flagged, max_tokens=req.max_tokens)


def router(state: ServerState) -> APIRouter:
    api = APIRouter(tags=["ask"])

    @api.post("/api/ask", response_model=AskResponse,
              responses={**responses(), 503: {"model": ErrorResponse, "description": "the collection is not "
                                              "available, or the generator cannot be loaded or reached "
                                              "(generator_unavailable)"}})
    def ask(req: AskRequest) -> dict[str, Any]:
        """Answer a question from the collection with numbered citations: retrieve, select (and compress) contexts,
        generate. Without a generator the answer is empty and the selected contexts are the result."""
        col = state.collection()
        response = state.asker().ask(col, to_service(req), generator=state.generator.get, gate=state.generator.gate)
        state.record_latency(response.took_ms, ask=True)
        return response.to_json()

    return api
