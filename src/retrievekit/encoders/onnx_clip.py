"""Backend ``onnx-clip``: a CLIP model's two towers exported to ONNX once, then run without torch.

The first construction for a model loads it with transformers (a sentence-transformers CLIP folder or hub name, as
the ``clip`` backend takes, or a transformers CLIP folder) and exports its text tower (token ids and attention mask
in, ``get_text_features`` out) and its vision tower (pixel values in, ``get_image_features`` out), with dynamic batch
and sequence axes, into a cache folder beside the fast tokenizer and the image preprocessing settings. Later
constructions need only onnxruntime, tokenizers, numpy and Pillow: texts are tokenized by tokenizers and images
preprocessed in numpy exactly as ``CLIPImageProcessor`` does (shortest-edge resize, centre crop, rescale,
normalise). The spec's semantic fields equal those of the ``clip`` backend for the same model, so either encodes
queries for the other's index.

Backend ``onnx-clip-int8``: the same export with both towers' weights quantized to int8 (once, beside the float
files): 4x smaller and 2.5-4x faster on CPU, its vectors within 0.2% cosine of the float ones on a ViT-B/32-shaped
model (benchmarks/run_onnx_clip.py).

The cache folder (``onnx.cache_root``) is keyed, built and replaced atomically by the same helpers as the text ONNX
backend's; a damaged one is exported again.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.core.cpu import usable_cpus
from retrievekit.core.errors import MissingExtraError, RetrievekitError, require
from retrievekit.encoders.clip import ImageTextEncoder, preprocessing_settings
from retrievekit.encoders.onnx import (
    ONNXExportError,
    build_cache_folder,
    cache_key,
    cache_root,
    cpu_session,
    local_model_files,
    quantize_int8,
)
from retrievekit.encoders.registry import model_card
from retrievekit.encoders.sentence_transformers import resolve_model_path

logger = logging.getLogger(__name__)

#: bump when the folder layout or export settings change, so old caches are not reused
CLIP_CACHE_FORMAT = 1
TEXT_FILE = "text.onnx"
VISION_FILE = "vision.onnx"
# sentence-transformers modules an exported CLIP reproduces: the CLIP model itself (legacy CLIPModel, or the
# multimodal Transformer that replaces it) and a final normalisation, which this backend does in numpy anyway
_TOWER_MODULES = {"CLIPModel", "Transformer"}


class ONNXClipEncoder(ImageTextEncoder):
    """A CLIP model run by ONNX Runtime on CPU (float32). Texts are truncated to the text tower's window (CLIP: 77
    tokens); ``query_prompt`` prefixes text queries as for the ``clip`` backend."""

    backend = "onnx-clip"
    pooling = "clip"

    def __init__(self, model: str = "clip-ViT-B-32", *, query_prompt: str = "", document_prompt: str = "",
                 normalize: bool = True, max_length: int | None = None, threads: int | None = None,
                 cache_dir: str | Path | None = None, pooling: str | None = None,
                 modalities: Sequence[str] | None = None, image_preprocessing: dict[str, Any] | None = None) -> None:
        # pooling, modalities and image_preprocessing come back from a stored spec: they are the model's own
        if pooling not in (None, self.pooling):
            raise RetrievekitError(f"the onnx-clip backend pools as CLIP does, not {pooling!r}")
        require("onnxruntime", "onnx")
        require("tokenizers", "onnx")
        require("PIL", "images")
        self.name = model  # as the clip backend names it, so their specs compare equal
        self.query_prompt, self.document_prompt = query_prompt, document_prompt
        self.normalize = normalize
        self.threads = int(threads or usable_cpus())
        self.folder = export_clip(model, cache_dir=cache_dir)
        try:
            self._open(self.folder, max_length)
        except MissingExtraError:  # the quantiser of the int8 variant not installed: nothing wrong with the cache
            raise
        except Exception as exc:  # any unreadable part (JSON, ONNX graph, tokenizer): the cache is damaged
            logger.warning("the ONNX export of %s in %s is damaged (%s); exporting it again", model, self.folder, exc)
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = export_clip(model, cache_dir=cache_dir)
            self._open(self.folder, max_length)

    def _open(self, folder: Path, max_length: int | None) -> None:
        import tokenizers

        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != CLIP_CACHE_FORMAT:
            raise ONNXExportError(f"cache format {meta.get('format')!r}, expected {CLIP_CACHE_FORMAT}")
        window = int(meta["text_window"])
        self.max_length = min(int(max_length or window), window)
        self._dim = int(meta["dim"])
        self.image_preprocessing = dict(meta["image_preprocessing"])
        self._image_steps = ImageSteps.from_settings(self.image_preprocessing)
        self._text = cpu_session(self._tower_file(folder, TEXT_FILE), self.threads)
        self._vision = cpu_session(self._tower_file(folder, VISION_FILE), self.threads)
        self._tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(self.max_length)
        self._tokenizer.enable_padding(pad_id=int(meta["pad_id"]), pad_token=str(meta["pad_token"]))

    def _tower_file(self, folder: Path, name: str) -> Path:
        return folder / name

    @property
    def dim(self) -> int:
        return self._dim

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return self._text.run(None, {"input_ids": ids, "attention_mask": mask})[0]

    def _encode_image_batch(self, images: list[Any]) -> np.ndarray:
        pixels = np.stack([self._image_steps(image) for image in images])
        return self._vision.run(None, {"pixel_values": pixels})[0]


class ONNXClipInt8Encoder(ONNXClipEncoder):
    """The ONNX export with int8 weights in both towers (dynamic quantisation, made once beside the float export)."""

    backend = "onnx-clip-int8"

    def _tower_file(self, folder: Path, name: str) -> Path:
        target = folder / name.replace(".onnx", ".int8.onnx")
        if not target.exists():
            quantize_int8(folder / name, target)
        return target


class ImageSteps:
    """``CLIPImageProcessor``'s preprocessing in Pillow and numpy: resize (the shortest edge to ``shortest_edge``,
    or to ``height`` x ``width``) with Pillow's ``resample`` filter on the 8-bit image, centre crop (zero padding
    where the image is smaller), rescale, normalise per channel; channels first, float32."""

    def __init__(self, *, shortest_edge: int | None, resize_to: tuple[int, int] | None, resample: int,
                 crop: tuple[int, int] | None, rescale: float | None, mean: Sequence[float] | None,
                 std: Sequence[float] | None) -> None:
        self.shortest_edge, self.resize_to, self.resample = shortest_edge, resize_to, resample
        self.crop, self.rescale = crop, rescale
        self.mean = None if mean is None else np.asarray(mean, np.float32)
        self.std = None if std is None else np.asarray(std, np.float32)

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> ImageSteps:
        """From an image processor's settings (``clip.preprocessing_settings``); ONNXExportError for a size or crop
        this class does not reproduce."""
        size = (settings.get("size") or {}) if settings.get("do_resize", True) else {}
        if not isinstance(size, dict) or (size and set(size) not in ({"shortest_edge"}, {"height", "width"})):
            raise ONNXExportError(f"image size {size!r} is not supported by the onnx-clip backend (it reproduces "
                                  "{'shortest_edge': N} and {'height': H, 'width': W})")
        crop = settings.get("crop_size") if settings.get("do_center_crop", True) else None
        if crop is not None and not (isinstance(crop, dict) and set(crop) == {"height", "width"}):
            raise ONNXExportError(f"crop size {crop!r} is not supported by the onnx-clip backend")
        normalize = settings.get("do_normalize", True)
        return cls(shortest_edge=size.get("shortest_edge"),
                   resize_to=(int(size["height"]), int(size["width"])) if "height" in size else None,
                   resample=int(settings.get("resample", 3)),
                   crop=(int(crop["height"]), int(crop["width"])) if crop else None,
                   rescale=float(settings.get("rescale_factor", 1 / 255)) if settings.get("do_rescale", True) else None,
                   mean=settings.get("image_mean") if normalize else None,
                   std=settings.get("image_std") if normalize else None)

    def __call__(self, image: Any) -> np.ndarray:
        """(3, height, width) float32 pixels of an RGB PIL image."""
        width, height = image.size
        if self.shortest_edge is not None:
            # transformers' get_resize_output_image_size: the long edge is truncated, not rounded
            short, long = (width, height) if width <= height else (height, width)
            new_short, new_long = self.shortest_edge, int(self.shortest_edge * long / short)
            size = (new_short, new_long) if width <= height else (new_long, new_short)
            image = image.resize(size, resample=self.resample)
        elif self.resize_to is not None:
            image = image.resize((self.resize_to[1], self.resize_to[0]), resample=self.resample)
        pixels = np.asarray(image)
        if self.crop is not None:
            pixels = _center_crop(pixels, *self.crop)
        out = pixels.astype(np.float64) * self.rescale if self.rescale is not None else pixels
        out = out.astype(np.float32)
        if self.mean is not None and self.std is not None:
            out = (out - self.mean) / self.std
        return np.ascontiguousarray(out.transpose(2, 0, 1))


def _center_crop(pixels: np.ndarray, crop_height: int, crop_width: int) -> np.ndarray:
    """transformers' center_crop on (height, width, channels): the top-left corner rounds down; an image smaller
    than the crop is centred on zeros first (its offset rounding up)."""
    height, width = pixels.shape[:2]
    if height < crop_height or width < crop_width:
        padded = np.zeros((max(height, crop_height), max(width, crop_width), pixels.shape[2]), pixels.dtype)
        top, left = -(-(padded.shape[0] - height) // 2), -(-(padded.shape[1] - width) // 2)
        padded[top:top + height, left:left + width] = pixels
        pixels, height, width = padded, padded.shape[0], padded.shape[1]
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    return pixels[top:top + crop_height, left:left + crop_width]


# -- export and cache -------------------------------------------------------------------------------------------
def export_clip(model: str, *, cache_dir: str | Path | None = None) -> Path:
    """The cache folder holding the ONNX export of CLIP ``model``; exports it first if no valid one is cached."""
    location = resolve_model_path(model, model_card(model))
    files = local_model_files(location)
    if files is None:  # a hub model not downloaded yet: fetch it so the key can hash its files
        files = _download(model, location)
    folder = cache_root(cache_dir) / cache_key(model, location, files, kind=f"clip{CLIP_CACHE_FORMAT}")
    return build_cache_folder(folder, lambda tmp: _export_into(model, files, tmp), what=model)


def cached_clip_export(model: str, *, cache_dir: str | Path | None = None) -> Path | None:
    """The cache folder of a finished export of ``model``, or None; never exports and never imports torch."""
    location = resolve_model_path(model, model_card(model))
    files = local_model_files(location)
    if files is None:
        return None
    folder = cache_root(cache_dir) / cache_key(model, location, files, kind=f"clip{CLIP_CACHE_FORMAT}")
    return folder if (folder / "meta.json").exists() else None


def _download(model: str, location: str) -> Path:
    hub = require("huggingface_hub", "images")
    try:
        return Path(hub.snapshot_download(location))
    except Exception as exc:  # offline, unknown repository, no access: all mean the model is not available
        raise ONNXExportError(f"cannot find the CLIP model {model!r}: not a local folder, and downloading "
                              f"{location!r} failed ({exc})") from exc


def clip_folder(model: str, files: Path) -> Path:
    """The folder of the transformers CLIP model inside ``files``: the folder the sentence-transformers CLIP module
    points at, or ``files`` itself for a transformers folder. ONNXExportError if it is not a CLIP model."""
    modules_file = files / "modules.json"
    folder = files
    if modules_file.exists():
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
        if not kinds or kinds[0] not in _TOWER_MODULES or not set(kinds[1:]) <= {"Normalize"}:
            raise ONNXExportError(f"{model!r} is not a CLIP model: its sentence-transformers modules are {kinds}; the "
                                  "onnx-clip backend exports a CLIPModel (optionally followed by Normalize)")
        folder = files / str(modules[0].get("path", ""))
    config_file = folder / "config.json"
    try:
        model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as exc:
        raise ONNXExportError(f"{model!r} is not a CLIP model: cannot read {config_file} ({exc})") from exc
    if model_type != "clip":
        raise ONNXExportError(f"{model!r} is not a CLIP model (its {config_file} says model_type {model_type!r}); "
                              "the onnx-clip backend exports CLIP models only")
    return folder


def _export_into(model: str, files: Path, folder: Path) -> None:
    started = time.perf_counter()
    hf_folder = clip_folder(model, files)
    torch = require("torch", "images")
    require("transformers", "images")
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    hf = CLIPModel.from_pretrained(hf_folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(hf_folder)
    processor = AutoImageProcessor.from_pretrained(hf_folder)
    backend_tokenizer = getattr(tokenizer, "backend_tokenizer", None)
    if backend_tokenizer is None:
        raise ONNXExportError(f"cannot export {model!r}: the onnx-clip backend needs a fast (Rust) tokenizer")
    image_settings = preprocessing_settings(processor.to_dict())
    steps = ImageSteps.from_settings(image_settings)  # refuses settings it cannot reproduce before exporting
    if hasattr(hf, "set_attn_implementation"):
        try:  # eager attention traces to plain ops; the fused kernels' shortcuts can depend on the example input
            hf.set_attn_implementation("eager")
        except (ValueError, AttributeError, NotImplementedError):
            logger.debug("keeping the model's attention implementation for export")

    def features(output: Any) -> Any:  # transformers 5 returns a model output, 4.x the projected tensor
        return getattr(output, "pooler_output", output)

    class Tower(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self, clip: Any) -> None:
            super().__init__()
            self.clip = clip  # a submodule, so the tracer exports its weights as parameters

    class TextTower(Tower):
        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return features(self.clip.get_text_features(input_ids=input_ids, attention_mask=attention_mask))

    class VisionTower(Tower):
        def forward(self, pixel_values: Any) -> Any:
            return features(self.clip.get_image_features(pixel_values=pixel_values))

    # two texts of different length, so the traced graph handles padding
    window = int(hf.config.text_config.max_position_embeddings)
    texts = tokenizer(["a photo", "a longer example caption for tracing the padded path"], padding=True,
                      truncation=True, max_length=window, return_tensors="pt")
    side = steps.crop or steps.resize_to or (steps.shortest_edge, steps.shortest_edge)
    pixels = torch.zeros((2, 3, *side), dtype=torch.float32)
    import warnings

    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and deprecation chatter
            torch.onnx.export(TextTower(hf), (texts["input_ids"], texts["attention_mask"]), str(folder / TEXT_FILE),
                              input_names=["input_ids", "attention_mask"], output_names=["text_embeds"],
                              dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                            "attention_mask": {0: "batch", 1: "sequence"},
                                            "text_embeds": {0: "batch"}}, opset_version=17, dynamo=False)
            torch.onnx.export(VisionTower(hf), (pixels,), str(folder / VISION_FILE), input_names=["pixel_values"],
                              output_names=["image_embeds"],
                              dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
                              opset_version=17, dynamo=False)
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise ONNXExportError(f"cannot export the CLIP model {model!r} to ONNX: {type(exc).__name__}: "
                              f"{first_line}") from exc
    backend_tokenizer.save(str(folder / "tokenizer.json"))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    meta = {"format": CLIP_CACHE_FORMAT, "source": str(model), "dim": int(hf.config.projection_dim),
            "text_window": window,
            "pad_id": int(pad_id or 0), "pad_token": str(tokenizer.convert_ids_to_tokens(int(pad_id or 0))),
            "image_preprocessing": image_settings}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")  # last: marks it finished
    logger.info("exported CLIP %s to ONNX in %.1fs", model, time.perf_counter() - started)

