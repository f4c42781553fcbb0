"""``/api/ask``: questions answered from the collection with citations, by the collection's cached pipeline."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

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
                                              "available, the generator cannot be loaded or reached "
                                              "(generator_unavailable) or is busy (generator_busy)"}})
    async def ask(req: AskRequest) -> dict[str, Any]:
        """Answer a question from the collection with numbered citations: retrieve, select (and compress) contexts,
        generate. Without a generator the answer is empty and the selected contexts are the result. When every
        generation slot is taken and too many questions wait, the answer is 503 generator_busy with Retry-After."""
        # An async route: the question waits for a generation slot in the event loop, holding no worker thread,
        # so searches and health checks never queue behind slow generations. The work itself runs in threads.
        request, asker = to_service(req), state.asker()
        col = await run_in_threadpool(state.collection)
        await run_in_threadpool(asker.rag_options, col, request)  # a bad request is answered without waiting
        if state.generator.spec is None:
            response = await run_in_threadpool(asker.ask, col, request)
        else:
            async with state.generator.slot():
                response = await run_in_threadpool(asker.ask, col, request, generator=state.generator.get)
        state.record_latency(response.took_ms, ask=True)
        return response.to_json()

    return api
