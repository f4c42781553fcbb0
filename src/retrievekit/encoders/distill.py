"""Distil a sentence-transformers model into a model2vec static model (one vector per token, no transformer).

The transformer encodes every token of its vocabulary once (plus ``vocabulary`` words, added as whole tokens);
PCA and SIF weighting follow model2vec's recipe. The result loads with ``Model2VecEncoder(output)`` and encodes
hundreds of times faster than the source model, at some loss of quality.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from retrievekit.core.errors import MissingExtraError, RetrievekitError, require
from retrievekit.encoders.sentence_transformers import _pooling_of, load_sentence_transformer

logger = logging.getLogger(__name__)

# sentence-transformers pooling -> model2vec's name for the token state it keeps
_POOLING = {"mean": "mean", "cls": "first", "lasttoken": "last"}


def distill(model: str, output: str | Path, *, pca_dims: int | None = 256,
            vocabulary: list[str] | None = None) -> Path:
    """Build a model2vec model from ``model`` (hub name, local folder or known alias) and save it to ``output``."""
    require("model2vec", "static")
    try:
        from model2vec.distill import distill_from_model
    except ImportError as exc:  # model2vec without its distillation dependencies (torch, skeletoken)
        raise MissingExtraError(f"distillation needs model2vec's distill dependencies ({exc}); install them with: "
                                "pip install skeletoken, or pip install 'retrievekit[static]'") from exc
    if pca_dims is not None and pca_dims < 1:
        raise RetrievekitError(f"pca_dims must be a positive number of dimensions or None, got {pca_dims}")
    started = time.perf_counter()
    st, card = load_sentence_transformer(model)
    transformer = st[0]
    if not hasattr(transformer, "auto_model") or not getattr(transformer.tokenizer, "is_fast", False):
        raise RetrievekitError(f"cannot distil {model!r}: its first module must be a transformer with a fast "
                               "(Rust) tokenizer")
    pooling = card.pooling if card is not None else _pooling_of(st)
    hidden = int(transformer.auto_model.config.hidden_size)
    static = distill_from_model(model=transformer.auto_model, tokenizer=transformer.tokenizer,
                                vocabulary=vocabulary, device="cpu",
                                pca_dims=pca_dims if pca_dims is None or pca_dims < hidden else None,
                                pooling=_POOLING.get(pooling, "mean"))
    target = Path(output).expanduser()
    target.mkdir(parents=True, exist_ok=True)
    static.save_pretrained(str(target))
    logger.info("distilled %s into %s (%d tokens, %d dims) in %.0fs", card.name if card else model,
                target, static.embedding.shape[0], static.dim, time.perf_counter() - started)
    return target
