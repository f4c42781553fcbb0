"""A client for OpenAI-compatible text generation endpoints (vLLM, llama.cpp server, Ollama, hosted APIs).

Only the standard request fields are sent (model, messages or prompt, max_tokens, temperature, stop, stream), so
any server that follows the OpenAI wire format works. ``base_url`` is the API root: ``http://host:8000/v1`` and
``http://host:8000`` both work (``/v1`` is added when the URL does not end in a version segment). Streaming reads
server-sent events (``data: {...}`` lines ending with ``data: [DONE]``). Rate limits (429), server errors (5xx),
dropped connections and timeouts are retried with exponential backoff, honouring ``Retry-After``; a stream is
only retried before its first piece was delivered.

``timeout`` is a deadline for the whole call (connecting, every retry and its backoff, reading the full answer or
stream): httpx's own timeouts bound each connect and each read, so a server sending one byte a second would never
trip them, and a stream that never ends would never end the call.
"""

from __future__ import annotations

import json
import logging
import random
import re
import socket
import threading
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


class _Deadline:
    """The deadline of one call. Each socket an attempt opens is recorded through httpx's ``trace`` extension, and
    a timer shuts them down when the time is up: a read blocked on a trickling or silent server then fails at once
    (closing a socket from another thread would not wake it)."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    @property
    def expired(self) -> bool:
        return self._expired or time.monotonic() >= self.end

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        sock = info["return_value"].get_extra_info("socket")
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            late = self._expired
        if late:
            self._shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed

    def cancel(self) -> None:
        self._timer.cancel()


class OpenAICompatibleGenerator(Generator):
    """Text generation over HTTP through an OpenAI-compatible ``/v1/chat/completions`` or ``/v1/completions``.

    ``api="chat"`` sends chat messages (a plain prompt becomes one user message); ``api="completions"`` sends a
    plain prompt (chat messages are flattened to text). ``timeout``: seconds for the whole call, retries,
    backoff and the full answer (or stream) included; ``max_retries`` counts retries after the first attempt, made
    only while time is left. ``extra_body`` adds non-standard fields for servers that want them.
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
        # No kept-alive connections: each attempt connects, so the deadline's trace sees (and can cut) its socket.
        # A generation takes seconds; a connection setup costs milliseconds.
        self._client = httpx.Client(timeout=httpx.Timeout(self.timeout), headers=request_headers,
                                    limits=httpx.Limits(max_keepalive_connections=0))

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
                               + (f": {detail}" if detail else ""), kind="refused",
                               public=f"the generator endpoint answered HTTP {response.status_code}")

    def _timed_out(self, where: str) -> GenerationError:
        return GenerationError(f"{self.url} timed out after {self.timeout:g}s: it {where} in time (the timeout "
                               "bounds the whole call, retries included)", kind="timeout")

    def _send(self, body: dict[str, Any], deadline: _Deadline) -> Any:
        """An open streaming response with a 2xx status, after retries within the deadline; the caller closes it."""
        httpx = self._httpx
        attempt = 0
        while True:
            response = None
            try:
                request = self._client.build_request("POST", self.url, json=body,
                                                     timeout=httpx.Timeout(max(deadline.remaining(), 0.001)),
                                                     extensions={"trace": deadline.trace})
                response = self._client.send(request, stream=True)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if deadline.expired:
                    raise self._timed_out("did not answer") from None
                failure: GenerationError = GenerationError(
                    f"cannot reach {self.url}: {type(exc).__name__}: {exc}", kind="unreachable")
            else:
                if response.status_code < 300:
                    return response
                failure = self._error(response)
                response.close()
                if response.status_code not in RETRY_STATUSES:
                    raise failure
            delay = self._delay(attempt, response)
            if attempt >= self.max_retries or delay >= deadline.remaining():
                if attempt:
                    failure = GenerationError(f"{failure} (gave up after {attempt + 1} attempts)", kind=failure.kind,
                                              public=failure.public)
                raise failure
            logger.warning("%s; retrying in %.2fs (attempt %d of %d)", failure, delay, attempt + 2,
                           self.max_retries + 1)
            time.sleep(delay)
            attempt += 1

    def _read_json(self, response: Any, deadline: _Deadline) -> Any:
        try:
            raw = response.read()
        except (self._httpx.TimeoutException, self._httpx.TransportError) as exc:
            if deadline.expired:
                raise self._timed_out("did not finish sending its answer") from None
            raise GenerationError(f"{self.url} dropped the connection: {exc}", kind="unreachable") from exc
        try:
            return json.loads(raw)
        except ValueError as exc:
            if deadline.expired:  # a body cut short by the deadline's shutdown, not a bad answer
                raise self._timed_out("did not finish sending its answer") from None
            raise GenerationError(f"{self.url} answered HTTP {response.status_code} with invalid JSON: "
                                  f"{raw[:200]!r}", kind="bad_answer") from exc

    def _text_of(self, data: Any, *, delta: bool) -> str | None:
        """The text of one response or stream chunk (None: a chunk without text, e.g. only a role or usage)."""
        if isinstance(data, dict) and data.get("error"):
            err = data["error"]
            message = err.get("message", err) if isinstance(err, dict) else err
            raise GenerationError(f"{self.url} reported an error: {message}", kind="refused",
                                  public="the generator endpoint reported an error")
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or (not choices and not delta):
            raise GenerationError(f"{self.url} answered without the expected 'choices' field: {str(data)[:200]}",
                                  kind="bad_answer")
        if not choices:
            return None  # e.g. the final usage chunk of a stream
        choice = choices[0] if isinstance(choices[0], dict) else {}
        if self.api == "completions":
            text = choice.get("text")
        else:
            part = choice.get("delta" if delta else "message")
            text = part.get("content") if isinstance(part, dict) else None
            if part is None and not delta:
                raise GenerationError(f"{self.url} answered a choice without 'message': {str(data)[:200]}",
                                      kind="bad_answer")
        if text is not None and not isinstance(text, str):
            raise GenerationError(f"{self.url} answered non-text content: {str(text)[:200]}", kind="bad_answer")
        return text

    # -- public API --------------------------------------------------------------------------------------------
    def generate(self, prompt: PromptInput, *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: str | Sequence[str] | None = None) -> str:
        stops = normalize_stop(stop)
        body = self._payload(prompt, max_tokens, temperature, stops, stream=False)
        deadline = _Deadline(self.timeout)
        try:
            response = self._send(body, deadline)
            try:
                data = self._read_json(response, deadline)
            finally:
                response.close()
        finally:
            deadline.cancel()
        text = self._text_of(data, delta=False) or ""
        return cut_at_stop(text, stops)[0]

    def stream(self, prompt: PromptInput, *, max_tokens: int = 256, temperature: float = 0.0,
               stop: str | Sequence[str] | None = None) -> Iterator[str]:
        stops = normalize_stop(stop)
        body = self._payload(prompt, max_tokens, temperature, stops, stream=True)
        deadline = _Deadline(self.timeout)  # runs from the first next(): a stream that never ends is cut
        try:
            response = self._send(body, deadline)
            try:
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    # Some servers ignore "stream": true and answer one JSON body.
                    text = self._text_of(self._read_json(response, deadline), delta=False) or ""
                    text = cut_at_stop(text, stops)[0]
                    if text:
                        yield text
                    return
                buffer = StopBuffer(stops)
                for piece in self._events(response, deadline):
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
        finally:
            deadline.cancel()

    def _events(self, response: Any, deadline: _Deadline) -> Iterator[str]:
        """Text pieces of a server-sent-events stream, until ``[DONE]`` or the end of the body."""
        try:
            for line in response.iter_lines():
                if deadline.expired:
                    raise self._timed_out("did not finish its stream")
                if not line.startswith("data:"):
                    continue  # blank separators, comments (": ping"), "event:" and "id:" fields
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    chunk = json.loads(data)
                except ValueError as exc:
                    raise GenerationError(f"{self.url} streamed invalid JSON: {data[:200]!r}",
                                          kind="bad_answer") from exc
                text = self._text_of(chunk, delta=True)
                if text:
                    yield text
            if deadline.expired:  # the deadline shut the socket down mid-read, which httpx reads as the body's end
                raise self._timed_out("did not finish its stream")
        except (self._httpx.TimeoutException, self._httpx.TransportError) as exc:
            if deadline.expired:
                raise self._timed_out("did not finish its stream") from None
            raise GenerationError(f"{self.url} dropped the connection in the middle of a stream: {exc}",
                                  kind="unreachable") from exc
