"""uvicorn's HTTP/1.1 protocol with a deadline for each request's headers.

uvicorn closes a kept-alive connection only when it stays silent for ``timeout_keep_alive`` after a response, and
any byte received cancels that timer; a connection that never completes a request (opened and left idle, or
sending a header line every few seconds: slowloris) is kept forever. Here a connection must deliver a complete
request head within ``header_timeout`` seconds of opening, and of each response, or it is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

DEFAULT_HEADER_TIMEOUT = 10.0


class HeaderTimeoutProtocol(H11Protocol):
    header_timeout = DEFAULT_HEADER_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    @classmethod
    def with_timeout(cls, seconds: float) -> type[HeaderTimeoutProtocol]:
        """This protocol with ``seconds`` for a request head (uvicorn takes a class, not an instance)."""
        return type(cls.__name__, (cls,), {"header_timeout": float(seconds)})

    def _start_head_timer(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _waiting_for_a_request(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._waiting_for_a_request() and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def handle_events(self) -> None:
        super().handle_events()
        if not self._waiting_for_a_request():  # a request head arrived: the app's time starts
            self._stop_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)
