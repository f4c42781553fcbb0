"""onnx-clip against clip on a ViT-B/32-shaped CLIP: export time, encoding throughput, agreement, cold start.

No CLIP weights ship on PyPI, so the model has ViT-B/32's shape (12+12 layers, 512/768 wide, 224 px, 32 px
patches, 512-d projection) with random weights and a character-level tokenizer: speed is that of the real model,
agreement between backends is meaningful (same function), but the int8 variant's error on random weights says
little about trained ones. Images are the first N pictures of ../shared/data/flickr8k-1k, texts its captions.

    python benchmarks/run_onnx_clip.py [--images 128] [--texts 512] [--threads 2] [--repeat 3]

Writes benchmarks/results/onnx_clip.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "flickr8k-1k"
WORK = HERE / "work" / "onnx_clip"
RESULTS = HERE / "results"


def build_model(folder: Path) -> Path:
    """A random CLIP of ViT-B/32's shape as a sentence-transformers folder (built once)."""
    st_folder = folder / "st"
    if (st_folder / "modules.json").exists():
        return st_folder
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import CLIPModel as STClip
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    hf = folder / "hf"
    hf.mkdir(parents=True, exist_ok=True)
    chars = list(string.ascii_lowercase + string.digits + ".,!?'-")
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    (hf / "vocab.json").write_text(json.dumps(vocab))
    (hf / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(hf / "vocab.json"), str(hf / "merges.txt"))
    eos = vocab["<|endoftext|>"]
    config = CLIPConfig(
        text_config={"vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
                     "num_attention_heads": 8, "max_position_embeddings": 77,
                     "bos_token_id": vocab["<|startoftext|>"], "eos_token_id": eos, "pad_token_id": eos},
        vision_config={"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                       "num_attention_heads": 12, "image_size": 224, "patch_size": 32},
        projection_dim=512)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(hf)
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(hf)
    SentenceTransformer(modules=[STClip(str(hf))]).save(str(st_folder))
    return st_folder


def inputs(n_images: int, n_texts: int) -> tuple[list[Path], list[str]]:
    images = sorted((DATA / "images").iterdir())[:n_images]
    texts = [json.loads(line)["text"] for line in (DATA / "queries.jsonl").open(encoding="utf-8")][:n_texts]
    return images, texts


def measure(specs: list[str], images: list[Path], texts: list[str], threads: int, cache: Path,
            repeat: int) -> dict[str, dict[str, Any]]:
    """Load time, images/s and texts/s of each backend. The backends take turns, ``repeat`` rounds, and each
    keeps its best round: the 2 cores are shared, and other work only slows a round down."""
    import numpy as np

    from retrievekit.encoders import get_encoder

    encoders: dict[str, Any] = {}
    runs: dict[str, dict[str, Any]] = {}
    for spec in specs:
        options = {"cache_dir": cache, "threads": threads} if spec.startswith("onnx") else {}
        started = time.perf_counter()
        encoders[spec] = get_encoder(spec, **options)
        runs[spec] = {"load_seconds": round(time.perf_counter() - started, 2), "image_seconds": float("inf"),
                      "text_seconds": float("inf")}
        encoders[spec].encode_images(images[:8])  # warm-up
        encoders[spec].encode_queries(texts[:8])
    for _ in range(repeat):
        for spec, encoder in encoders.items():
            started = time.perf_counter()
            image_vectors = encoder.encode_images(images, batch_size=32)
            runs[spec]["image_seconds"] = min(runs[spec]["image_seconds"], time.perf_counter() - started)
            started = time.perf_counter()
            text_vectors = encoder.encode_queries(texts, batch_size=64)
            runs[spec]["text_seconds"] = min(runs[spec]["text_seconds"], time.perf_counter() - started)
            runs[spec]["vectors"] = (np.asarray(image_vectors), np.asarray(text_vectors))
    for run in runs.values():
        run["images_per_second"] = round(len(images) / run.pop("image_seconds"), 1)
        run["texts_per_second"] = round(len(texts) / run.pop("text_seconds"), 1)
    return runs


def cold_query(spec: str, threads: int, cache: Path, image: Path) -> float:
    """Seconds from a fresh interpreter to one text and one image vector (imports and model load included)."""
    options = f"cache_dir={str(cache)!r}, threads={threads}" if spec.startswith("onnx") else ""
    script = (f"import time; t = time.perf_counter()\nfrom retrievekit.encoders import get_encoder\n"
              f"e = get_encoder({spec!r}{', ' if options else ''}{options})\n"
              f"e.encode_queries(['a dog on a beach']); e.encode_images([{str(image)!r}])\n"
              "print(time.perf_counter() - t)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return round(float(done.stdout.strip().splitlines()[-1]), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds; each backend's best counts")
    args = parser.parse_args()
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    load_at_start = os.getloadavg()[0]  # other work on the machine: the throughputs below are only as quiet as it
    model = build_model(WORK / "model")
    cache = WORK / "onnx-cache"
    images, texts = inputs(args.images, args.texts)

    from retrievekit.encoders.onnx_clip import ONNXClipInt8Encoder, cached_clip_export, export_clip

    shutil.rmtree(cache, ignore_errors=True)  # the one-time costs are measured too
    started = time.perf_counter()
    export_clip(str(model), cache_dir=cache)
    export_seconds = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    ONNXClipInt8Encoder(str(model), cache_dir=cache, threads=args.threads)
    quantize_seconds = round(time.perf_counter() - started, 1)

    specs = [f"clip:{model}", f"onnx-clip:{model}", f"onnx-clip-int8:{model}"]
    runs = {spec.split(":")[0]: run for spec, run in measure(specs, images, texts, args.threads, cache,
                                                             args.repeat).items()}
    reference_images, reference_texts = runs["clip"]["vectors"]
    for run in runs.values():
        image_vectors, text_vectors = run.pop("vectors")
        run["min_cosine_to_clip"] = {"images": round(float((image_vectors * reference_images).sum(1).min()), 6),
                                     "texts": round(float((text_vectors * reference_texts).sum(1).min()), 6)}
    for backend in runs:
        runs[backend]["cold_first_query_seconds"] = cold_query(f"{backend}:{model}", args.threads, cache, images[0])
    folder = cached_clip_export(str(model), cache_dir=cache)
    assert folder is not None
    sizes = {p.name: round(p.stat().st_size / 2**20, 1) for p in sorted(folder.glob("*.onnx"))}
    out = {"benchmark": "onnx_clip", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "model": "random CLIP of ViT-B/32 shape (224 px, 32 px patches, 512-d), character-level tokenizer",
           "images": len(images), "texts": len(texts), "threads": args.threads, "repeat": args.repeat,
           "export_seconds": export_seconds, "int8_quantize_seconds": quantize_seconds, "onnx_file_mib": sizes,
           "backends": runs,
           "load_average_at_start": round(load_at_start, 2), "load_average_at_end": round(os.getloadavg()[0], 2),
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                       "python": platform.python_version(), "torch": torch.__version__,
                       "numpy": np.__version__}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "onnx_clip.json").write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
