"""Perceptual-hash indexes of a collection's images (near-duplicate search with no neural model): one per-segment
``SegmentIndex`` kind, ``imagehash``, built at commit like a dense index. ``manifest.config["imagehash"][name]`` =
{"hash": "phash", "hash_size": 8}; each segment holds ``imagehash-<key>.npy`` (uint8 packed codes, one row per
document, zero for documents without an image or already replaced) and ``imagehash-<key>-present.npy`` (uint8,
1 where the row holds an image's code). Merges copy rows; searches use the compiled Hamming kernel."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.core.document import Document
from retrievekit.core.errors import CollectionError
from retrievekit.core.files import atomic_write_array, read_npy
from retrievekit.index.base import SegmentIndex, SegmentView
from retrievekit.index.images.phash import ImageHashError, code_bytes, image_hash

PREFIX = "imagehash-"
IMAGE_FIELD = "image"  # metadata: the image's path (see ingest.images)


def make_hash_config(hash: str = "phash", hash_size: int = 8) -> dict[str, Any]:
    from retrievekit.index.images.phash import _check_kind

    code_bytes(hash_size)  # validates the size
    return {"hash": _check_kind(hash), "hash_size": int(hash_size)}


def _key(config: Mapping[str, Any]) -> str:
    text = json.dumps({"hash": config["hash"], "hash_size": config["hash_size"]}, sort_keys=True)
    return f"{config['hash']}{config['hash_size']}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def codes_file(config: Mapping[str, Any]) -> str:
    return f"{PREFIX}{_key(config)}.npy"


def present_file(config: Mapping[str, Any]) -> str:
    return f"{PREFIX}{_key(config)}-present.npy"


@dataclass(frozen=True)
class ImageHasher:
    """The "encoder" of a hash index: a perceptual hash of one kind and size."""

    hash: str
    hash_size: int

    def __call__(self, image: Any) -> np.ndarray:
        return image_hash(image, self.hash, self.hash_size)


@dataclass
class SegmentCodes:
    codes: np.ndarray  # uint8 (n_docs, bytes)
    present: np.ndarray  # uint8 (n_docs,)


def encode_segment_hashes(folder: Path, config: dict[str, Any], documents: Iterable[Document], n_docs: int,
                          hasher: ImageHasher, skip: set[int] | None = None) -> None:
    target = folder / codes_file(config)
    if target.exists() and (folder / present_file(config)).exists():
        return
    codes = np.zeros((n_docs, code_bytes(int(config["hash_size"]))), dtype=np.uint8)
    present = np.zeros(n_docs, dtype=np.uint8)
    for local, doc in enumerate(documents):
        if skip is not None and local in skip:
            continue
        path = doc.metadata.get(IMAGE_FIELD)
        if not isinstance(path, str) or not path:
            continue
        try:
            codes[local] = hasher(path)
        except ImageHashError as exc:
            raise CollectionError(f"document {doc.id!r}: {exc}") from None
        present[local] = 1
    atomic_write_array(folder / present_file(config), present)
    atomic_write_array(target, codes)  # last: the index exists once its codes file does


def merge_hashes(folder: Path, sources: Sequence[tuple[Path, np.ndarray]], n_docs: int,
                 config: dict[str, Any]) -> bool:
    name, pname = codes_file(config), present_file(config)
    if not all((src / name).exists() and (src / pname).exists() for src, _ in sources):
        return False
    codes = np.zeros((n_docs, code_bytes(int(config["hash_size"]))), dtype=np.uint8)
    present = np.zeros(n_docs, dtype=np.uint8)
    for src, new_docs in sources:
        keep = new_docs >= 0
        codes[new_docs[keep]] = read_npy(src / name, mmap=True)[keep]
        present[new_docs[keep]] = read_npy(src / pname, mmap=True)[keep]
    atomic_write_array(folder / pname, present)
    atomic_write_array(folder / name, codes)
    return True


def segment_codes(segment: SegmentView, config: dict[str, Any], name: str) -> SegmentCodes:
    key = codes_file(config)
    cached = segment.extras.get(key)
    if cached is None:
        try:
            codes = read_npy(segment.folder / key, mmap=True)
            present = read_npy(segment.folder / present_file(config), mmap=True)
        except (OSError, ValueError) as exc:
            raise CollectionError(f"segment {segment.name}: image hash index {name!r} is missing or damaged "
                                  f"({exc})") from None
        if codes.shape[0] != segment.n_docs or present.shape != (segment.n_docs,):
            raise CollectionError(f"segment {segment.name}: image hash index {name!r} holds {codes.shape[0]} rows "
                                  f"for {segment.n_docs} documents; the collection is damaged")
        cached = segment.extras[key] = SegmentCodes(codes, present)
    return cached


class ImageHashIndex(SegmentIndex):
    """Perceptual hashes of the documents' images."""

    key = "imagehash"
    prefixes = (PREFIX,)

    def files(self, config: Mapping[str, Any]) -> set[str]:
        return {codes_file(config), present_file(config)}

    def encode(self, folder: Path, config: dict[str, Any], documents: Iterable[Document], n_docs: int, encoder: Any,
               *, skip: set[int] | None = None, progress: bool = False) -> None:
        encode_segment_hashes(folder, config, documents, n_docs, encoder, skip)

    def load_encoder(self, config: Mapping[str, Any]) -> ImageHasher:
        return ImageHasher(str(config["hash"]), int(config["hash_size"]))

    def encoder_key(self, config: Mapping[str, Any]) -> str:
        return f"imagehash:{_key(config)}"

    def merge(self, folder: Path, sources: Sequence[tuple[SegmentView, np.ndarray]], n_docs: int,
              config: dict[str, Any]) -> dict[str, Any] | None:
        return {} if merge_hashes(folder, [(seg.folder, nd) for seg, nd in sources], n_docs, config) else None

    def open(self, segment: SegmentView, config: dict[str, Any], name: str) -> SegmentCodes:
        return segment_codes(segment, config, name)
