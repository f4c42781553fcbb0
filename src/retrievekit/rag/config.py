"""The defaults of a RAG pipeline, in one place: ``RAG``, the service layer (HTTP ``/api/ask``, MCP) and the
``retrievekit ask`` command all read them from ``RAGConfig``.

    RAGConfig()                           # the defaults
    RAGConfig.from_json({"depth": 10})    # defaults with some settings changed (unknown names are refused)
    RAGConfig().to_json()                 # {"mode": None, "depth": 20, "selector": "gap+budget:1024", ...}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from retrievekit.core.errors import RetrievekitError

__all__ = ["DEFAULT_RAG_CONFIG", "RAGConfig"]


@dataclass(frozen=True)
class RAGConfig:
    """Plain-value settings of a RAG pipeline and their defaults (see ``retrievekit.rag.RAG`` for each).

    ``mode`` None: the collection's default mode (hybrid with a dense index, else bm25). ``selector``: score-gap cut
    then at most 1,024 tokens. ``compress`` None: no sentence extraction. ``expand`` None: the question only.
    ``template``/``instruction`` None: what the generator's prompt style asks for."""

    mode: str | None = None
    depth: int = 20
    selector: str = "gap+budget:1024"
    compress: str | None = None
    expand: str | None = None
    drop_flagged: bool = False
    max_tokens: int = 128
    require_citations: bool = True
    safety: bool = True
    template: str | None = None
    instruction: str | None = None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RAGConfig:
        """Defaults with the settings of ``data`` applied; a name that is not a setting is an error naming the
        accepted ones."""
        if not isinstance(data, Mapping):
            raise RetrievekitError(f"a RAG config must be an object of setting -> value, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.names()))
        if unknown:
            raise RetrievekitError(f"unknown RAG settings {unknown}; accepted: {', '.join(cls.names())}")
        return replace(cls(), **dict(data))


DEFAULT_RAG_CONFIG = RAGConfig()
