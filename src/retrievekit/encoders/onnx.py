"""ONNX Runtime backend: a sentence-transformers model exported once, then run without torch.

The first construction for a model loads it with sentence-transformers, exports its transformer (token ids in,
hidden states out, dynamic batch and sequence axes) with ``torch.onnx.export`` and writes the export, the fast
tokenizer and the encoder defaults into one cache folder. Later constructions only need onnxruntime and
tokenizers. Pooling and normalisation run in numpy, so the spec's semantic fields are those of
``SentenceTransformerEncoder`` for the same model and either backend can encode queries for the other's index.

Cache folder: ``cache_dir/<key>/``, else ``$RETRIEVEKIT_CACHE/onnx/<key>/``, else ``~/.cache/retrievekit/onnx/<key>/``.
The key hashes the model's files (path, size, mtime) and the exporting library versions, so a changed model or
exporter makes a new export. Every file is built under a temporary name and renamed into place, so a crash never
leaves a half-written file that a later run would use.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import inspect
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.core.cpu import physical_cores
from retrievekit.core.errors import RetrievekitError, require
from retrievekit.encoders.base import Encoder, check_compatible
from retrievekit.encoders.registry import DEFAULT_MODEL, ModelCard, model_card
from retrievekit.encoders.sentence_transformers import canonical_name, resolve_model_path

logger = logging.getLogger(__name__)

#: bump when the folder layout or export settings change, so old caches are not reused
CACHE_FORMAT = 1
FLOAT_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"  # the "fused" recipe: fused by ORT's transformer optimizer, then quantised
# Before issue 18 INT8_FILE held the plain recipe; this marker, written after it, says the file is the fused one, so
# an older cache's file is re-quantised once instead of being taken for the faster recipe.
INT8_RECIPE_MARKER = "model.int8.recipe"
INT8_PLAIN_FILE = "model.int8-plain.onnx"  # the "plain" recipe: the export quantised as it is
#: which int8 recipe onnx-int8 uses: "plain" (default: the export quantised as is) or "fused"
INT8_RECIPE_ENV = "RETRIEVEKIT_INT8_RECIPE"
INT8_RECIPES = ("fused", "plain")
# model types whose graphs ORT's "bert" optimizer fuses (attention, embedding + LayerNorm, bias + GELU)
_BERT_LIKE = {"bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert", "mpnet"}
POOLINGS = ("mean", "cls", "max", "lasttoken")
# ONNX Runtime encodes fastest in small batches (a batch's activations stay in cache), torch the other way round:
# the token_budget_sweep of benchmarks/results/encoding-speed.json (2 Xeon cores with AMX) and of
# encoding-speed-amd-epyc.json (2 Zen 4 cores): int8 MiniLM on SciFact passages; torch fp32 at 512 / 2,048 / 8,192.
ONNX_TOKEN_BUDGET = 512
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Modules whose work the exported graph plus numpy pooling reproduces; anything else (Dense, LayerNorm, ...) would
# be silently dropped, so such models are refused.
_SUPPORTED_MODULES = {"Transformer", "Pooling", "Normalize"}


class ONNXExportError(RetrievekitError):
    """The model cannot be exported to, or run as, the ONNX backend."""


def default_cache_root() -> Path:
    root = os.environ.get("RETRIEVEKIT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "retrievekit") / "onnx"


class ONNXEncoder(Encoder):
    """A sentence-transformers model run by ONNX Runtime on CPU (float32)."""

    backend = "onnx"
    _model_file = FLOAT_FILE

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        pooling: str | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        threads: int | None = None,
        cache_dir: str | Path | None = None,
        token_budget: int | None = None,
        parallel_batches: int | None = None,
    ) -> None:
        require("onnxruntime", "onnx")
        self.token_budget = int(token_budget or ONNX_TOKEN_BUDGET)
        tokenizers = require("tokenizers", "onnx")
        card = model_card(model)
        self.name = canonical_name(model, card)
        self.folder = export_model(model, cache_dir=cache_dir, card=card)
        meta = json.loads((self.folder / "meta.json").read_text(encoding="utf-8"))
        # Same precedence as SentenceTransformerEncoder: explicit argument, else what it derived for this model.
        self.query_prompt = query_prompt if query_prompt is not None else meta["query_prompt"]
        self.document_prompt = document_prompt if document_prompt is not None else meta["document_prompt"]
        self.pooling = pooling or meta["pooling"]
        if self.pooling not in POOLINGS:
            raise ONNXExportError(f"pooling {self.pooling!r} is not supported by the onnx backend; "
                                  f"choose one of {', '.join(POOLINGS)}")
        self.normalize = normalize if normalize is not None else bool(meta["normalize"])
        self.max_length = int(max_length or meta["max_length"])
        self._dim = int(meta["dim"])
        self._lowercase = bool(meta.get("do_lower_case", False))

        # one intra-op thread per physical core: hyper-threads share the vector units a matmul saturates
        self.threads = int(threads or physical_cores())
        self._model_path = self._ensure_model_file()
        self._session = cpu_session(self._model_path, self.threads)
        # Many batches (documents) run as that many batches at once, each on one core, through one single-threaded
        # session (its run is thread-safe and releases the GIL); a lone batch (a query) keeps every core. A batch
        # split across cores waits for the slowest at each of the graph's ~300 small ops: on 2 Xeon cores, int8
        # MiniLM encoded SciFact passages 1.42x faster this way (benchmarks/results/encoding-speed.json).
        self.parallel_batches = int(parallel_batches) if parallel_batches is not None else self.threads
        if self.parallel_batches < 1:
            raise RetrievekitError(f"parallel_batches must be at least 1, got {parallel_batches}")
        self._worker_session: Any = None
        self._worker_lock = threading.Lock()
        self._local = threading.local()
        self._inputs = [i.name for i in self._session.get_inputs()]

        self._tokenizer = tokenizers.Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(self.max_length)
        self._tokenizer.enable_padding(pad_id=int(meta["pad_id"]), pad_token=str(meta["pad_token"]))
        # token-budget batching tokenises every text once, unpadded, and pads each batch itself
        self._pad_id = int(meta["pad_id"])
        self._budget_tokenizer = tokenizers.Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self._budget_tokenizer.enable_truncation(self.max_length)
        self._budget_tokenizer.no_padding()
        # spans are for whole texts, without the batch settings above
        self._span_tokenizer = tokenizers.Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self._span_tokenizer.no_truncation()
        self._span_tokenizer.no_padding()

    def _ensure_model_file(self) -> Path:
        return self.folder / FLOAT_FILE

    def _parallel_batches(self) -> int:
        return self.parallel_batches

    def _enter_worker(self) -> None:
        with self._worker_lock:
            if self._worker_session is None:
                self._worker_session = cpu_session(self._model_path, 1)
        self._local.session = self._worker_session

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        session = getattr(self._local, "session", None) or self._session
        return session.run(None, feeds)[0]

    @property
    def dim(self) -> int:
        return self._dim

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        if self._lowercase:
            texts = [t.lower() for t in texts]
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        hidden = self._run(feeds)
        return pool(hidden, mask, self.pooling)

    def _tokenize(self, texts: list[str]) -> tuple[Any, list[int]]:
        if self._lowercase:
            texts = [t.lower() for t in texts]
        encodings = self._budget_tokenizer.encode_batch(texts)
        return encodings, [len(e.ids) for e in encodings]

    def _encode_tokens(self, tokens: Any, idx: list[int]) -> np.ndarray:
        batch = [tokens[i] for i in idx]
        width = max(len(e.ids) for e in batch)
        ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        types = np.zeros((len(batch), width), dtype=np.int64)
        for row, e in enumerate(batch):  # right padding, as the padded tokenizer of _encode_batch does
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
            types[row, : len(e.ids)] = e.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = types
        hidden = self._run(feeds)
        return pool(hidden, mask, self.pooling)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        if self._lowercase:
            text = text.lower()
        return [tuple(span) for span in self._span_tokenizer.encode(text, add_special_tokens=False).offsets]


def cpu_session(path: Path, threads: int) -> Any:
    """An ONNX Runtime session running ``path`` on the CPU with ``threads`` intra-op threads."""
    ort = require("onnxruntime", "onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads sleep instead of spinning: on a busy 2-core machine spinning cost 30% more CPU and
    # 15-30% more wall time encoding docstrings, and a batch of 32 texts is long enough that waking costs nothing.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


class ONNXInt8Encoder(ONNXEncoder):
    """The ONNX export with int8 weights (dynamic quantisation): smaller and faster, vectors within ~1% cosine.

    The default recipe ("plain") quantises the export as it is: MatMulInteger on u8 activations x s8 weights (the
    VNNI dot-product form). "fused" (``RETRIEVEKIT_INT8_RECIPE=fused`` or ``recipe="fused"``) first runs ONNX
    Runtime's transformer optimizer (fused attention, embedding + LayerNorm, skip + LayerNorm, bias + GELU), so the
    graph runs QAttention; it was no faster on 2 Zen 4 cores (benchmarks/results/encoding-speed-amd-epyc.json: SciFact
    passages 54.1 vs 54.3 docs/s; the first demo, export included, 42.4 vs 36.3 s) nor on 2 Xeon cores with AMX
    (encoding-speed.json: 91.9 vs 103.1 docs/s; 30.7 vs 26.3 s), so it is not the default."""

    backend = "onnx-int8"

    def __init__(self, model: str = DEFAULT_MODEL, *, recipe: str | None = None, **options: Any) -> None:
        recipe = recipe or os.environ.get(INT8_RECIPE_ENV) or "plain"
        if recipe not in INT8_RECIPES:
            raise ONNXExportError(f"unknown int8 recipe {recipe!r} (from the recipe option or {INT8_RECIPE_ENV}); "
                                  f"choose one of {', '.join(INT8_RECIPES)}")
        self.recipe = recipe
        self._source_model = model
        super().__init__(model, **options)

    def _ensure_model_file(self) -> Path:
        if self.recipe == "fused":
            target, marker = self.folder / INT8_FILE, self.folder / INT8_RECIPE_MARKER
            if target.exists() and marker.exists():
                return target
            shape = transformer_shape(self._source_model)
            if shape is not None:
                quantize_int8(self.folder / FLOAT_FILE, target, fuse=shape)
                tmp = marker.with_name(f".{marker.name}.{uuid.uuid4().hex}.tmp")
                tmp.write_text(json.dumps({"recipe": "fused", **shape}), encoding="utf-8")
                os.replace(tmp, marker)
                return target
            logger.info("int8 %s: no BERT-like config to fuse attention by; quantising the export as it is",
                        self.name)
        target = self.folder / INT8_PLAIN_FILE
        if not target.exists():
            quantize_int8(self.folder / FLOAT_FILE, target)
        return target


def transformer_shape(model: str) -> dict[str, Any] | None:
    """``{"model_type", "num_heads", "hidden_size"}`` of a BERT-like model from its config.json, which the
    transformer optimizer needs to fuse attention; None for other architectures or when no config is found."""
    card = model_card(model)
    files = local_model_files(resolve_model_path(model, card))
    config_file = files / "config.json" if files is not None else None
    if config_file is None or not config_file.exists():
        return None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    heads = config.get("num_attention_heads", config.get("n_heads"))
    hidden = config.get("hidden_size", config.get("dim"))
    if config.get("model_type") not in _BERT_LIKE or not isinstance(heads, int) or not isinstance(hidden, int):
        return None
    return {"model_type": config["model_type"], "num_heads": heads, "hidden_size": hidden}


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Pool token states (batch, seq, dim) to (batch, dim) over the real tokens of ``mask`` (batch, seq)."""
    m = mask.astype(hidden.dtype)[:, :, None]
    if mode == "mean":
        return (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return np.where(m > 0, hidden, -np.inf).max(axis=1)
    if mode == "lasttoken":
        # the last real token, wherever the padding is
        last = mask.shape[1] - 1 - np.argmax(mask[:, ::-1] > 0, axis=1)
        return hidden[np.arange(len(hidden)), last]
    raise ONNXExportError(f"unknown pooling {mode!r}; choose one of {', '.join(POOLINGS)}")


# -- the ONNX twin of a sentence-transformers index ---------------------------------------------------------------
# Loading torch and a sentence-transformers model costs seconds per process; the ONNX export of the same model
# computes the same function (see the module docstring), so queries against such an index are encoded by the
# export when one is cached. Exporting needs torch once, which `index --dense` and the demo pay up front.
_RUNTIME = ("onnxruntime", "tokenizers")
_EXPORTER = ("onnx", "torch", "sentence_transformers")
_TWIN_OPTIONS = ("query_prompt", "document_prompt", "pooling", "normalize", "max_length")


def _installed(modules: tuple[str, ...]) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def _sentence_transformers_model(spec: Mapping[str, Any]) -> str | None:
    if spec.get("backend", "sentence-transformers") != "sentence-transformers":
        return None
    return str(spec.get("model") or DEFAULT_MODEL)


def query_twin(spec: Mapping[str, Any], *, cache_dir: str | Path | None = None) -> ONNXEncoder | None:
    """An ONNX encoder equal to the sentence-transformers encoder that ``spec`` (an index's stored spec) describes,
    built from a cached export without importing torch. None when ``spec`` is another backend, onnxruntime is not
    installed or no export is cached: the caller then loads the indexed encoder itself."""
    model = _sentence_transformers_model(spec)
    if model is None or not _installed(_RUNTIME):
        return None
    try:
        if cached_export(model, cache_dir=cache_dir) is None:
            return None
        twin = ONNXEncoder(model, cache_dir=cache_dir, **{k: spec[k] for k in _TWIN_OPTIONS if k in spec})
        check_compatible(dict(spec), twin.spec())
        if spec.get("dim") is not None and twin.dim != spec["dim"]:
            return None
    except Exception as exc:  # a damaged or foreign cache must never break a search: the indexed encoder still works
        logger.warning("not using the cached ONNX export of %s for queries (%s); loading the indexed encoder",
                       model, exc)
        return None
    return twin


def ensure_query_twin(spec: Mapping[str, Any], *, cache_dir: str | Path | None = None) -> Path | None:
    """Export the ONNX twin of a sentence-transformers index's encoder (once; needs torch) so that later searches
    encode queries without torch. Returns its cache folder, or None when that is not possible (another backend,
    the onnx extra missing, a model the export cannot reproduce); searching then works as before, only slower."""
    model = _sentence_transformers_model(spec)
    if model is None or not _installed(_RUNTIME + _EXPORTER):
        return None
    try:
        return export_model(model, cache_dir=cache_dir)
    except Exception as exc:  # optional speed-up: never fail the indexing that asked for it
        logger.info("no ONNX export of %s for fast queries: %s", model, exc)
        return None


# -- export and cache -------------------------------------------------------------------------------------------
def cached_export(model: str = DEFAULT_MODEL, *, cache_dir: str | Path | None = None,
                  card: ModelCard | None = None) -> Path | None:
    """The cache folder of a finished ONNX export of ``model``, or None; never exports and never imports torch."""
    card = card if card is not None else model_card(model)
    location = resolve_model_path(model, card)
    files = local_model_files(location)
    if files is None:
        return None
    folder = cache_root(cache_dir) / cache_key(canonical_name(model, card), location, files)
    return folder if (folder / "meta.json").exists() else None


def export_model(model: str = DEFAULT_MODEL, *, cache_dir: str | Path | None = None,
                 card: ModelCard | None = None) -> Path:
    """The cache folder holding the ONNX export of ``model``; exports it first if no valid one is cached."""
    card = card if card is not None else model_card(model)
    location = resolve_model_path(model, card)
    files = local_model_files(location)
    if files is None:
        # a hub model not downloaded yet: fetch it so the key can hash its files
        _load_for_export(model)
        files = local_model_files(location)
    folder = cache_root(cache_dir) / cache_key(canonical_name(model, card), location, files)
    return build_cache_folder(folder, lambda tmp: _export_into(model, tmp), what=model)


def build_cache_folder(folder: Path, build: Callable[[Path], None], *, what: str) -> Path:
    """``folder`` filled by ``build(tmp)`` in a temporary sibling and renamed into place, unless it is finished
    already. Finished means it holds ``meta.json``, which ``build`` writes last: a crash never leaves a
    half-written export that a later run would use."""
    if (folder / "meta.json").exists():
        return folder
    if folder.exists():  # left by something other than this function's rename: do not trust it
        shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared like any ~/.cache folder
        build(tmp)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "meta.json").exists():
                raise
            logger.debug("another process exported %s first", what)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def cache_root(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()


def _load_for_export(model: str) -> Any:
    from retrievekit.encoders.sentence_transformers import SentenceTransformerEncoder

    return SentenceTransformerEncoder(model)


def _export_into(model: str, folder: Path) -> None:
    torch = require("torch", "dense")
    started = time.perf_counter()
    st_encoder = _load_for_export(model)
    st = st_encoder.model
    modules = [type(m).__name__ for m in st]
    if not modules or modules[0] != "Transformer" or not set(modules) <= _SUPPORTED_MODULES:
        raise ONNXExportError(f"cannot export {model!r} to ONNX: its modules are {modules}; the onnx backend "
                              f"reproduces only {sorted(_SUPPORTED_MODULES)} (use the sentence-transformers backend)")
    transformer = st[0]
    tokenizer = transformer.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise ONNXExportError(f"cannot export {model!r}: the onnx backend needs a fast (Rust) tokenizer")
    hf = transformer.auto_model.eval()
    hidden_size = int(getattr(hf.config, "hidden_size", st_encoder.dim))
    if hidden_size != st_encoder.dim:
        raise ONNXExportError(f"cannot export {model!r}: hidden size {hidden_size} differs from the embedding "
                              f"dimension {st_encoder.dim}")
    if hasattr(hf, "set_attn_implementation"):
        try:  # eager attention traces to plain ops; the fused kernels' shortcuts can depend on the example input
            hf.set_attn_implementation("eager")
        except (ValueError, AttributeError, NotImplementedError):
            logger.debug("keeping the model's attention implementation for export")
    accepted = inspect.signature(hf.forward).parameters
    input_names = [n for n in _INPUTS if n != "token_type_ids"
                   or (n in tokenizer.model_input_names and n in accepted)]

    class _Hidden(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(input_names, args))).last_hidden_state

    # two texts of different length, so the traced graph handles padding
    example = tokenizer(["retrievekit export", "a longer example sentence for tracing the padded path"],
                        padding=True, return_tensors="pt")
    args = tuple(example[n] for n in input_names)
    axes = {n: {0: "batch", 1: "sequence"} for n in [*input_names, "last_hidden_state"]}
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter
        torch.onnx.export(_Hidden(hf), args, str(folder / FLOAT_FILE), input_names=input_names,
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False)
    tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
    meta = {**st_encoder.spec(), "format": CACHE_FORMAT, "source": str(model), "inputs": input_names,
            "pad_id": int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0),
            "pad_token": str(tokenizer.pad_token or "[PAD]"),
            "do_lower_case": bool(getattr(transformer, "do_lower_case", False))}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    logger.info("exported %s to ONNX in %.1fs", model, time.perf_counter() - started)


def quantize_int8(source: Path, target: Path, *, fuse: Mapping[str, Any] | None = None) -> None:
    """Dynamic int8 quantisation of the weights (embeddings and matrix multiplications), per output channel, s8
    weights (u8 activations x s8 weights is what VNNI's VPDPBUSD and MLAS's fast int8 kernels take; u8 weights
    measured 11% slower here). With ``fuse`` (``transformer_shape``), ORT's transformer optimizer fuses the graph
    first, so attention is one QAttention op instead of ~20 float ops around two MatMuls.

    Per-channel weight scales matter: with one scale per tensor, MiniLM's outlier columns cost up to 10% cosine
    (min 0.90 on SciFact passages); per channel the minimum is 0.991 (mean 0.995) at the same speed.
    """
    quantization = require("onnxruntime.quantization", "onnx")
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    fused = target.with_name(f".{target.name}.{uuid.uuid4().hex}.fused.tmp")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = [logging.getLogger(n) for n in ("onnxruntime", "onnxruntime.transformers", "fusion_base")]
    quiet_levels = [q.level for q in quiet]
    try:
        root.setLevel(logging.ERROR)  # its advice to pre-process the model is for image models, not ours
        for q in quiet:
            q.setLevel(logging.ERROR)  # the optimizer logs every fusion it tries
        if fuse is not None:
            from onnxruntime.transformers import optimizer

            optimized = optimizer.optimize_model(str(source), model_type="bert", num_heads=int(fuse["num_heads"]),
                                                 hidden_size=int(fuse["hidden_size"]), opt_level=0)
            stats = optimized.get_fused_operator_statistics()
            logger.info("fused %s for int8: %s", source.name, {k: v for k, v in stats.items() if v})
            optimized.save_model_to_file(str(fused))
            source = fused
        # the fused ops are ORT contrib ops that ONNX shape inference cannot type: their outputs are float
        quantization.quantize_dynamic(str(source), str(tmp), weight_type=quantization.QuantType.QInt8,
                                      per_channel=True, extra_options={"DefaultTensorType": 1})
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        fused.unlink(missing_ok=True)
        # the quantiser calls logging.warning(), which configures the root logger as a side effect
        root.handlers[:] = handlers
        root.setLevel(level)
        for q, quiet_level in zip(quiet, quiet_levels):
            q.setLevel(quiet_level)


def local_model_files(location: str) -> Path | None:
    """The folder holding the model's files: the location itself, or its snapshot in the Hugging Face cache."""
    path = Path(location)
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(location, local_files_only=True))
    except Exception:  # not cached, not a hub name, or no huggingface_hub: all mean "no local files"
        return None


def cache_key(name: str, location: str, files: Path | None, *, kind: str = "") -> str:
    """The cache folder name of an export of ``name``: its files, the exporting libraries and ``kind`` (what is
    exported; empty for this module's text encoders, whose existing caches keep their key)."""
    h = hashlib.sha256(f"{CACHE_FORMAT}\0{location}\0".encode())
    if kind:
        h.update(f"{kind}\0".encode())
    if files is not None:
        for f in sorted(p for p in files.rglob("*") if p.is_file()):
            st = f.stat()
            h.update(f"{f.relative_to(files)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    for package in ("torch", "onnx", "transformers", "sentence-transformers"):
        h.update(f"{package}={_version(package)}\0".encode())
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", name.rstrip("/").split("/")[-1])[:60] or "model"
    return f"{readable}-{h.hexdigest()[:16]}"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "none"
