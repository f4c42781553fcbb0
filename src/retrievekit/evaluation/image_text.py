"""Image–text retrieval evaluation, the Flickr convention (Flickr8k/Flickr30k/COCO retrieval tables).

A dataset folder is BEIR-like with image files: ``corpus.jsonl`` rows name an image (``{"_id", "image":
"images/X.jpg"}``, the path relative to the folder), ``queries.jsonl`` holds the captions and ``qrels/<split>.tsv``
judges caption -> image. An image-text encoder (``clip:MODEL``) embeds every image and every caption; the
similarity is the exact cosine over all items (no index, no approximation), and equal scores keep the item order of
the files (an earlier item ranks first).

* text -> image: for each caption, the rank of its (best-ranked) image among all images;
* image -> text: for each image with captions, the rank of its best-ranked caption among all captions.

Recall@K is the share of queries whose rank is at most K. The report (``evaluate_image_text``) holds, per direction
(``text_to_image``, ``image_to_text``): ``recall@K`` for each K, ``median_rank``, ``mean_rank`` and ``queries``;
plus ``rsum`` (the sum of all the recalls in percent, the usual single number), the counts (``images``,
``captions``, ``images_without_captions``) and the timings (``seconds``, ``images_per_second``,
``captions_per_second``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.core.errors import RetrievekitError
from retrievekit.encoders.base import Encoder, normalize_rows
from retrievekit.encoders.clip import ImageTextEncoder
from retrievekit.evaluation.datasets import DatasetError, _jsonl, load_beir

#: queries ranked per block when computing ranks (bounds the memory of the argsort to BLOCK x items)
BLOCK = 512
#: missing image files named in an error before "and N more"
NAMED = 5


def evaluate_image_text(folder: str | os.PathLike[str], encoder: Encoder, ks: Sequence[int] = (1, 5, 10),
                        limit: int | None = None, batch_size: int = 32, *, split: str = "test",
                        progress: bool = False) -> dict[str, Any]:
    """Text->image and image->text Recall@K of ``encoder`` (an ``ImageTextEncoder``) on the image-text dataset in
    ``folder`` (see the module docstring). ``limit``: only the first ``limit`` images of ``corpus.jsonl`` and the
    captions judged for them (for quick runs)."""
    if not isinstance(encoder, ImageTextEncoder):
        raise RetrievekitError(f"image-text evaluation needs an image-text encoder (clip:, hf-clip: or "
                               "open-clip:MODEL); "
                               f"{encoder.backend or type(encoder).__name__}:{encoder.spec().get('model')} is a text "
                               "encoder without an image tower")
    ks = _check_ks(ks)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise RetrievekitError(f"limit must be a positive number of images, got {limit!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise RetrievekitError(f"batch_size must be a positive integer, got {batch_size!r}")

    image_ids, image_paths, _caption_ids, captions, relevant = load_image_text(folder, split=split, limit=limit)

    started = time.perf_counter()
    image_vectors = encoder.encode_images(image_paths, batch_size=batch_size, progress=progress)
    image_seconds = time.perf_counter() - started
    started = time.perf_counter()
    caption_vectors = encoder.encode_queries(captions, batch_size=batch_size, progress=progress)
    caption_seconds = time.perf_counter() - started

    started = time.perf_counter()
    scores = cosine(caption_vectors, image_vectors)  # captions x images; image->text uses its transpose
    t2i = best_ranks(scores, relevant)
    image_captions: list[list[int]] = [[] for _ in image_ids]
    for caption, images in enumerate(relevant):
        for image in images:
            image_captions[image].append(caption)
    with_captions = [i for i, found in enumerate(image_captions) if found]
    i2t = best_ranks(scores.T[with_captions], [image_captions[i] for i in with_captions])
    score_seconds = time.perf_counter() - started

    directions = {"text_to_image": _summary(t2i, ks), "image_to_text": _summary(i2t, ks)}
    return {
        "dataset": str(folder),
        "split": split,
        "model": encoder.spec().get("model"),
        "backend": encoder.backend,
        "limit": limit,
        "images": len(image_ids),
        "captions": len(captions),
        "images_without_captions": len(image_ids) - len(with_captions),
        **directions,
        "rsum": round(sum(100.0 * d[f"recall@{k}"] for d in directions.values() for k in ks), 4),
        "ks": list(ks),
        "seconds": {"encode_images": round(image_seconds, 4), "encode_captions": round(caption_seconds, 4),
                    "score": round(score_seconds, 4)},
        "images_per_second": round(len(image_ids) / image_seconds, 2) if image_seconds else None,
        "captions_per_second": round(len(captions) / caption_seconds, 2) if caption_seconds else None,
    }


def load_image_text(folder: str | os.PathLike[str], *, split: str = "test", limit: int | None = None
                    ) -> tuple[list[str], list[Path], list[str], list[str], list[list[int]]]:
    """(image ids, image paths, caption ids, caption texts, per caption the positions of its images) from an
    image-text dataset folder, in file order. Every image file must exist (the missing ones are named)."""
    root = Path(folder)
    if not root.is_dir():  # checked here: load_beir would take a non-folder for a dataset name to download
        raise DatasetError(f"no such image-text dataset folder: {root}")
    dataset = load_beir(root, split=split)
    image_ids: list[str] = []
    image_paths: list[Path] = []
    position: dict[str, int] = {}
    for lineno, row in _jsonl(dataset.corpus_path):
        if limit is not None and len(image_ids) >= limit:
            break
        doc_id = str(row["_id"])
        if doc_id in position:
            raise DatasetError(f"{dataset.corpus_path} line {lineno}: duplicate _id {doc_id!r}")
        image = row.get("image")
        if not isinstance(image, str) or not image.strip():
            raise DatasetError(f"{dataset.corpus_path} line {lineno}: document {doc_id!r} has no 'image' field naming "
                               "its image file (relative to the dataset folder); an image-text dataset needs one on "
                               "every row")
        position[doc_id] = len(image_ids)
        image_ids.append(doc_id)
        image_paths.append(root / image)
    if not image_ids:
        raise DatasetError(f"{dataset.corpus_path} lists no images")
    missing = [str(p) for p in image_paths if not p.is_file()]
    if missing:
        more = f" and {len(missing) - NAMED} more" if len(missing) > NAMED else ""
        raise DatasetError(f"{len(missing)} of the {len(image_paths)} image files of {dataset.corpus_path} are "
                           f"missing: {', '.join(missing[:NAMED])}{more}")

    caption_ids: list[str] = []
    captions: list[str] = []
    relevant: list[list[int]] = []
    unknown: list[str] = []
    for qid, text in dataset.queries.items():
        judged = [doc for doc, grade in dataset.qrels.get(qid, {}).items() if grade > 0]
        found = sorted(position[doc] for doc in judged if doc in position)
        if limit is None:
            unknown.extend(doc for doc in judged if doc not in position)
        if found:
            caption_ids.append(qid)
            captions.append(text)
            relevant.append(found)
    if unknown:
        raise DatasetError(f"qrels/{split}.tsv judges {len(unknown)} caption-image pairs whose image is not in "
                           f"{dataset.corpus_path.name}, e.g. {sorted(set(unknown))[:NAMED]}")
    if not captions:
        raise DatasetError(f"{root}: no caption in queries.jsonl is judged relevant to "
                           f"{'the first ' + str(limit) + ' ' if limit is not None else 'any '}images in "
                           f"qrels/{split}.tsv")
    return image_ids, image_paths, caption_ids, captions, relevant


def cosine(queries: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Exact cosine similarities (queries x items), float32; zero vectors score 0."""
    q = normalize_rows(np.array(queries, dtype=np.float32))
    x = normalize_rows(np.array(items, dtype=np.float32))
    if q.ndim != 2 or x.ndim != 2 or q.shape[1] != x.shape[1]:
        raise RetrievekitError(f"query and item vectors differ in shape: {q.shape} vs {x.shape}")
    return q @ x.T


def best_ranks(scores: np.ndarray, relevant: Sequence[Sequence[int]]) -> np.ndarray:
    """For each row of ``scores`` (queries x items), the 1-based rank of its best-ranked relevant item, items
    ordered by descending score, equal scores by position (a stable sort)."""
    if len(relevant) != scores.shape[0]:
        raise RetrievekitError(f"{scores.shape[0]} score rows but {len(relevant)} relevance lists")
    ranks = np.empty(scores.shape[0], dtype=np.int64)
    positions = np.empty(scores.shape[1], dtype=np.int64)
    columns = np.arange(scores.shape[1])
    for start in range(0, scores.shape[0], BLOCK):
        order = np.argsort(-scores[start:start + BLOCK], axis=1, kind="stable")
        for row, ranked in enumerate(order):
            positions[ranked] = columns
            ranks[start + row] = positions[list(relevant[start + row])].min() + 1
    return ranks


def _summary(ranks: np.ndarray, ks: Sequence[int]) -> dict[str, Any]:
    return {
        **{f"recall@{k}": round(float(np.mean(ranks <= k)), 6) for k in ks},
        "median_rank": float(np.median(ranks)),
        "mean_rank": round(float(np.mean(ranks)), 4),
        "queries": len(ranks),
    }


def _check_ks(ks: Sequence[int]) -> list[int]:
    values = list(ks)
    if not values or any(isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1 for k in values):
        raise RetrievekitError(f"ks must be positive integers (e.g. 1, 5, 10), got {list(ks)!r}")
    return sorted(set(int(k) for k in values))
