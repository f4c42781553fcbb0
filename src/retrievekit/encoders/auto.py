"""The numeric path a sentence-transformers encoder runs on: fp32 torch, bf16 torch or the model's int8 ONNX export,
chosen per CPU at run time and guarded by a quality check.

What a vector means is fixed by the encoder's spec (model, prompts, pooling, ...), which indexes store; how the
arithmetic is done is not part of it. On the first bulk encode (``AUTO_MIN_TEXTS`` texts or more in one call), the
encoder encodes a sample of that workload with fp32 and with every faster path this CPU has the instructions for
(int8 dot products — VNNI, AMX — for the int8 export; native bf16 — AVX512_BF16, AMX — for bf16), and keeps the
fastest path whose vectors are close enough to fp32 (mean cosine over the sample at least ``MIN_COSINE``, every
text at least ``MIN_COSINE_FLOOR``); if none is, fp32, with the reason. On AMX, where bf16 is the fast path, a
bf16 that passes at ``AMX_BF16_ENOUGH`` or more spares the int8 trial its export (unless that is cached already).
The decision (and the int8 export) is cached on disk per model, library versions and CPU, so later processes skip
the check. Smaller encodes — queries, a
handful of documents — run fp32 until a decision exists.

Force a path with ``RETRIEVEKIT_ENCODER_PATH=fp32|bf16|onnx-int8`` (or ``precision=`` on the encoder); ``auto``
(the default) chooses. A forced path skips the quality check.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retrievekit.core.cpu import CPUInfo, cpu_info
from retrievekit.core.errors import RetrievekitError

if TYPE_CHECKING:
    from retrievekit.encoders.sentence_transformers import SentenceTransformerEncoder

logger = logging.getLogger(__name__)

PATH_ENV = "RETRIEVEKIT_ENCODER_PATH"
PATHS = ("fp32", "bf16", "onnx-int8")
CHOICES = ("auto", *PATHS)
#: the sample's vectors must be this close (mean cosine) to their fp32 vectors ...
MIN_COSINE = 0.99
#: ... and no single text further than this: int8 MiniLM has a mean of 0.995 on SciFact passages but a tail down to
#: ~0.985 that costs no measurable nDCG, so a minimum of 0.99 would reject it or not depending on the sample drawn
MIN_COSINE_FLOOR = 0.98
SAMPLE_TEXTS = 32
#: on AMX, bf16 runs on the tile units while ONNX Runtime's int8 kernels do not (encoding-speed.json, 2 Xeon cores:
#: bf16 3.40x fp32, the best int8 2.88x); once bf16 passes at this speed-up, the int8 trial is skipped unless its
#: export is already cached, since exporting and quantising are most of a first decision's time
AMX_BF16_ENOUGH = 2.0
#: encodes smaller than this never trigger a decision: the check costs seconds and the export more
AUTO_MIN_TEXTS = 256
#: bump when the decision's inputs or meaning change, so old decisions are not reused
DECISION_FORMAT = 1

#: runs a batch of texts on one path: vectors, not yet normalised
PathRunner = Callable[[list[str]], np.ndarray]


class EncoderPathError(RetrievekitError):
    """A numeric path was asked for that does not exist."""


def _fp32(encoder: SentenceTransformerEncoder) -> PathRunner:
    return lambda texts: encoder.encode_on("fp32", texts)


def _bf16(encoder: SentenceTransformerEncoder) -> PathRunner:
    encoder.prepare_bf16()
    return lambda texts: encoder.encode_on("bf16", texts)


def _int8(encoder: SentenceTransformerEncoder) -> PathRunner:
    encoder.prepare_int8()
    return lambda texts: encoder.encode_on("onnx-int8", texts)


#: how each path is made ready (export, quantise, convert) and run; tests swap in a broken one
BUILDERS: dict[str, Callable[[SentenceTransformerEncoder], PathRunner]] = {
    "fp32": _fp32, "bf16": _bf16, "onnx-int8": _int8}


def requested_path(option: str | None = None) -> str:
    """The path asked for: the encoder's ``precision`` option, else ``RETRIEVEKIT_ENCODER_PATH``, else auto."""
    value = (option or os.environ.get(PATH_ENV) or "auto").strip().lower()
    if value not in CHOICES:
        where = "precision option" if option else PATH_ENV
        raise EncoderPathError(f"unknown encoder path {value!r} (from the {where}); choose one of {', '.join(CHOICES)}")
    return value


def candidate_paths(cpu: CPUInfo) -> list[str]:
    """The paths worth trying on ``cpu``, most promising first, fp32 always last (the reference). int8 needs integer
    dot products to win clearly (VNNI or AMX; plain AVX2 still gains from the smaller weights, so it is tried there
    too); bf16 only pays where the hardware multiplies bf16 (AVX512_BF16 or AMX) — elsewhere torch emulates it,
    slower than fp32 — and comes first on AMX, where it is the fastest (``AMX_BF16_ENOUGH``)."""
    out = []
    if cpu.vnni or cpu.has("avx2"):
        out.append("onnx-int8")
    if cpu.native_bf16:
        out.insert(0 if cpu.amx else len(out), "bf16")
    return [*out, "fp32"]


def _int8_export_cached(encoder: SentenceTransformerEncoder) -> bool:
    """Whether the int8 trial would find its quantised export on disk (else it costs an export and quantisation)."""
    try:
        from retrievekit.encoders.onnx import INT8_PLAIN_FILE, cached_export

        folder = cached_export(encoder.source_model)
    except Exception:  # the onnx extra missing or an unreadable model: the trial itself will say what is wrong
        return False
    return folder is not None and (folder / INT8_PLAIN_FILE).exists()


@dataclass
class PathDecision:
    """Which path an encoder runs on this CPU, why, and what the check measured (per path: sample seconds,
    speed-up over fp32, minimum and mean cosine to fp32, or the error that ruled it out)."""

    path: str
    reason: str
    model: str
    forced: bool = False
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    cpu: dict[str, Any] = field(default_factory=dict)
    sample_texts: int = 0
    min_cosine: float = MIN_COSINE
    decided_at: str = ""
    format: int = DECISION_FORMAT

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PathDecision:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def decisions_root(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    root = os.environ.get("RETRIEVEKIT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "retrievekit") / "encoder-paths"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def decision_file(model: str, spec: dict[str, Any], *, cache_dir: str | Path | None = None) -> Path:
    """Where the decision for ``model`` with this spec, these libraries and this CPU (its cores included) is kept."""
    from retrievekit.encoders.onnx import cache_key, local_model_files
    from retrievekit.encoders.registry import model_card
    from retrievekit.encoders.sentence_transformers import resolve_model_path

    location = resolve_model_path(model, model_card(model))
    cpu = cpu_info()
    kind = json.dumps({"format": DECISION_FORMAT, "spec": spec, "cpu": cpu.signature(),
                       "onnxruntime": _version("onnxruntime")}, sort_keys=True)
    key = cache_key(spec.get("model", model), location, local_model_files(location),
                    kind=hashlib.sha256(kind.encode()).hexdigest())
    return decisions_root(cache_dir) / f"{key}.json"


def load_decision(path: Path) -> PathDecision | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        decision = PathDecision.from_json(data)
    except (OSError, ValueError, TypeError):
        return None
    if decision.format != DECISION_FORMAT or decision.path not in PATHS:
        return None
    return decision


def save_decision(path: Path, decision: PathDecision) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(decision.to_json(), indent=1), encoding="utf-8")
    os.replace(tmp, path)


def cached_decisions(cache_dir: str | Path | None = None) -> list[PathDecision]:
    """Every decision cached on this machine (newest first), for ``retrievekit components``."""
    root = decisions_root(cache_dir)
    found = [d for f in sorted(root.glob("*.json")) if (d := load_decision(f)) is not None] if root.is_dir() else []
    return sorted(found, key=lambda d: d.decided_at, reverse=True)


def pick_sample(texts: Sequence[str], n: int = SAMPLE_TEXTS) -> list[str]:
    """Up to ``n`` texts spread evenly over ``texts`` sorted by length: long and short ones alike."""
    ordered = sorted(set(texts), key=len)
    if len(ordered) <= n:
        return ordered
    step = len(ordered) / n
    return [ordered[int(i * step)] for i in range(n)]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _timed(run: PathRunner, sample: list[str]) -> tuple[np.ndarray, float]:
    run(sample[:2])  # warm-up: first-call allocations, graph initialisation
    started = time.perf_counter()
    vectors = run(sample)
    return vectors, time.perf_counter() - started


def decide(encoder: SentenceTransformerEncoder, sample: list[str], *, cpu: CPUInfo | None = None) -> PathDecision:
    """Measure every candidate path on ``sample`` against fp32 and choose (see the module docstring)."""
    cpu = cpu or cpu_info(with_torch=True)
    reference, fp32_seconds = _timed(BUILDERS["fp32"](encoder), sample)
    reference = _unit(reference)
    checks: dict[str, dict[str, Any]] = {"fp32": {"seconds": round(fp32_seconds, 4), "speedup": 1.0,
                                                  "cosine_min": 1.0, "cosine_mean": 1.0}}
    passed: list[tuple[float, str]] = []
    rejected: list[str] = []
    for path in candidate_paths(cpu):
        if path == "fp32":
            continue
        if (path == "onnx-int8" and cpu.amx and any(p == "bf16" for _, p in passed)
                and checks["bf16"]["speedup"] >= AMX_BF16_ENOUGH and not _int8_export_cached(encoder)):
            checks[path] = {"skipped": f"bf16 on AMX already {checks['bf16']['speedup']}x fp32 "
                                       f"(>= {AMX_BF16_ENOUGH}x) and no int8 export cached"}
            continue
        try:
            vectors, seconds = _timed(BUILDERS[path](encoder), sample)
            vectors = _unit(vectors)
            if vectors.shape != reference.shape:
                raise RetrievekitError(f"returned shape {vectors.shape}, expected {reference.shape}")
        except Exception as exc:  # a path that cannot run here is ruled out, never fatal: fp32 still works
            checks[path] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            rejected.append(f"{path} failed ({type(exc).__name__}: {str(exc)[:200]})")
            continue
        cosines = np.sum(vectors * reference, axis=1)
        check = {"seconds": round(seconds, 4), "speedup": round(fp32_seconds / max(seconds, 1e-9), 2),
                 "cosine_min": round(float(cosines.min()), 5), "cosine_mean": round(float(cosines.mean()), 5)}
        checks[path] = check
        if not np.all(np.isfinite(cosines)) or cosines.mean() < MIN_COSINE:
            rejected.append(f"{path} cosine to fp32 mean {check['cosine_mean']} < {MIN_COSINE}")
        elif cosines.min() < MIN_COSINE_FLOOR:
            rejected.append(f"{path} cosine to fp32 min {check['cosine_min']} < {MIN_COSINE_FLOOR}")
        elif seconds < fp32_seconds:
            passed.append((seconds, path))
        else:
            rejected.append(f"{path} not faster than fp32 ({check['speedup']}x)")
    if passed:
        path = min(passed)[1]
        check = checks[path]
        reason = (f"{path}: {check['speedup']}x fp32 on {len(sample)} sample texts, cosine to fp32 mean "
                  f"{check['cosine_mean']} (>= {MIN_COSINE}), min {check['cosine_min']} (>= {MIN_COSINE_FLOOR})")
        others = [p for _, p in sorted(passed)[1:]]
        if others:
            reason += "; also passed: " + ", ".join(f"{p} {checks[p]['speedup']}x" for p in others)
    else:
        path = "fp32"
        reason = "fp32: " + ("; ".join(rejected) if rejected else f"no faster path for this CPU ({cpu.model})")
    if rejected and passed:
        reason += "; ruled out: " + "; ".join(rejected)
    skipped = [f"{p} ({c['skipped']})" for p, c in checks.items() if "skipped" in c]
    if skipped:
        reason += "; not tried: " + "; ".join(skipped)
    return PathDecision(path=path, reason=reason, model=encoder.name, checks=checks, cpu=cpu.summary(),
                        sample_texts=len(sample), decided_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def resolve(encoder: SentenceTransformerEncoder, texts: Sequence[str], requested: str, *,
            cache_dir: str | Path | None = None) -> PathDecision:
    """The path for ``encoder``: forced, cached, or decided now on a sample of ``texts`` (and cached)."""
    if requested != "auto":
        return PathDecision(path=requested, reason=f"{requested}: forced (precision option or {PATH_ENV})",
                            model=encoder.name, forced=True, cpu=cpu_info().summary(),
                            decided_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    file = decision_file(encoder.source_model, encoder.spec(), cache_dir=cache_dir)
    cached = load_decision(file)
    if cached is not None:
        return cached
    started = time.perf_counter()
    decision = decide(encoder, pick_sample(texts))
    logger.info("encoder path for %s on %s: %s (checked in %.1fs)", encoder.name, decision.cpu.get("model"),
                decision.reason, time.perf_counter() - started)
    try:
        save_decision(file, decision)
    except OSError as exc:  # a read-only cache only costs the check again next time
        logger.warning("cannot cache the encoder path decision in %s: %s", file, exc)
    return decision


def decision_for_spec(spec: dict[str, Any], *, cache_dir: str | Path | None = None) -> PathDecision | None:
    """The cached decision for an index's stored sentence-transformers spec on this CPU, if one was made (no
    model is loaded; for ``retrievekit info``)."""
    if spec.get("backend", "sentence-transformers") != "sentence-transformers":
        return None
    try:
        file = decision_file(str(spec.get("model")), spec, cache_dir=cache_dir)
    except Exception:  # an unknown or missing model: nothing to report
        return None
    return load_decision(file)
