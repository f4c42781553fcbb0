"""Training losses of our own, written for sentence-transformers' trainer (same call signature as its losses:
``loss(sentence_features, labels)``, the model stored as ``loss.model``), so they combine with its wrappers such as
``MatryoshkaLoss``. Import only with the ``train`` extra installed (torch)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["DecoupledSoftmaxLoss", "cosine_similarity"]


def cosine_similarity(a: Tensor, b: Tensor) -> Tensor:
    """(len(a), len(b)) cosine similarities; rows of zeros give 0, not NaN."""
    return nn.functional.normalize(a, p=2, dim=-1) @ nn.functional.normalize(b, p=2, dim=-1).T


class DecoupledSoftmaxLoss(nn.Module):
    """Decoupled softmax (DEXML; Gupta et al. 2024, "Dual-encoders for extreme multi-label classification"): InfoNCE
    whose denominator leaves the positive out, so a well-ranked positive is not held back by its own term.

    Columns (anchor, positive, negative_1, ..., negative_k). With ``s = scale * similarity``, each anchor ``q_i``
    costs ``-s(q_i, p_i) + logsumexp_n s(q_i, n)`` over every other text of the batch: the other anchors'
    positives (in-batch negatives) and all hard negatives. The loss is the mean over anchors; unlike InfoNCE it can
    go below zero (once the positive outscores the negatives' soft maximum). Use a batch sampler without duplicate
    texts, so no anchor meets its own positive's copy among the negatives."""

    def __init__(self, model: Any, scale: float = 20.0,
                 similarity_fct: Callable[[Tensor, Tensor], Tensor] = cosine_similarity) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.model = model
        self.scale = float(scale)
        self.similarity_fct = similarity_fct

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        embeddings = [self.model(features)["sentence_embedding"] for features in sentence_features]
        return self.compute_loss_from_embeddings(embeddings, labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        """``embeddings``: the anchors, then one tensor per document column (positives first), each (batch, dim)."""
        if len(embeddings) < 2:
            raise ValueError(f"expected anchors and at least one document column, got {len(embeddings)} column(s)")
        anchors, documents = embeddings[0], torch.cat(embeddings[1:], dim=0)
        scores = self.similarity_fct(anchors, documents) * self.scale  # (batch, batch * columns)
        batch = anchors.size(0)
        rows = torch.arange(batch, device=scores.device)
        positive = scores[rows, rows]  # anchor i's positive is document i of the first column
        if scores.size(1) == 1:
            # one anchor and no other text: no negative to contrast with, so no gradient (not -inf)
            return (positive * 0.0).sum()
        own = torch.zeros_like(scores, dtype=torch.bool)
        own[rows, rows] = True
        negatives_log_sum = torch.logsumexp(scores.masked_fill(own, float("-inf")), dim=1)
        return (negatives_log_sum - positive).mean()

    def get_config_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "similarity_fct": getattr(self.similarity_fct, "__name__", "custom")}

    @property
    def citation(self) -> str:
        return """
@inproceedings{gupta2024dexml,
    title={Dual-Encoders for Extreme Multi-label Classification},
    author={Nilesh Gupta and Devvrit Khatri and Ankit Singh Rawat and Srinadh Bhojanapalli and Prateek Jain and
            Inderjit S. Dhillon},
    booktitle={The Twelfth International Conference on Learning Representations},
    year={2024},
    url={https://arxiv.org/abs/2310.10636}
}
"""
