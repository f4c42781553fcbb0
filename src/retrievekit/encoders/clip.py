"""Image–text encoders (the CLIP family): a text tower and an image tower that embed into one space, so text
queries find images and images find images. ``ImageTextEncoder`` adds ``encode_images`` to the text ``Encoder``
API; a backend implements one batch of each.

Backends (one module each): ``clip`` here, any sentence-transformers CLIP model (a hub name such as
``clip-ViT-B-32`` or a local folder); ``hf-clip`` (``clip_transformers``), transformers' CLIP, SigLIP and kin;
``open-clip`` (``openclip``), the open_clip library's models. No CLIP weights ship on PyPI, so offline there is no
real model: quality needs a downloaded one (the tests build tiny random ones).

Every image-text spec records the image preprocessing (resize, crop, mean/std) next to the prompts, so an index
says exactly how its pixels were turned into vectors.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from retrievekit.core.errors import RetrievekitError
from retrievekit.core.images import MAX_IMAGE_PIXELS, decode_image, image_source, pillow
from retrievekit.encoders.base import Encoder, normalize_rows

ImageInput = Any  # a path (str | Path), encoded bytes, or a PIL.Image.Image


def load_image(image: ImageInput, *, max_pixels: int = MAX_IMAGE_PIXELS) -> Any:
    """An RGB ``PIL.Image`` from a path, bytes or an image, decoded safely (``core.images.decode_image``: refused
    over ``max_pixels`` before decoding, truncated files fail here); every error names the file."""
    Image = pillow()
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    data, where = image_source(image)
    with decode_image(data, max_pixels=max_pixels, formats=None, where=where) as img:
        return img.convert("RGB")


class ImageTextEncoder(Encoder):
    """An encoder with an image tower too. Texts (queries, captions) go through ``encode``/``encode_queries`` as for
    any encoder; images through ``encode_images``. Both are normalised alike, so their dot products compare."""

    modalities = ("text", "image")
    #: how images become pixel tensors (``preprocessing_settings``), recorded in the spec
    image_preprocessing: dict[str, Any] | None = None

    @abstractmethod
    def _encode_image_batch(self, images: list[Any]) -> np.ndarray:
        """float32 (len(images), dim) for one batch of RGB PIL images."""

    def encode_images(self, images: Sequence[ImageInput], *, batch_size: int = 32, progress: bool = False,
                      max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
        """One vector per image (paths, bytes or PIL images), loaded batch by batch."""

        def encode_batch(batch: list[ImageInput]) -> np.ndarray:
            return self._encode_image_batch([load_image(x, max_pixels=max_pixels) for x in batch])

        return self._in_batches(images, range(len(images)), encode_batch, batch_size=batch_size, progress=progress,
                                desc="embedding images", what="image encoder")

    def spec(self) -> dict[str, Any]:
        return {**super().spec(), "modalities": list(self.modalities), "image_preprocessing": self.image_preprocessing}


_PREPROCESSING_KEYS = ("image_processor_type", "do_resize", "size", "resample", "do_center_crop", "crop_size",
                       "do_rescale", "rescale_factor", "do_normalize", "image_mean", "image_std")


def preprocessing_settings(settings: dict[str, Any],
                           keys: Sequence[str] | None = _PREPROCESSING_KEYS) -> dict[str, Any]:
    """The settings of an image processor (transformers' ``to_dict()``, or open_clip's preprocess config) that decide
    the pixels (``keys``; None: all of them), as plain JSON values (a resampling enum becomes its number, tuples
    lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if hasattr(value, "value") and isinstance(value.value, int):  # an IntEnum such as PIL's Resampling
            return int(value.value)
        return value

    return {key: plain(settings[key]) for key in (settings if keys is None else keys) if settings.get(key) is not None}


class SentenceTransformersClipEncoder(ImageTextEncoder):
    """A sentence-transformers CLIP model (its ``CLIPModel`` module embeds texts and PIL images alike).
    ``query_prompt`` prefixes text queries (e.g. "a photo of "), as CLIP's prompt templates do."""

    backend = "clip"
    pooling = "clip"

    def __init__(self, model: str = "clip-ViT-B-32", *, query_prompt: str = "", document_prompt: str = "",
                 normalize: bool = True, max_length: int | None = None, device: str | None = None,
                 pooling: str | None = None, modalities: Sequence[str] | None = None,
                 image_preprocessing: dict[str, Any] | None = None) -> None:
        # pooling, modalities and image_preprocessing come back from a stored spec; they are the model's own
        if pooling not in (None, self.pooling):
            raise RetrievekitError(f"the clip backend pools as CLIP does, not {pooling!r}")
        from retrievekit.encoders.sentence_transformers import load_sentence_transformer

        self.model, _card = load_sentence_transformer(model, device=device)
        if not any(type(m).__name__ == "CLIPModel" for m in self.model):
            raise RetrievekitError(f"{model!r} is not a sentence-transformers CLIP model (no CLIPModel module); use "
                                   "a text encoder name for text-only collections")
        self.name = model
        self.query_prompt, self.document_prompt = query_prompt, document_prompt
        self.normalize = normalize
        # Texts are truncated to the text tower's window (CLIP: 77 tokens): a tokenizer without a length limit
        # would otherwise pass longer captions to the model, which fails on them.
        config = getattr(getattr(self.model[0], "auto_model", None), "config", None)
        positions = getattr(getattr(config, "text_config", None), "max_position_embeddings", None)
        window = max_length or getattr(self.model, "max_seq_length", None) or positions or 77
        if positions:
            window = min(int(window), int(positions))
        self.model.max_seq_length = self.max_length = int(window)
        processor = getattr(getattr(self.model[0], "processor", None), "image_processor", None)
        self.image_preprocessing = preprocessing_settings(processor.to_dict()) if processor else None
        probe = self.model.encode(["probe"], convert_to_numpy=True, show_progress_bar=False)
        self._dim = int(probe.shape[1])

    @property
    def dim(self) -> int:
        return self._dim

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=len(texts), show_progress_bar=False, convert_to_numpy=True,
                                 normalize_embeddings=False)

    def _encode_image_batch(self, images: list[Any]) -> np.ndarray:
        return self.model.encode(images, batch_size=len(images), show_progress_bar=False, convert_to_numpy=True,
                                 normalize_embeddings=False)


def is_image_text(encoder: Encoder) -> bool:
    return isinstance(encoder, ImageTextEncoder)


def compose_query(image: np.ndarray, text: np.ndarray, weight: float = 0.5) -> np.ndarray:
    """A composed image+text query ("this image, but ..."): the normalised weighted sum ``(1 - weight) * image +
    weight * text`` of normalised vectors (rows), the simple baseline composed-retrieval papers compare against."""
    if not 0.0 <= weight <= 1.0:
        raise RetrievekitError(f"the text weight of a composed query must be in [0, 1], got {weight}")
    image = np.atleast_2d(np.asarray(image, np.float32))
    text = np.atleast_2d(np.asarray(text, np.float32))
    if image.shape != text.shape:
        raise RetrievekitError(f"image and text query vectors differ in shape: {image.shape} vs {text.shape}")
    mixed = (1.0 - weight) * normalize_rows(image.copy()) + weight * normalize_rows(text.copy())
    return normalize_rows(mixed)
