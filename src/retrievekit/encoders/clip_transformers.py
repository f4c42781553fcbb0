"""Backend ``hf-clip``: an image–text model straight from transformers — CLIP, SigLIP, SigLIP 2, MetaCLIP 2,
ChineseCLIP, AltCLIP, ALIGN: any model whose class has ``get_text_features`` and ``get_image_features`` (a hub name
or a local folder saved with ``save_pretrained``), with its own tokenizer and image processor.

SigLIP was trained on texts padded to the full window ("max_length" padding; its text tower pools the last token), so
that is the default padding for the SigLIP family and recorded in the spec; CLIP pads to the longest text of a batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.core.errors import RetrievekitError, require
from retrievekit.encoders.clip import ImageTextEncoder, preprocessing_settings

#: model types trained on max_length-padded texts (transformers' documentation for SigLIP says so explicitly)
_FULL_WINDOW_PADDING = ("siglip", "siglip2")


def _features(output: Any) -> Any:
    """transformers 5 returns the projected embeddings as ``pooler_output`` of a model output; 4.x a tensor."""
    return output if not hasattr(output, "pooler_output") else output.pooler_output


class TransformersClipEncoder(ImageTextEncoder):
    """A transformers image–text model. ``padding``: "max_length" (SigLIP's training) or "longest" (CLIP's);
    default by model type. ``query_prompt`` prefixes text queries (e.g. "a photo of ")."""

    backend = "hf-clip"
    pooling = "clip"

    def __init__(self, model: str, *, query_prompt: str = "", document_prompt: str = "", normalize: bool = True,
                 max_length: int | None = None, padding: str | None = None, device: str | None = None,
                 pooling: str | None = None, modalities: Any = None, image_preprocessing: Any = None) -> None:
        # pooling, modalities and image_preprocessing come back from a stored spec: they are the model's own
        if pooling not in (None, self.pooling):
            raise RetrievekitError(f"the hf-clip backend pools as its model does, not {pooling!r}")
        torch = require("torch", "images")
        require("transformers", "images")
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        local = Path(model).expanduser()
        location = str(local.resolve()) if local.is_dir() else model
        try:
            self.model = AutoModel.from_pretrained(location).eval()
            if not (hasattr(self.model, "get_text_features") and hasattr(self.model, "get_image_features")):
                raise RetrievekitError(f"{model!r} ({type(self.model).__name__}) is not an image-text model: it has "
                                       "no get_text_features/get_image_features; use a text encoder for text "
                                       "collections")
            self.tokenizer = AutoTokenizer.from_pretrained(location)
            self.image_processor = AutoImageProcessor.from_pretrained(location)
        except (OSError, ValueError) as exc:
            raise RetrievekitError(f"cannot load the image-text model {model!r} from {location!r}: {exc}. Give a "
                                   "local folder (save_pretrained) or a hub name reachable from this machine") from exc
        self._torch = torch
        self.device = device or "cpu"
        self.model.to(self.device)
        self.name = location
        self.query_prompt, self.document_prompt, self.normalize = query_prompt, document_prompt, normalize
        config = self.model.config
        model_type = str(getattr(config, "model_type", ""))
        self.padding = padding or ("max_length" if model_type in _FULL_WINDOW_PADDING else "longest")
        if self.padding not in ("max_length", "longest"):
            raise RetrievekitError(f"padding must be 'max_length' or 'longest', got {self.padding!r}")
        positions = getattr(getattr(config, "text_config", config), "max_position_embeddings", None)
        window = max_length or positions or 77
        self.max_length = int(min(window, positions) if positions else window)
        self.image_preprocessing = preprocessing_settings(self.image_processor.to_dict())
        self._dim = int(self._encode_batch(["probe"]).shape[1])

    @property
    def dim(self) -> int:
        return self._dim

    def spec(self) -> dict[str, Any]:
        return {**super().spec(), "padding": self.padding}

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        inputs = self.tokenizer(texts, padding=self.padding, truncation=True, max_length=self.max_length,
                                return_tensors="pt").to(self.device)
        with self._torch.inference_mode():
            return _features(self.model.get_text_features(**inputs)).float().cpu().numpy()

    def _encode_image_batch(self, images: list[Any]) -> np.ndarray:
        inputs = self.image_processor(images=images, return_tensors="pt").to(self.device)
        with self._torch.inference_mode():
            return _features(self.model.get_image_features(**inputs)).float().cpu().numpy()

