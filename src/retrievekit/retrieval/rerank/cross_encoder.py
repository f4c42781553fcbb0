"""Cross-encoder reranking: a sentence-transformers ``CrossEncoder`` reads query and document together and outputs
one relevance score per pair (any local folder or hub name, e.g. ``cross-encoder/ms-marco-MiniLM-L-6-v2``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.core.allocator import keep_freed_memory
from retrievekit.core.errors import RetrievekitError, require
from retrievekit.retrieval.rerank.base import Reranker, check_blend

logger = logging.getLogger(__name__)

#: the card retrievekit's trainer writes beside a reranker's weights; ``rerank_blend`` there is the blend the model
#: was validated with (see ``retrievekit.training.reranker_training.tune_blend``)
CARD_FILE = "model_card.json"


class CrossEncoderReranker(Reranker):
    """Scores (query, document) pairs with a single-label cross-encoder.

    ``raw_scores=True`` (default) returns the model's logits: the ranking is the same as after the model's own
    activation (usually a sigmoid, which is monotonic), but logits do not saturate into float32 ties near 1.0 and
    keep their scale for score fusion. ``device=None`` lets sentence-transformers pick (CUDA when available).
    ``blend`` (see :class:`Reranker`): ``"auto"`` takes the ``rerank_blend`` a trained folder's card records (none:
    the reranker's score alone); a number or ``None`` overrides it.
    """

    pairs_per_chunk = 2048

    def __init__(self, model: str, *, batch_size: int = 32, max_length: int = 512, device: str | None = None,
                 raw_scores: bool = True, trust_remote_code: bool = False, blend: float | str | None = "auto") -> None:
        if batch_size < 1 or max_length < 1:
            raise RetrievekitError(f"batch_size and max_length must be >= 1, got {batch_size} and {max_length}")
        require("sentence_transformers", "dense")
        from sentence_transformers import CrossEncoder

        path = Path(model).expanduser()
        location = str(path.resolve()) if path.is_dir() else model
        try:
            self.model = CrossEncoder(location, device=device, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise RetrievekitError(
                f"cannot load the cross-encoder {model!r}: {exc}. A cross-encoder needs a local folder (a saved "
                "CrossEncoder or Hugging Face sequence-classification model) or a hub name reachable from this "
                "machine; no cross-encoder weights ship offline with retrievekit") from exc
        if self.model.num_labels != 1:
            raise RetrievekitError(f"{model!r} has {self.model.num_labels} output labels; reranking needs a "
                                   "single-score cross-encoder (num_labels=1)")
        # sentence-transformers infers a window the position embeddings can hold; never exceed it.
        inferred = self.model.max_seq_length
        self.max_length = min(max_length, inferred) if inferred else max_length
        self.model.max_seq_length = self.max_length
        self.name = location
        self.batch_size = batch_size
        self.raw_scores = raw_scores
        self.blend = check_blend(card_blend(path) if blend == "auto" else blend)  # type: ignore[arg-type]

    def config(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "model": self.name, "batch_size": self.batch_size,
                "max_length": self.max_length, "raw_scores": self.raw_scores, "blend": self.blend}

    def _score_pairs(self, queries: Sequence[str], documents: Sequence[str], query_index: np.ndarray,
                     doc_index: np.ndarray) -> np.ndarray:
        pairs = [(queries[q], documents[d]) for q, d in zip(query_index.tolist(), doc_index.tolist())]
        return self.predict(pairs)

    def predict(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """float32 score of each (query, document) pair."""
        if not pairs:
            return np.empty(0, dtype=np.float32)
        if str(self.model.device) == "cpu":
            keep_freed_memory()  # batches reuse their activations' memory, as the bi-encoders' do
        options: dict[str, Any] = {}
        if self.raw_scores:
            import torch

            options["activation_fn"] = torch.nn.Identity()
        # predict() sorts pairs by length itself, so batches pad little
        scores = self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False,
                                    convert_to_numpy=True, **options)
        return np.asarray(scores, dtype=np.float32).reshape(len(pairs))

    def __repr__(self) -> str:
        return f"CrossEncoderReranker({self.name!r})"


def card_blend(folder: Path) -> float | None:
    """The ``rerank_blend`` recorded in a trained folder's card, if any."""
    card = folder / CARD_FILE
    if not card.is_file():
        return None
    try:
        value = json.loads(card.read_text(encoding="utf-8")).get("rerank_blend")
    except (OSError, ValueError, AttributeError) as exc:
        raise RetrievekitError(f"cannot read the reranker card {card}: {exc}") from exc
    return check_blend(value)
