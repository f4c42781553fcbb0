"""Late-interaction (ColBERT-style MaxSim) reranking over a dense model's contextual token embeddings.

score(q, d) = Σ over query tokens of max over document tokens of cos(q_tok, d_tok).

This needs no model trained for late interaction: any sentence-transformers encoder (default MiniLM, which ships
offline) gives token embeddings. [CLS]/[SEP]/[PAD]-like special tokens are dropped by default: they carry little
about the text and would let a query token match the same boilerplate position in every document.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from retrievekit.encoders.base import Encoder
from retrievekit.encoders.registry import DEFAULT_MODEL, get_encoder
from retrievekit.retrieval.rerank.base import Reranker, RerankerError

logger = logging.getLogger(__name__)

# bound on the (pairs, query tokens, doc tokens) similarity block and the gathered doc tokens, in floats
_BLOCK_FLOATS = 1 << 23


def maxsim_scores(query_tokens: Sequence[np.ndarray], doc_tokens: Sequence[np.ndarray], query_index: np.ndarray,
                  doc_index: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
    """MaxSim of pairs: float32 (n_pairs,), pair p = (``query_tokens[query_index[p]]``, ``doc_tokens[doc_index[p]]``),
    each an (n_tokens, dim) matrix of L2-normalised rows. A side with no tokens scores 0.

    Pairs are scored in blocks with one batched matmul each; padded doc positions are masked to -inf before the
    max, padded query rows are zero and masked out of the sum. Pairs are sorted by doc length so blocks pad little.
    """
    query_index = np.asarray(query_index, dtype=np.int64)
    doc_index = np.asarray(doc_index, dtype=np.int64)
    if query_index.shape != doc_index.shape or query_index.ndim != 1:
        raise RerankerError("query_index and doc_index must be 1-D and of equal length")
    out = np.zeros(len(query_index), dtype=np.float32)
    if len(out) == 0:
        return out
    dims = {m.shape[1] for m in (*query_tokens, *doc_tokens) if m.ndim == 2 and m.shape[0]}
    if len(dims) > 1:
        raise RerankerError(f"token embeddings of different widths: {sorted(dims)}")
    dim = dims.pop() if dims else 1
    doc_len = np.array([len(doc_tokens[d]) for d in doc_index], dtype=np.int64)
    order = np.argsort(-doc_len, kind="stable")
    start = 0
    while start < len(order):
        # The first pair of each block has its longest document: size the block from it.
        longest = max(int(doc_len[order[start]]), 1)
        step = max(1, min(batch_size, _BLOCK_FLOATS // (longest * max(dim, 1) * 2)))
        block = order[start : start + step]
        start += step
        q_pad, q_mask = _pad([query_tokens[i] for i in query_index[block]], dim)
        d_pad, d_mask = _pad([doc_tokens[i] for i in doc_index[block]], dim)
        if q_pad.shape[1] == 0 or d_pad.shape[1] == 0:
            continue
        sim = np.matmul(q_pad, d_pad.transpose(0, 2, 1))  # (b, Lq, Ld)
        sim[~np.broadcast_to(d_mask[:, None, :], sim.shape)] = -np.inf
        best = sim.max(axis=2)  # (b, Lq); -inf where the doc has no tokens
        best[~np.isfinite(best) | ~q_mask] = 0.0
        out[block] = best.sum(axis=1)
    return out


def _pad(mats: list[np.ndarray], dim: int) -> tuple[np.ndarray, np.ndarray]:
    width = max((len(m) for m in mats), default=0)
    padded = np.zeros((len(mats), width, dim), dtype=np.float32)
    mask = np.zeros((len(mats), width), dtype=bool)
    for i, m in enumerate(mats):
        padded[i, : len(m)] = m
        mask[i, : len(m)] = True
    return padded, mask


class MaxSimReranker(Reranker):
    """ColBERT-style MaxSim over the token embeddings of a sentence-transformers encoder.

    ``model``: an encoder name (anything ``retrievekit.encoders.registry.get_encoder`` accepts that gives a
    sentence-transformers encoder) or an ``Encoder`` with an ``encode_tokens`` method. Queries and documents get the
    encoder's query / document prompt, as in dense retrieval.
    """

    pairs_per_chunk = 256  # token matrices are large: (tokens × dim) floats per document

    def __init__(self, model: str | Encoder = DEFAULT_MODEL, *, batch_size: int = 32,
                 skip_special_tokens: bool = True, **encoder_options: Any) -> None:
        if batch_size < 1:
            raise RerankerError(f"batch_size must be >= 1, got {batch_size}")
        self.encoder = get_encoder(model, **encoder_options)
        if not callable(getattr(self.encoder, "encode_tokens", None)):
            raise RerankerError(f"MaxSim needs token embeddings, which the {self.encoder.backend!r} encoder does not "
                                "give; use a sentence-transformers model, e.g. 'maxsim:minilm'")
        self.batch_size = batch_size
        self.skip_special_tokens = skip_special_tokens

    def config(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "encoder": self.encoder.spec(), "batch_size": self.batch_size,
                "skip_special_tokens": self.skip_special_tokens}

    def encode_tokens(self, texts: Sequence[str], *, queries: bool) -> list[np.ndarray]:
        """L2-normalised (n_tokens, dim) token embeddings of each text, with the query or document prompt."""
        prompt = self.encoder.query_prompt if queries else self.encoder.document_prompt
        prompted = [prompt + t for t in texts]
        if not prompted:
            return []
        mats: list[np.ndarray] = self.encoder.encode_tokens(prompted, batch_size=self.batch_size)  # type: ignore[attr-defined]
        if self.skip_special_tokens:
            masks = self._content_masks(prompted, [len(m) for m in mats])
            if masks is not None:
                mats = [m[keep] for m, keep in zip(mats, masks)]
        return mats

    def _score_pairs(self, queries: Sequence[str], documents: Sequence[str], query_index: np.ndarray,
                     doc_index: np.ndarray) -> np.ndarray:
        q_tokens = self.encode_tokens(queries, queries=True)
        d_tokens = self.encode_tokens(documents, queries=False)
        return maxsim_scores(q_tokens, d_tokens, query_index, doc_index, batch_size=self.batch_size)

    def _content_masks(self, texts: list[str], lengths: list[int]) -> list[np.ndarray] | None:
        """Which token positions are not special tokens, from the model's own preprocessing (same truncation as
        encoding). None (keep every token) when the model does not expose it or the lengths disagree."""
        model = getattr(self.encoder, "model", None)
        tokenizer = getattr(model, "tokenizer", None)
        try:
            features = model.preprocess(texts)  # type: ignore[union-attr]
            ids, attention = features["input_ids"].numpy(), features["attention_mask"].numpy().astype(bool)
        except (AttributeError, KeyError, TypeError):
            logger.debug("no input ids from %r; MaxSim keeps special tokens", self.encoder)
            return None
        special = np.array([i for a in ("cls_token_id", "sep_token_id", "pad_token_id", "bos_token_id",
                                        "eos_token_id") if isinstance(i := getattr(tokenizer, a, None), int)])
        masks = []
        for row, att, n in zip(ids, attention, lengths):
            row = row[att]
            if len(row) != n:
                logger.debug("token count mismatch (%d vs %d); MaxSim keeps special tokens", len(row), n)
                return None
            masks.append(~np.isin(row, special))
        return masks
