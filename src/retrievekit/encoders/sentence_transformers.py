"""sentence-transformers backend: any local folder or hub name, plus the offline default MiniLM package."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.core.errors import RetrievekitError, require
from retrievekit.encoders.base import Encoder
from retrievekit.encoders.registry import ModelCard, model_card

logger = logging.getLogger(__name__)


def resolve_model_path(model: str, card: ModelCard | None) -> str:
    """Where to load ``model`` from: a local folder as given; else the package that ships the weights offline
    (see ../shared/MODELS.md); else the hub name (sentence-transformers downloads and caches it)."""
    if Path(model).expanduser().is_dir():
        return str(Path(model).expanduser().resolve())
    if card is not None and card.offline_package and importlib.util.find_spec(card.offline_package) is not None:
        package = importlib.import_module(card.offline_package)
        return str(package.get_model_path())
    return card.name if card is not None else model


def load_sentence_transformer(model: str, *, device: str | None = None, **kwargs: Any) -> Any:
    require("sentence_transformers", "dense")
    from sentence_transformers import SentenceTransformer

    card = model_card(model)
    location = resolve_model_path(model, card)
    if card is not None and card.extra.get("trust_remote_code"):
        kwargs.setdefault("trust_remote_code", True)
    try:
        return SentenceTransformer(location, device=device or "cpu", **kwargs), card
    except OSError as exc:
        raise RetrievekitError(
            f"cannot load the sentence-transformers model {model!r} from {location!r}: {exc}. Give a local folder, "
            "a hub name reachable from this machine, or install the package that ships it (see MODELS.md)") from exc


def canonical_name(model: str, card: ModelCard | None) -> str:
    if card is not None:
        return card.name
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else model


class SentenceTransformerEncoder(Encoder):
    backend = "sentence-transformers"

    def __init__(
        self,
        model: str = "sentence-transformers/all-MiniLM-L6-v2",
        *,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        pooling: str | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        device: str | None = None,
    ) -> None:
        self.model, card = load_sentence_transformer(model, device=device)
        self.name = canonical_name(model, card)
        prompts = getattr(self.model, "prompts", None) or {}
        self.query_prompt = query_prompt if query_prompt is not None else (
            card.query_prompt if card else prompts.get("query", ""))
        self.document_prompt = document_prompt if document_prompt is not None else (
            card.document_prompt if card else prompts.get("document", prompts.get("passage", "")))
        self.pooling = card.pooling if card else _pooling_of(self.model)
        if pooling is not None and pooling != _pooling_of(self.model):
            raise RetrievekitError(f"{model!r} pools with {_pooling_of(self.model)!r} (its own Pooling module); the "
                                   f"sentence-transformers backend cannot change that to {pooling!r}")
        self.normalize = normalize if normalize is not None else (
            card.normalize if card else any(type(m).__name__ == "Normalize" for m in self.model))
        window = max_length or (card.max_length if card else None) or self.model.max_seq_length or 512
        self.model.max_seq_length = self.max_length = int(window)
        self._dim = int(self.model.get_embedding_dimension())

    @property
    def dim(self) -> int:
        return self._dim

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=len(texts), show_progress_bar=False,
                                 convert_to_numpy=True, normalize_embeddings=False)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        enc = self.model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
        return [tuple(span) for span in enc["offset_mapping"]]

    def encode_tokens(self, texts: list[str], *, batch_size: int = 32) -> list[np.ndarray]:
        """Contextual token embeddings (L2-normalised, padding removed) for late-interaction scoring."""
        out = self.model.encode(texts, batch_size=batch_size, show_progress_bar=False,
                                output_value="token_embeddings", convert_to_numpy=False)
        result = []
        for t in out:
            m = t.float().cpu().numpy().astype(np.float32)
            norms = np.linalg.norm(m, axis=1, keepdims=True)
            result.append(m / np.maximum(norms, 1e-12))
        return result


def _pooling_of(model: Any) -> str:
    for module in model:
        mode = getattr(module, "pooling_mode", None)
        if isinstance(mode, str):
            return mode
        config: dict[str, Any] = getattr(module, "get_config_dict", lambda: {})()
        if "pooling_mode" in config:
            return str(config["pooling_mode"])
    return "mean"
