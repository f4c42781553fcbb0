"""A client for OpenAI-compatible text generation endpoints (vLLM, llama.cpp server, Ollama, hosted APIs).

Only the standard request fields are sent (model, messages or prompt, max_tokens, temperature, stop, stream), so
any server that follows the OpenAI wire format works. ``base_url`` is the API root: ``http://host:8000/v1`` and
``http://host:8000`` both work (``/v1`` is added when the URL does not end in a version segment). Streaming reads
server-sent events (``data: {...}`` lines ending with ``data: [DONE]``). Rate limits (429), server errors (5xx),
dropped connections and timeouts are retried with exponential backoff, honouring ``Retry-After``; a stream is
only retried before its first piece was delivered.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

from retrievekit.core.errors import require
from retrievekit.rag.generators.base import (
    GenerationError,
    Generator,
    GeneratorSpecError,
    PromptInput,
    StopBuffer,
    check_generation_args,
    check_messages,
    cut_at_stop,
    env_default,
    messages_to_text,
    normalize_stop,
)

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
APIS = ("chat", "completions")
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0


def endpoint_url(base_url: str, api: str) -> str:
    """The full URL of the chat or completions endpoint under ``base_url``."""
    base = base_url.rstrip("/")
    if not re.search(r"/v\d+$", base):
        base += "/v1"
    return f"{base}/{'chat/completions' if api == 'chat' else 'completions'}"


class OpenAICompatibleGenerator(Generator):
    """Text generation over HTTP through an OpenAI-compatible ``/v1/chat/completions`` or ``/v1/completions``.

    ``api="chat"`` sends chat messages (a plain prompt becomes one user message); ``api="completions"`` sends a
    plain prompt (chat messages are flattened to text). ``timeout`` is in seconds per request; ``max_retries``
    counts retries after the first attempt. ``extra_body`` adds non-standard fields for servers that want them.
    """

    backend = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        api: str = "chat",
        timeout: float = 120.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        headers: dict[str, str] | None = None,
        extra_body: dict[str, Any] | None = None,
        prompt_style: str | None = None,
    ) -> None:
        httpx = require("httpx", "rag")
        if not model:
            raise GeneratorSpecError("OpenAICompatibleGenerator needs a model name")
        if api not in APIS:
            raise GeneratorSpecError(f"api must be one of {', '.join(APIS)}, got {api!r}")
        if max_retries < 0 or timeout <= 0 or backoff < 0:
            raise GeneratorSpecError("timeout must be > 0, max_retries and backoff >= 0")
        self.model = model
        self.api = api
        self.base_url = env_default(base_url, "OPENAI_BASE_URL") or DEFAULT_BASE_URL
        if not re.match(r"^https?://", self.base_url):
            raise GeneratorSpecError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        self.url = endpoint_url(self.base_url, api)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.extra_body = dict(extra_body or {})
        # A completions endpoint serves whatever text it is given, so completion-style prompts suit it.
        self.prompt_style = prompt_style or ("chat" if api == "chat" else "completion")
        key = env_default(api_key, "OPENAI_API_KEY")
        request_headers = {"Accept": "application/json", **(headers or {})}
        if key:
            request_headers["Authorization"] = f"Bearer {key}"
        self._httpx = httpx
        self._client = httpx.Client(timeout=httpx.Timeout(self.timeout), headers=request_headers)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "base_url": self.base_url, "api": self.api}

    def close(self) -> None:
        self._client.close()

    # -- requests ----------------------------------------------------------------------------------------------
    def _payload(self, prompt: PromptInput, max_tokens: int, temperature: float, stop: list[str],
                 stream: bool) -> dict[str, Any]:
        check_generation_args(max_tokens, temperature)
        checked = check_messages(prompt)
        body: dict[str, Any] = {**self.extra_body, "model": self.model, "max_tokens": max_tokens,
                                "temperature": float(temperature), "stream": stream}
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": checked}] if isinstance(checked, str) else checked
        else:
            body["prompt"] = checked if isinstance(checked, str) else messages_to_text(checked)
        if stop:
            body["stop"] = stop
        return body

    def _delay(self, attempt: int, response: Any = None) -> float:
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after:
            try:
                return min(max(float(retry_after), 0.0), MAX_BACKOFF_S)
            except ValueError:
                pass  # an HTTP date: fall back to our own schedule
        return min(self.backoff * (2 ** attempt) * (1 + 0.25 * random.random()), MAX_BACKOFF_S)

    def _error(self, response: Any) -> GenerationError:
        try:
            body = response.read().decode("utf-8", "replace")
        except Exception:  # the body is only a hint; the status is the message
            body = ""
        detail = body
        try:
            parsed = json.loads(body)
            err = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
            detail = err.get("message", body) if isinstance(err, dict) else str(err)
        except ValueError:
            pass
        detail = " ".join(str(detail).split())[:300]
        hint = ""
        if response.status_code in (401, 403):
            hint = " (check api_key or $OPENAI_API_KEY)"
        elif response.status_code == 404:
            hint = f" (check base_url {self.base_url!r} and model {self.model!r})"
        return GenerationError(f"{self.url} answered HTTP {response.status_code}{hint}"
                               + (f": {detail}" if detail else ""))

    def _send(self, body: dict[str, Any]) -> Any:
        """An open streaming response with a 2xx status, after retries; the caller closes it."""
        httpx = self._httpx
        attempt = 0
        while True:
            response = None
            try:
                request = self._client.build_request("POST", self.url, json=body)
                response = self._client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                failure: GenerationError = GenerationError(
                    f"{self.url} timed out after {self.timeout:g}s ({type(exc).__name__})")
            except httpx.TransportError as exc:
                failure = GenerationError(f"cannot reach {self.url}: {type(exc).__name__}: {exc}")
            else:
                if response.status_code < 300:
                    return response
                failure = self._error(response)
                response.close()
                if response.status_code not in RETRY_STATUSES:
                    raise failure
            if attempt >= self.max_retries:
                if self.max_retries:
                    failure = GenerationError(f"{failure} (gave up after {attempt + 1} attempts)")
                raise failure
            delay = self._delay(attempt, response)
            logger.warning("%s; retrying in %.2fs (attempt %d of %d)", failure, delay, attempt + 2,
                           self.max_retries + 1)
            time.sleep(delay)
            attempt += 1

    def _read_json(self, response: Any) -> Any:
        try:
            raw = response.read()
        except self._httpx.TimeoutException as exc:
            raise GenerationError(f"{self.url} timed out after {self.timeout:g}s while sending its answer") from exc
        except self._httpx.TransportError as exc:
            raise GenerationError(f"{self.url} dropped the connection: {exc}") from exc
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise GenerationError(f"{self.url} answered HTTP {response.status_code} with invalid JSON: "
                                  f"{raw[:200]!r}") from exc

    def _text_of(self, data: Any, *, delta: bool) -> str | None:
        """The text of one response or stream chunk (None: a chunk without text, e.g. only a role or usage)."""
        if isinstance(data, dict) and data.get("error"):
            err = data["error"]
            message = err.get("message", err) if isinstance(err, dict) else err
            raise GenerationError(f"{self.url} reported an error: {message}")
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or (not choices and not delta):
            raise GenerationError(f"{self.url} answered without the expected 'choices' field: {str(data)[:200]}")
        if not choices:
            return None  # e.g. the final usage chunk of a stream
        choice = choices[0] if isinstance(choices[0], dict) else {}
        if self.api == "completions":
            text = choice.get("text")
        else:
            part = choice.get("delta" if delta else "message")
            text = part.get("content") if isinstance(part, dict) else None
            if part is None and not delta:
                raise GenerationError(f"{self.url} answered a choice without 'message': {str(data)[:200]}")
        if text is not None and not isinstance(text, str):
            raise GenerationError(f"{self.url} answered non-text content: {str(text)[:200]}")
        return text

    # -- public API --------------------------------------------------------------------------------------------
    def generate(self, prompt: PromptInput, *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: str | Sequence[str] | None = None) -> str:
        stops = normalize_stop(stop)
        body = self._payload(prompt, max_tokens, temperature, stops, stream=False)
        response = self._send(body)
        try:
            data = self._read_json(response)
        finally:
            response.close()
        text = self._text_of(data, delta=False) or ""
        return cut_at_stop(text, stops)[0]

    def stream(self, prompt: PromptInput, *, max_tokens: int = 256, temperature: float = 0.0,
               stop: str | Sequence[str] | None = None) -> Iterator[str]:
        stops = normalize_stop(stop)
        body = self._payload(prompt, max_tokens, temperature, stops, stream=True)
        response = self._send(body)
        try:
            if "text/event-stream" not in response.headers.get("content-type", ""):
                # Some servers ignore "stream": true and answer one JSON body.
                text = self._text_of(self._read_json(response), delta=False) or ""
                text = cut_at_stop(text, stops)[0]
                if text:
                    yield text
                return
            buffer = StopBuffer(stops)
            for piece in self._events(response):
                out = buffer.push(piece)
                if out:
                    yield out
                if buffer.stopped:
                    return
            tail = buffer.flush()
            if tail:
                yield tail
        finally:
            response.close()

    def _events(self, response: Any) -> Iterator[str]:
        """Text pieces of a server-sent-events stream, until ``[DONE]`` or the end of the body."""
        try:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, comments (": ping"), "event:" and "id:" fields
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    chunk = json.loads(data)
                except ValueError as exc:
                    raise GenerationError(f"{self.url} streamed invalid JSON: {data[:200]!r}") from exc
                text = self._text_of(chunk, delta=True)
                if text:
                    yield text
        except self._httpx.TimeoutException as exc:
            raise GenerationError(f"{self.url} timed out after {self.timeout:g}s in the middle of a stream") from exc
        except self._httpx.TransportError as exc:
            raise GenerationError(f"{self.url} dropped the connection in the middle of a stream: {exc}") from exc
