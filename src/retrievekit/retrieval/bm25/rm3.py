"""RM3 pseudo-relevance feedback (Lavrenko & Croft's relevance model interpolated with the query), following
Anserini's defaults and term selection so results are comparable with Pyserini's ``bm25+rm3``."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass

_FEEDBACK_TERM = re.compile(r"[a-z0-9]{2,20}")


@dataclass(frozen=True)
class RM3:
    fb_docs: int = 10
    fb_terms: int = 10
    original_weight: float = 0.5
    max_df_ratio: float = 0.1  # very common terms act as stop words and hurt feedback (Anserini drops >10%)

    def expand(
        self,
        query: dict[str, float],
        feedback: list[tuple[list[str], float]],
        df: Callable[[list[str]], list[int]],
        n_docs: int,
    ) -> dict[str, float]:
        """New weighted query from the original term weights and the analyzed feedback documents with scores."""
        vectors: list[tuple[Counter[str], float]] = []
        vocab: set[str] = set()
        for terms, score in feedback[: self.fb_docs]:
            counts = Counter(t for t in terms if _FEEDBACK_TERM.fullmatch(t))
            vectors.append((counts, score))
            vocab.update(counts)
        if not vocab:
            return query
        words = sorted(vocab)
        ratios = dict(zip(words, (f / max(n_docs, 1) for f in df(words))))
        model: dict[str, float] = defaultdict(float)
        for counts, score in vectors:
            kept = {t: c for t, c in counts.items() if ratios[t] <= self.max_df_ratio}
            norm = float(sum(kept.values()))
            if norm <= 0:
                continue
            for t, c in kept.items():
                model[t] += c / norm * score
        top = sorted(model.items(), key=lambda kv: (-kv[1], kv[0]))[: self.fb_terms]
        total = sum(v for _, v in top)
        q_total = sum(query.values())
        expanded: dict[str, float] = {}
        for t, v in query.items():
            expanded[t] = self.original_weight * v / q_total
        if total > 0:
            for t, v in top:
                expanded[t] = expanded.get(t, 0.0) + (1 - self.original_weight) * v / total
        return expanded
