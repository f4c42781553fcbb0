"""The server's guards: API key, per-client rate limit, request body size limit, and the loopback check.

The guards are plain ASGI middleware so that they run before routing and body parsing: a request without the key
or over the limit is answered without reading (much of) its body, and every route — unknown ones included — is
covered the same way.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("localhost", "localhost.", "ip6-localhost")


def is_loopback(host: str) -> bool:
    """True for hosts only this machine can reach: 127.0.0.0/8, ::1 and ``localhost``."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def bearer_matches(authorization: bytes | None, key: bytes) -> bool:
    """Whether an ``Authorization`` header value is ``Bearer <key>``, compared in constant time."""
    if not authorization:
        return False
    scheme, _, token = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return hmac.compare_digest(token.strip(), key)


async def send_error(send: Send, status: int, code: str, message: str,
                     headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """An error response in the API's shape, written straight to ASGI ``send``."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value  # type: ignore[no-any-return,unused-ignore]
    return None


class TokenBucketLimiter:
    """Per-client token buckets: ``rate`` requests per second on average, bursts of up to ``burst``.

    Clients are keyed by address; the least recently seen are forgotten beyond ``max_clients`` (a full bucket is
    what a forgotten client gets back, so forgetting only ever errs on the lenient side)."""

    def __init__(self, rate: float, burst: float | None = None, *, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError(f"rate must be a positive number of requests per second, got {rate!r}")
        self.rate = float(rate)
        self.burst = max(1.0, float(burst) if burst is not None else 2.0 * self.rate)
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, time)
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """Spend one token of ``client``: 0.0 if allowed, else the seconds until a token is available."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait


class GuardMiddleware:
    """Rate limit (paths under ``limited_prefixes``) and then the API key (all but the public paths).

    The limit comes first so that guessing keys is limited too."""

    def __init__(self, app: ASGIApp, *, api_key: str | None = None, limiter: TokenBucketLimiter | None = None,
                 public_paths: Iterable[str] = ("/health", "/ready", "/"), public_prefixes: Iterable[str] = ("/ui",),
                 limited_prefixes: Iterable[str] = ("/api",)) -> None:
        self.app = app
        self.key = api_key.encode("utf-8") if api_key else None
        self.limiter = limiter
        self.public_paths = frozenset(public_paths)
        self.public_prefixes = tuple(public_prefixes)
        self.limited_prefixes = tuple(limited_prefixes)

    @staticmethod
    def _under(path: str, prefixes: tuple[str, ...]) -> bool:
        return any(path == p or path.startswith(p + "/") for p in prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if self.limiter is not None and self._under(path, self.limited_prefixes):
            client = (scope.get("client") or ("unknown", 0))[0]
            wait = self.limiter.take(str(client))
            if wait > 0:
                retry = str(max(1, math.ceil(wait)))
                await send_error(send, 429, "rate_limited",
                                 f"too many requests from {client}: the limit is {self.limiter.rate:g} per second "
                                 f"(bursts of {self.limiter.burst:g}); retry after {retry} s",
                                 [(b"retry-after", retry.encode())])
                return
        if self.key is not None and path not in self.public_paths and not self._under(path, self.public_prefixes):
            header = _header(scope, b"authorization")
            if not bearer_matches(header, self.key):
                message = ("missing API key: send the header 'Authorization: Bearer KEY'" if header is None
                           else "wrong API key (expected 'Authorization: Bearer KEY')")
                await send_error(send, 401, "unauthorized", message, [(b"www-authenticate", b"Bearer")])
                return
        await self.app(scope, receive, send)


class BodySizeLimitMiddleware:
    """Answers 413 when a request body is over ``max_bytes``.

    A declared ``Content-Length`` over the limit is refused before reading; otherwise (chunked bodies included) the
    body is read up to the limit and buffered, then replayed to the application, so the application never sees a
    partial body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    def _too_large(self) -> str:
        return f"request body larger than the limit of {self.max_bytes:,} bytes (see --max-body-mb)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                await send_error(send, 400, "bad_request", "the Content-Length header is not a number")
                return
            if too_large:
                await send_error(send, 413, "payload_too_large", self._too_large())
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                first: Message | None = message
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await send_error(send, 413, "payload_too_large", self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed and first is not None:
                replayed = True
                return first
            return await receive()

        await self.app(scope, replay, send)
