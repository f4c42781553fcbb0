"""sentence-transformers backend: any local folder or hub name, plus the offline default MiniLM package."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.core.allocator import keep_freed_memory
from retrievekit.core.errors import RetrievekitError, require
from retrievekit.encoders import auto
from retrievekit.encoders.auto import PathDecision, requested_path
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


# the bf16 token_budget_sweep of benchmarks/results/encoding-speed.json (2 Xeon cores with AMX, SciFact passages):
# 4,096 padded tokens a batch 111 docs/s, 8,192 109, 2,048 102 (with the allocator's thresholds raised; left alone,
# bigger batches lose more: each batch's activations are mapped and page-faulted anew)
BF16_TOKEN_BUDGET = 4096


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
        precision: str | None = None,
    ) -> None:
        self.model, card = load_sentence_transformer(model, device=device)
        self.source_model = model
        # the numeric path (fp32, bf16, int8 ONNX) is a run-time choice, not part of the spec: see encoders.auto
        self._precision = requested_path(precision)
        self.decision: PathDecision | None = None
        self._active = "fp32"
        self._bf16_model: Any = None
        self._int8: Any = None
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

    @property
    def token_budget(self) -> int | None:  # type: ignore[override]
        """Padded tokens per batch on the active path: bf16 runs fastest in half the fp32 batches; fp32 keeps
        ``batch_size`` texts of the full window."""
        return BF16_TOKEN_BUDGET if self._active == "bf16" else None

    # -- numeric paths ---------------------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], *, batch_size: int = 32, progress: bool = False,
               desc: str = "encoding", token_budget: int | None = None) -> np.ndarray:
        if str(self.model.device) == "cpu":
            keep_freed_memory()  # once per process, before the path trials: batches reuse their activations' memory
        path = self.path_for(texts)
        if path == "onnx-int8":
            return np.asarray(self._int8.encode(texts, batch_size=batch_size, progress=progress, desc=desc,
                                                token_budget=token_budget))
        self._active = path
        return super().encode(texts, batch_size=batch_size, progress=progress, desc=desc, token_budget=token_budget)

    def path_for(self, texts: Sequence[str], *, decide: bool = False) -> str:
        """The numeric path for this encode: the decision once made; until then fp32 for small encodes, and a
        decision (forced, cached or measured on ``texts``) for a bulk one — or for any, with ``decide``."""
        if self.decision is not None:
            return self.decision.path
        if str(self.model.device) != "cpu":  # CUDA and others: the model as loaded, as before
            return "fp32"
        if self._precision == "auto" and len(texts) < auto.AUTO_MIN_TEXTS and not decide:
            return "fp32"
        decision = auto.resolve(self, texts, self._precision)
        try:
            {"bf16": self.prepare_bf16, "onnx-int8": self.prepare_int8}.get(decision.path, lambda: None)()
        except Exception as exc:
            if decision.forced:
                raise RetrievekitError(f"the forced encoder path {decision.path!r} cannot run: {exc}") from exc
            # a cached decision whose path no longer runs (a library removed since): fp32 is always right
            decision = auto.PathDecision(path="fp32", reason=f"fp32: {decision.path} (cached choice) failed: {exc}",
                                         model=self.name, cpu=decision.cpu, decided_at=decision.decided_at)
        self.decision = decision
        logger.info("encoding with %s on %s", self.name, decision.reason)
        return decision.path

    def encode_on(self, path: str, texts: list[str]) -> np.ndarray:
        """``texts`` encoded on one numeric path (made ready first), whatever the decision: for the check."""
        if path == "onnx-int8":
            self.prepare_int8()
            return np.asarray(self._int8.encode(texts))
        if path == "bf16":
            self.prepare_bf16()
        previous, self._active = self._active, path
        try:
            return super().encode(texts)
        finally:
            self._active = previous

    def prepare_bf16(self) -> None:
        if self._bf16_model is None:
            import copy

            import torch

            self._bf16_model = copy.deepcopy(self.model).to(torch.bfloat16).eval()

    def prepare_int8(self) -> None:
        if self._int8 is None:
            from retrievekit.encoders.onnx import ONNXInt8Encoder

            int8 = ONNXInt8Encoder(self.source_model, query_prompt=self.query_prompt,
                                   document_prompt=self.document_prompt, pooling=self.pooling,
                                   normalize=self.normalize, max_length=self.max_length)
            if int8.dim != self.dim:
                raise RetrievekitError(f"the int8 export of {self.name} has dimension {int8.dim}, not {self.dim}")
            self._int8 = int8

    # -- token-budget batching: tokenised once, by the model's own preprocessing ----------------------------------
    def _tokenize(self, texts: list[str]) -> tuple[Any, Sequence[int]] | None:
        features = self.model.preprocess(texts)
        mask = features.get("attention_mask")
        if mask is None or getattr(mask, "dim", lambda: 0)() != 2:  # not a token model: batch by text
            return None
        return features, mask.sum(dim=1).tolist()

    def _encode_tokens(self, tokens: Any, idx: list[int]) -> np.ndarray:
        import torch

        model = self._bf16_model if self._active == "bf16" else self.model
        rows = torch.as_tensor(idx)
        keep = tokens["attention_mask"][rows].any(dim=0)  # the batch's real columns, whichever side pads
        batch = {k: (v[rows][:, keep].to(model.device) if isinstance(v, torch.Tensor) and v.dim() == 2 else v)
                 for k, v in tokens.items()}
        with torch.inference_mode():
            out = model(batch)["sentence_embedding"]
        return out.float().cpu().numpy()

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
