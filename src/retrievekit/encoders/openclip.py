"""Backend ``open-clip``: the open_clip library's image–text models (OpenAI CLIP, LAION/DataComp CLIPs, SigLIP,
MobileCLIP, BiomedCLIP, remote-sensing CLIPs ...), named as open_clip names them:

* ``open-clip:hf-hub:ORG/NAME`` — a hub repository with an ``open_clip_config.json``;
* ``open-clip:ARCH@TAG`` — a built-in architecture with one of its pretrained weights (``open_clip.list_pretrained()``);
* ``open-clip:FOLDER`` — a local folder with ``open_clip_config.json`` and the weights (open_clip's ``local-dir:``).

A bare architecture name is refused: open_clip would build it with random weights, silently.

open_clip needs torchvision, and torchvision's wheels only load beside the torch release they were built for: with
this project's pinned CPU torch (2.13.0) no PyPI torchvision imports, so install a matching pair (e.g. torch 2.14.1
with torchvision 0.29.1) in an environment meant for open_clip. ``benchmarks/check_open_clip.sh`` builds one and
runs this backend's tests there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.core.errors import RetrievekitError, require
from retrievekit.encoders.clip import ImageTextEncoder, preprocessing_settings


def import_open_clip() -> Any:
    try:
        import open_clip
    except Exception as exc:  # ImportError, or torchvision's operator errors beside a mismatched torch
        raise RetrievekitError(
            f"the open-clip backend needs open_clip_torch and a torchvision built for the installed torch ({exc}). "
            "pip install open_clip_torch with a matching torch/torchvision pair (see retrievekit.encoders.openclip); "
            "the clip and hf-clip backends need no torchvision") from None
    return open_clip


def open_clip_source(model: str) -> tuple[str, str | None, str]:
    """(open_clip model name, pretrained tag or None, canonical name for the spec) of a backend model name."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        if not (folder / "open_clip_config.json").is_file():
            raise RetrievekitError(f"{folder} has no open_clip_config.json: not an open_clip model folder")
        resolved = str(folder.resolve())
        return f"local-dir:{resolved}", None, resolved
    if model.startswith("hf-hub:"):
        return model, None, model
    arch, at, tag = model.partition("@")
    if not at or not arch or not tag:
        raise RetrievekitError(f"open-clip model {model!r}: give hf-hub:ORG/NAME, ARCH@PRETRAINED_TAG (see "
                               "open_clip.list_pretrained()) or a local folder; a bare architecture would have "
                               "random weights")
    return arch, tag, model


class OpenClipEncoder(ImageTextEncoder):
    """An open_clip model: ``encode_text`` on its tokenizer's fixed-length token rows, ``encode_image`` on its own
    inference transform. ``query_prompt`` prefixes text queries (open_clip's zero-shot templates, e.g. "a photo of
    ")."""

    backend = "open-clip"
    pooling = "clip"

    def __init__(self, model: str, *, query_prompt: str = "", document_prompt: str = "", normalize: bool = True,
                 max_length: int | None = None, device: str | None = None, pooling: str | None = None,
                 modalities: Any = None, image_preprocessing: Any = None) -> None:
        # pooling, modalities and image_preprocessing come back from a stored spec: they are the model's own
        if pooling not in (None, self.pooling):
            raise RetrievekitError(f"the open-clip backend pools as its model does, not {pooling!r}")
        self._torch = require("torch", "images")
        open_clip = import_open_clip()
        source, pretrained, self.name = open_clip_source(model)
        self.device = device or "cpu"
        try:
            self.model, _, self.preprocess = open_clip.create_model_and_transforms(source, pretrained=pretrained,
                                                                                  device=self.device)
            self.tokenizer = open_clip.get_tokenizer(source)
        except (OSError, ValueError, RuntimeError) as exc:
            raise RetrievekitError(f"cannot load the open_clip model {model!r}: {exc}") from exc
        self.model.eval()
        context = int(getattr(self.tokenizer, "context_length", 0) or getattr(self.model, "context_length", 77))
        if max_length not in (None, context):
            # open_clip text towers take token rows of exactly their context length (padded or cut by the tokenizer)
            raise RetrievekitError(f"{model!r} reads texts of {context} tokens; max_length={max_length} cannot change "
                                   "that")
        self.max_length = context
        self.query_prompt, self.document_prompt, self.normalize = query_prompt, document_prompt, normalize
        from open_clip.model import get_model_preprocess_cfg

        self.image_preprocessing = preprocessing_settings(dict(get_model_preprocess_cfg(self.model)), keys=None)
        self._dim = int(self._encode_batch(["probe"]).shape[1])

    @property
    def dim(self) -> int:
        return self._dim

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts).to(self.device)
        with self._torch.inference_mode():
            return self.model.encode_text(tokens).float().cpu().numpy()

    def _encode_image_batch(self, images: list[Any]) -> np.ndarray:
        pixels = self._torch.stack([self.preprocess(image) for image in images]).to(self.device)
        with self._torch.inference_mode():
            return self.model.encode_image(pixels).float().cpu().numpy()
