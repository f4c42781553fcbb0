"""A minimal OpenAI-compatible HTTP app around any ``Generator``.

``create_openai_app(LocalGenerator())`` serves the local model to anything that speaks the OpenAI wire format
(including ``OpenAICompatibleGenerator``): ``POST /v1/chat/completions``, ``POST /v1/completions`` (both with
``"stream": true`` as server-sent events) and ``GET /v1/models``. Only the standard fields are read: model,
messages or prompt, max_tokens (or max_completion_tokens), temperature, stop, stream, n (must be 1). Errors use
OpenAI's ``{"error": {"message", "type", "code"}}`` shape. Generation runs in the worker thread pool, so the event
loop stays free; ``finish_reason`` is always "stop" because generators return text only.

Run it with, for example, ``uvicorn.run(create_openai_app(LocalGenerator()), host="127.0.0.1", port=8001)``.
"""

# No "from __future__ import annotations": FastAPI resolves the endpoint annotations (Request) at run time, and
# they are local to create_openai_app.

import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from retrievekit.core.errors import require
from retrievekit.rag.generators.base import (
    Generator,
    GeneratorSpecError,
    check_generation_args,
    check_messages,
    normalize_stop,
)

logger = logging.getLogger(__name__)

_TOKEN = re.compile(r"\w+|[^\w\s]")


def _count(text: str) -> int:
    # Usage numbers are approximate: the generator does not report its tokenizer's counts.
    return len(_TOKEN.findall(text))


def _error(status: int, message: str, kind: str, code: str | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status_code=status)


def create_openai_app(generator: Generator, *, model_name: str | None = None, api_key: str | None = None,
                      max_tokens_limit: int = 4096) -> Any:
    """A FastAPI app serving ``generator``. ``api_key``: when set, requests must send ``Authorization: Bearer
    <api_key>``. ``max_tokens_limit`` caps what one request may ask for."""
    require("fastapi", "serve")
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.concurrency import run_in_threadpool

    name = model_name or generator.model or generator.backend or "retrievekit"
    app = FastAPI(title="retrievekit OpenAI-compatible generator", version="1")

    def authorized(request: Request) -> bool:
        if not api_key:
            return True
        sent = request.headers.get("authorization", "")
        return hmac.compare_digest(sent.encode(), f"Bearer {api_key}".encode())

    async def parse(request: Request, chat: bool) -> tuple[dict[str, Any], Any]:
        """The validated generation arguments and the prompt, or raises GeneratorSpecError."""
        try:
            body = await request.json()
        except ValueError as exc:
            raise GeneratorSpecError("the request body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise GeneratorSpecError("the request body must be a JSON object")
        if body.get("n", 1) != 1:
            raise GeneratorSpecError("only n=1 is supported")
        if chat:
            prompt: Any = check_messages(body.get("messages") or [])
        else:
            prompt = body.get("prompt")
            if isinstance(prompt, list) and len(prompt) == 1:
                prompt = prompt[0]
            if not isinstance(prompt, str):
                raise GeneratorSpecError("prompt must be a string (or a list of one string)")
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            max_tokens = body.get("max_completion_tokens")
        max_tokens = 256 if max_tokens is None else max_tokens
        temperature = body.get("temperature")
        temperature = 1.0 if temperature is None else temperature  # OpenAI's default
        check_generation_args(max_tokens, temperature)
        if max_tokens > max_tokens_limit:
            raise GeneratorSpecError(f"max_tokens must be at most {max_tokens_limit}, got {max_tokens}")
        args = {"max_tokens": max_tokens, "temperature": float(temperature), "stop": normalize_stop(body.get("stop"))}
        return {"args": args, "stream": bool(body.get("stream", False))}, prompt

    def envelope(kind: str, rid: str, created: int, choice: dict[str, Any]) -> dict[str, Any]:
        return {"id": rid, "object": kind, "created": created, "model": name, "choices": [choice]}

    async def handle(request: Request, chat: bool) -> Any:
        if not authorized(request):
            return _error(401, "invalid or missing API key (send 'Authorization: Bearer <key>')",
                          "invalid_request_error", "invalid_api_key")
        try:
            options, prompt = await parse(request, chat)
        except GeneratorSpecError as exc:
            return _error(400, str(exc), "invalid_request_error")
        args = options["args"]
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if options["stream"]:
            return StreamingResponse(sse(prompt, args, rid, created, chat), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        try:
            text = await run_in_threadpool(generator.generate, prompt, **args)
        except GeneratorSpecError as exc:
            return _error(400, str(exc), "invalid_request_error")
        except Exception as exc:  # any backend failure becomes an OpenAI-shaped 500
            logger.exception("generation failed")
            return _error(500, f"generation failed: {exc}", "server_error")
        prompt_text = prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
        usage = {"prompt_tokens": _count(prompt_text), "completion_tokens": _count(text)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            body = envelope("chat.completion", rid, created, choice)
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
            body = envelope("text_completion", rid, created, choice)
        return JSONResponse({**body, "usage": usage})

    def sse(prompt: Any, args: dict[str, Any], rid: str, created: int, chat: bool) -> Iterator[str]:
        kind = "chat.completion.chunk" if chat else "text_completion"

        def event(piece: str | None, finish: str | None = None, role: bool = False) -> str:
            if chat:
                delta: dict[str, Any] = {"role": "assistant"} if role else {}
                if piece is not None:
                    delta["content"] = piece
                choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": piece or "", "logprobs": None, "finish_reason": finish}
            return f"data: {json.dumps(envelope(kind, rid, created, choice))}\n\n"

        if chat:
            yield event(None, role=True)
        try:
            for piece in generator.stream(prompt, **args):
                yield event(piece)
        except Exception as exc:  # headers are sent: report in-band, as OpenAI does
            logger.exception("generation failed while streaming")
            yield f"data: {json.dumps({'error': {'message': f'generation failed: {exc}', 'type': 'server_error'}})}\n\n"
            return
        yield event(None, finish="stop")
        yield "data: [DONE]\n\n"

    @app.get("/v1/models")
    def models() -> Any:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "retrievekit"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        return await handle(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await handle(request, chat=False)

    return app
