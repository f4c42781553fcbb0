"""Near-duplicate image search with perceptual hashes (issue 16): does an edited copy find its original first?

Corpus: the 1,000 images of ``/work/shared/data/flickr8k-1k`` (``corpus.jsonl`` rows name ``image`` paths relative
to the folder). For each hash kind (``retrievekit.index.images.HASHES``: phash, dhash, whash, ahash; ImageHash's
implementations, 64-bit at the default ``--hash-size 8``) the originals are hashed into a ``HashIndex``; the
queries are edited copies of every image:

* ``resize50``: resized to 50% (Lanczos),
* ``crop90``: centre crop keeping 90% of the width and height,
* ``jpeg30``: re-encoded as JPEG quality 30,
* ``brighter30``: brightness +30% (``ImageEnhance.Brightness(1.3)``),
* ``rotate3``: rotated 3 degrees counter-clockwise, ``expand=False`` (black corners).

Reported per kind and edit: Recall@1 (the original ranked first; ties go by insertion order, as the index returns
them), strict Recall@1 (the original strictly nearer than every other image: no tie at the top), Recall@10, the
mean Hamming distance to the original, and the search speed: queries/s of one batch of all queries (best of
``--repeats``) and the p50 of one query at a time. Hashing time (decode excluded; the edit excluded) is reported
separately, per image. The issue's goal: Recall@1 >= 0.95 for the resize and JPEG edits — checked per hash.

    python benchmarks/run_near_duplicates.py                  # all 1,000 images (about a minute on 2 cores)
    python benchmarks/run_near_duplicates.py --limit 100      # a quick run (writes near_duplicates_100.json)

Writes ``benchmarks/results/near_duplicates.json`` (``near_duplicates_<limit>.json`` with ``--limit``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

from PIL import Image, ImageEnhance  # noqa: E402

from retrievekit.index.dense.tiers.hamming import HAVE_KERNEL  # noqa: E402
from retrievekit.index.images import HASHES, HashIndex, image_hashes  # noqa: E402

RESULTS = HERE / "results"
DATA = Path("/work/shared/data/flickr8k-1k")
GOAL_EDITS = ("resize50", "jpeg30")
GOAL_RECALL = 0.95


def _resize50(img: Image.Image) -> Image.Image:
    return img.resize((max(1, img.width // 2), max(1, img.height // 2)), Image.Resampling.LANCZOS)


def _crop90(img: Image.Image) -> Image.Image:
    w, h = round(img.width * 0.9), round(img.height * 0.9)
    left, top = (img.width - w) // 2, (img.height - h) // 2
    return img.crop((left, top, left + w, top + h))


def _jpeg30(img: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=30)
    buf.seek(0)
    with Image.open(buf) as out:
        out.load()
        return out.copy()


def _brighter30(img: Image.Image) -> Image.Image:
    return ImageEnhance.Brightness(img).enhance(1.3)


def _rotate3(img: Image.Image) -> Image.Image:
    return img.rotate(3, resample=Image.Resampling.BICUBIC, expand=False)


EDITS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "resize50": _resize50, "crop90": _crop90, "jpeg30": _jpeg30, "brighter30": _brighter30, "rotate3": _rotate3}


def load_corpus(folder: Path, limit: int | None) -> tuple[list[str], list[Image.Image]]:
    corpus = folder / "corpus.jsonl"
    if not corpus.is_file():
        raise SystemExit(f"{corpus}: not found; --data must name the flickr8k-1k folder")
    ids, images = [], []
    with corpus.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            with Image.open(folder / row["image"]) as img:
                images.append(img.convert("RGB"))
            ids.append(str(row["_id"]))
            if limit is not None and len(ids) >= limit:
                break
    return ids, images


def machine_info() -> dict[str, Any]:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()], "hamming_kernel_compiled": HAVE_KERNEL,
            "packages": {p: version(p) for p in ("numpy", "Pillow", "ImageHash", "scipy", "PyWavelets",
                                                 "retrievekit")}}


def timed_hashes(images: list[Image.Image], kind: str, hash_size: int) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    codes = image_hashes(images, kind, hash_size)
    return codes, time.perf_counter() - t0


def measure_search(index: HashIndex, queries: np.ndarray, k: int, repeats: int, singles: int) -> dict[str, Any]:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        index.search(queries, k)
        best = min(best, time.perf_counter() - t0)
    one = []
    for q in queries[:singles]:
        t0 = time.perf_counter()
        index.search(q[None, :], k)
        one.append(time.perf_counter() - t0)
    return {"batch_queries_per_s": round(len(queries) / best), "batch_seconds": round(best, 6),
            "single_query_p50_us": round(statistics.median(one) * 1e6, 1) if one else None}


def evaluate(index: HashIndex, ids: list[str], queries: np.ndarray, k: int) -> dict[str, Any]:
    got, dist = index.search(queries, k)
    truth = np.array(ids, dtype=object)
    first = got[:, 0] == truth
    # strict: the original is first and the second place is farther (or absent)
    strict = first & ((dist[:, 1] > dist[:, 0]) | (dist[:, 1] < 0)) if k > 1 else first
    hit_k = (got == truth[:, None]).any(axis=1)
    own = np.unpackbits(queries ^ index.codes, axis=1).sum(axis=1)  # row i of the index is image i
    return {"recall@1": round(float(first.mean()), 4), "recall@1_strict": round(float(strict.mean()), 4),
            f"recall@{k}": round(float(hit_k.mean()), 4), "mean_distance_to_original": round(float(own.mean()), 2),
            "misses_at_1": int((~first).sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="the flickr8k-1k folder (corpus.jsonl + images/)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N images (a quick run)")
    ap.add_argument("--hash-size", type=int, default=8, help="bits per side of the hash (8 = 64-bit hashes)")
    ap.add_argument("--kinds", nargs="+", default=list(HASHES), choices=HASHES)
    ap.add_argument("--k", type=int, default=10, help="results per query (Recall@k)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats of the batch search (best is kept)")
    ap.add_argument("--singles", type=int, default=200, help="queries timed one at a time (p50)")
    args = ap.parse_args()

    machine = machine_info()
    t_start = time.perf_counter()
    ids, originals = load_corpus(args.data, args.limit)
    print(f"{len(ids)} images loaded from {args.data}", flush=True)
    edited = {name: [edit(img) for img in originals] for name, edit in EDITS.items()}
    print(f"edits made: {', '.join(edited)} ({time.perf_counter() - t_start:.1f} s)", flush=True)

    kinds: dict[str, Any] = {}
    for kind in args.kinds:
        codes, seconds = timed_hashes(originals, kind, args.hash_size)
        index = HashIndex(kind, args.hash_size)
        index.add(ids, codes)
        entry: dict[str, Any] = {"hash_ms_per_image_originals": round(seconds / len(ids) * 1e3, 3), "edits": {}}
        hash_seconds = seconds
        for name, images in edited.items():
            queries, seconds = timed_hashes(images, kind, args.hash_size)
            hash_seconds += seconds
            result = evaluate(index, ids, queries, args.k)
            result["hash_ms_per_image"] = round(seconds / len(ids) * 1e3, 3)
            result["search"] = measure_search(index, queries, args.k, args.repeats, args.singles)
            entry["edits"][name] = result
            print(f"{kind:6s} {name:11s} R@1 {result['recall@1']:.3f} (strict {result['recall@1_strict']:.3f}) "
                  f"R@{args.k} {result[f'recall@{args.k}']:.3f} dist {result['mean_distance_to_original']:5.2f} "
                  f"search {result['search']['batch_queries_per_s']:,} q/s", flush=True)
        entry["hash_ms_per_image_all"] = round(hash_seconds / (len(ids) * (1 + len(edited))) * 1e3, 3)
        entry["goal"] = {edit: {"recall@1": entry["edits"][edit]["recall@1"],
                                "met": entry["edits"][edit]["recall@1"] >= GOAL_RECALL} for edit in GOAL_EDITS}
        entry["goal_met"] = all(g["met"] for g in entry["goal"].values())
        kinds[kind] = entry

    out = {"benchmark": "near_duplicates", "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine,
           "load_average_after": [round(x, 2) for x in os.getloadavg()],
           "options": {**vars(args), "data": str(args.data)}, "images": len(ids),
           "code_bytes": args.hash_size ** 2 // 8,
           "edits": {"resize50": "resize to 50% (Lanczos)", "crop90": "centre crop keeping 90% of width and height",
                     "jpeg30": "JPEG quality 30", "brighter30": "brightness +30% (ImageEnhance 1.3)",
                     "rotate3": "rotate 3 degrees, expand=False, bicubic, black corners"},
           "goal": f"recall@1 >= {GOAL_RECALL} for {' and '.join(GOAL_EDITS)}",
           "seconds_total": round(time.perf_counter() - t_start, 1), "kinds": kinds}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / ("near_duplicates.json" if args.limit is None else f"near_duplicates_{args.limit}.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    for kind, entry in kinds.items():
        print(f"goal ({out['goal']}) {kind}: {'met' if entry['goal_met'] else 'NOT met'}")
    print("wrote", path)


if __name__ == "__main__":
    main()
