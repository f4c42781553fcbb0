"""Serving a collection: an HTTP/JSON API with a web UI (``retrievekit serve``) and an MCP server (``retrievekit mcp``).

Needs the ``serve`` extra (FastAPI, uvicorn). Importing this package does not import them; ``create_app`` and
``run`` are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retrievekit.core.errors import RetrievekitError

if TYPE_CHECKING:
    from retrievekit.serve.app import create_app, run


class ServeError(RetrievekitError):
    """The server cannot start as asked (e.g. a public host without an API key)."""


__all__ = ["ServeError", "create_app", "run"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "run"):
        from retrievekit.serve import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
