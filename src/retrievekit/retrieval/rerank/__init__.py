"""Reranking stages: rescore a retriever's candidates with a cross-encoder or late interaction (MaxSim).

Backends are imported on first use, so ``import retrievekit.retrieval.rerank`` never loads torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retrievekit.retrieval.rerank.base import (
    CROSS_ENCODER_ALIASES,
    Reranker,
    RerankerError,
    available_rerankers,
    get_reranker,
    register_reranker,
)

if TYPE_CHECKING:
    from retrievekit.retrieval.rerank.cross_encoder import CrossEncoderReranker
    from retrievekit.retrieval.rerank.maxsim import MaxSimReranker, maxsim_scores

__all__ = [
    "CROSS_ENCODER_ALIASES",
    "CrossEncoderReranker",
    "MaxSimReranker",
    "Reranker",
    "RerankerError",
    "available_rerankers",
    "get_reranker",
    "maxsim_scores",
    "register_reranker",
]

_LAZY = {"CrossEncoderReranker": ".cross_encoder", "MaxSimReranker": ".maxsim", "maxsim_scores": ".maxsim"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
