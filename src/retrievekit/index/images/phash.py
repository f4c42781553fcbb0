"""Perceptual image hashes and a Hamming-distance index over them, for near-duplicate image search, offline.

The hashes come from the ImageHash library (``phash``: DCT, ``dhash``: gradients, ``whash``: Haar wavelets,
``ahash``: mean brightness), each ``hash_size × hash_size`` bits packed row-major into ``hash_size**2 / 8`` uint8
bytes (``np.packbits``). Two images are near duplicates when few bits differ. ``HashIndex`` keeps ids and their codes
and finds the nearest codes with the compiled Hamming top-k kernel (``index.dense.tiers.hamming``; its numpy
fallback when the extension is not built): results are ordered by (distance, insertion order).

Needs the ``images`` extra (Pillow, ImageHash): ``pip install 'retrievekit[images]'``.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from retrievekit.core.errors import RetrievekitError, require
from retrievekit.core.files import atomic_write_text, fsync_dir, fsync_write_array, read_npy
from retrievekit.core.images import MAX_IMAGE_PIXELS, decode_image, image_source
from retrievekit.index.dense.tiers.base import TierError
from retrievekit.index.dense.tiers.hamming import hamming_topk

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    ImageInput: TypeAlias = PILImage | str | os.PathLike[str] | bytes | bytearray | memoryview

__all__ = ["HASHES", "HashIndex", "ImageHashError", "image_hash", "image_hashes"]

HASHES = ("phash", "dhash", "whash", "ahash")
# ImageHash's function per kind.
_FUNCTIONS = {"phash": "phash", "dhash": "dhash", "whash": "whash", "ahash": "average_hash"}
MIN_HASH_SIZE = 4
MAX_HASH_SIZE = 64  # 4,096 bits (512 bytes) per image: far past what near-duplicate search needs
MANIFEST = "hash_index.json"
FORMAT_VERSION = 1


class ImageHashError(RetrievekitError, ValueError):
    """A bad hash kind or size, an unreadable image, codes of the wrong shape, or a damaged saved index."""


def _check_kind(kind: str) -> str:
    if kind not in HASHES:
        raise ImageHashError(f"unknown image hash kind {kind!r}; valid kinds: {', '.join(HASHES)}")
    return kind


def _check_hash_size(hash_size: int) -> int:
    if not isinstance(hash_size, (int, np.integer)) or isinstance(hash_size, bool):
        raise ImageHashError(f"hash_size must be an integer, got {hash_size!r}")
    size = int(hash_size)
    if size < MIN_HASH_SIZE or size > MAX_HASH_SIZE or size & (size - 1):
        raise ImageHashError(f"hash_size must be a power of two from {MIN_HASH_SIZE} to {MAX_HASH_SIZE} "
                             f"(the hash has hash_size**2 bits), got {hash_size}")
    return size


def code_bytes(hash_size: int) -> int:
    """Bytes per packed code of a ``hash_size`` hash: ``hash_size**2 / 8``."""
    return _check_hash_size(hash_size) ** 2 // 8


def _open_image(image: Any, max_pixels: int) -> PILImage:
    """A decoded PIL image from a PIL image, a file path or the encoded bytes of an image file (decoded safely:
    ``core.images.decode_image``), turned upright by its EXIF orientation."""
    pil = require("PIL.Image", "images")
    if isinstance(image, pil.Image):
        return image
    try:
        data, where = image_source(image)
        decoded = decode_image(data, max_pixels=max_pixels, formats=None, where=where)
    except RetrievekitError as exc:  # ImageDecodeError included
        raise ImageHashError(str(exc)) from None
    # As displayed: a photo whose EXIF says "rotated" hashes like its upright copy.
    ops = require("PIL.ImageOps", "images")
    return ops.exif_transpose(decoded) or decoded


def image_hash(image: ImageInput, kind: str = "phash", hash_size: int = 8, *,
               max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """The ``kind`` perceptual hash of one image as packed bits: uint8 ``(hash_size**2 // 8,)``.

    ``image``: a PIL image, a path to an image file, or the bytes of one. ``kind``: one of ``HASHES``.
    ``hash_size``: a power of two from 4 to 64 (8 = the usual 64-bit hash). An encoded image over ``max_pixels``
    is refused before it is decoded (a decompression bomb).
    """
    _check_kind(kind)
    size = _check_hash_size(hash_size)
    imagehash = require("imagehash", "images")
    pil_image = _open_image(image, max_pixels)
    if pil_image.width < 1 or pil_image.height < 1:
        raise ImageHashError(f"cannot hash an empty image of size {pil_image.size}")
    bits = np.asarray(getattr(imagehash, _FUNCTIONS[kind])(pil_image, hash_size=size).hash, dtype=bool)
    if bits.shape != (size, size):  # guards against an ImageHash version with another layout
        raise ImageHashError(f"ImageHash's {kind} returned a {bits.shape} bit array, expected {(size, size)}")
    return np.packbits(bits.reshape(-1))


def image_hashes(images: Iterable[ImageInput], kind: str = "phash", hash_size: int = 8) -> np.ndarray:
    """``image_hash`` of each image: uint8 ``(n, hash_size**2 // 8)`` (n may be 0)."""
    _check_kind(kind)
    width = code_bytes(hash_size)
    rows = [image_hash(image, kind, hash_size) for image in images]
    return np.stack(rows) if rows else np.empty((0, width), dtype=np.uint8)


class HashIndex:
    """Ids and their packed hash codes; ``search`` returns the nearest ids by Hamming distance.

    All codes must be of one ``kind`` and ``hash_size`` (recorded, and checked by ``add_images`` /
    ``search_images``; ``add`` / ``search`` with raw codes check the width only). Ids are unique strings; results
    tie by insertion order (an id deleted and added again counts as inserted last).
    """

    def __init__(self, kind: str = "phash", hash_size: int = 8) -> None:
        self.kind = _check_kind(kind)
        self.hash_size = _check_hash_size(hash_size)
        self.code_bytes = self.hash_size ** 2 // 8
        self._ids: list[str] = []
        self._codes = np.empty((0, self.code_bytes), dtype=np.uint8)
        self._row: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._row

    def __repr__(self) -> str:
        return f"HashIndex(kind={self.kind!r}, hash_size={self.hash_size}, images={len(self)})"

    @property
    def ids(self) -> list[str]:
        """The ids in insertion order (a copy)."""
        return list(self._ids)

    @property
    def codes(self) -> np.ndarray:
        """The codes, uint8 (n, code_bytes), row i for ``ids[i]`` (read-only view)."""
        view = self._codes.view()
        view.flags.writeable = False
        return view

    def _as_codes(self, codes: Any, what: str) -> np.ndarray:
        arr = np.asarray(codes)
        if arr.ndim == 1 and arr.size == self.code_bytes:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2 or arr.shape[1] != self.code_bytes:
            raise ImageHashError(f"{what} must be uint8 of shape (n, {self.code_bytes}) for a {self.kind} hash of "
                                 f"hash_size {self.hash_size} ({self.hash_size ** 2} bits), got shape {arr.shape}")
        if arr.dtype != np.uint8:
            raise ImageHashError(f"{what} must be packed bits of dtype uint8 (as from image_hashes), got {arr.dtype}")
        return np.ascontiguousarray(arr)

    def add(self, ids: Sequence[str], codes: np.ndarray) -> None:
        """Add ``ids`` (unique strings, none already in the index) with their codes uint8 (len(ids), code_bytes)."""
        ids = list(ids)
        arr = self._as_codes(codes, "codes")
        if len(ids) != arr.shape[0]:
            raise ImageHashError(f"{len(ids)} ids for {arr.shape[0]} codes")
        bad = [i for i in ids if not isinstance(i, str)]
        if bad:
            raise ImageHashError(f"ids must be strings, got {bad[0]!r} ({type(bad[0]).__name__})")
        seen: set[str] = set()
        dup = []
        for doc_id in ids:
            if doc_id in self._row or doc_id in seen:
                dup.append(doc_id)
            seen.add(doc_id)
        if dup:
            raise ImageHashError(f"ids already in the index (or repeated in this batch): {dup[:5]}"
                                 + (f" and {len(dup) - 5} more" if len(dup) > 5 else ""))
        start = len(self._ids)
        self._codes = np.concatenate([self._codes, arr]) if start else arr.copy()
        self._ids.extend(ids)
        self._row.update((doc_id, start + j) for j, doc_id in enumerate(ids))

    def add_images(self, ids: Sequence[str], images: Iterable[ImageInput]) -> None:
        """Hash ``images`` with this index's kind and hash_size and add them under ``ids``."""
        self.add(ids, image_hashes(images, self.kind, self.hash_size))

    def delete(self, ids: Iterable[str]) -> int:
        """Remove ``ids``; every one must be in the index (else nothing is removed). Returns how many were removed."""
        gone = list(dict.fromkeys(ids))
        missing = [i for i in gone if i not in self._row]
        if missing:
            raise ImageHashError(f"ids not in the index: {missing[:5]}"
                                 + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
        if not gone:
            return 0
        keep = np.ones(len(self._ids), dtype=bool)
        keep[[self._row[i] for i in gone]] = False
        self._codes = self._codes[keep]
        self._ids = [doc_id for doc_id, k in zip(self._ids, keep) if k]
        self._row = {doc_id: j for j, doc_id in enumerate(self._ids)}
        return len(gone)

    def _mask(self, allowed: Any) -> np.ndarray | None:
        if allowed is None:
            return None
        if isinstance(allowed, np.ndarray) and allowed.dtype == np.bool_:
            if allowed.shape != (len(self),):
                raise ImageHashError(f"an allowed mask must be bool of shape ({len(self)},), got {allowed.shape}")
            return allowed
        if isinstance(allowed, (str, bytes)):
            raise ImageHashError("allowed must be a collection of ids or a bool mask, not one string")
        wanted = list(allowed)
        bad = [i for i in wanted if not isinstance(i, str)]
        if bad:
            raise ImageHashError(f"allowed must be a collection of string ids or a numpy bool mask of shape "
                                 f"({len(self)},); got the element {bad[0]!r} ({type(bad[0]).__name__})")
        mask = np.zeros(len(self), dtype=bool)
        rows = [self._row[i] for i in wanted if i in self._row]  # ids not in the index match nothing
        mask[rows] = True
        return mask

    def search(self, query_codes: np.ndarray, k: int = 10,
               allowed: np.ndarray | Iterable[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest ids of each query code (uint8 (m, code_bytes), or one (code_bytes,) code).

        ``allowed``: None (all), a bool mask (len(self),) over insertion order, or a collection of ids (ids not in
        the index are ignored). Returns ``(ids, distances)``: object (m, k) with None past the allowed images, and
        int32 (m, k) Hamming distances (-1 in those places); ordered by (distance, insertion order).
        """
        q = self._as_codes(query_codes, "query codes")
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
            raise ImageHashError(f"k must be a non-negative integer, got {k!r}")
        try:
            rows, dist = hamming_topk(q, self._codes, int(k), self._mask(allowed))
        except TierError as exc:
            raise ImageHashError(str(exc)) from exc
        table = np.empty(len(self._ids) + 1, dtype=object)
        table[:-1] = self._ids
        table[-1] = None  # row -1 (padding) -> None
        return table[rows], dist

    def search_images(self, images: Iterable[ImageInput], k: int = 10,
                      allowed: np.ndarray | Iterable[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``search`` with the hashes (this index's kind and hash_size) of ``images``."""
        return self.search(image_hashes(images, self.kind, self.hash_size), k, allowed)

    # -- persistence ------------------------------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write the index into ``folder`` (created if needed): ``codes-<token>.npy`` then ``hash_index.json``.

        Both are fsynced and the manifest is replaced atomically last, so a crash leaves the old index or the new one
        readable, never a mix; codes files no manifest names are removed afterwards.
        """
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        codes_name = f"codes-{uuid.uuid4().hex[:12]}.npy"
        fsync_write_array(path / codes_name, self._codes)
        manifest = {"format": FORMAT_VERSION, "kind": self.kind, "hash_size": self.hash_size,
                    "count": len(self._ids), "codes": codes_name,
                    "codes_sha256": hashlib.sha256(self._codes.tobytes()).hexdigest(), "ids": self._ids}
        fsync_dir(path)
        atomic_write_text(path / MANIFEST, json.dumps(manifest, ensure_ascii=False))
        for stale in path.glob("codes-*.npy"):
            if stale.name != codes_name:
                stale.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, folder: str | Path) -> HashIndex:
        """Read an index written by ``save``; raises ``ImageHashError`` naming the file if it is missing or damaged."""
        path = Path(folder)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise ImageHashError(f"{path}: no {MANIFEST}; not a saved image hash index")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ImageHashError(f"{manifest_path}: damaged manifest, not valid JSON ({exc})") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
            found = manifest.get("format") if isinstance(manifest, dict) else None
            raise ImageHashError(f"{manifest_path}: image hash index format {found!r} is not supported "
                                 f"(expected {FORMAT_VERSION})")
        keys = ("kind", "hash_size", "count", "codes", "codes_sha256", "ids")
        absent = [key for key in keys if key not in manifest]
        if absent:
            raise ImageHashError(f"{manifest_path}: damaged manifest, missing {absent}")
        try:
            index = cls(manifest["kind"], manifest["hash_size"])
        except ImageHashError as exc:
            raise ImageHashError(f"{manifest_path}: {exc}") from exc
        ids = manifest["ids"]
        if not isinstance(ids, list) or len(ids) != manifest["count"] or not all(isinstance(i, str) for i in ids):
            raise ImageHashError(f"{manifest_path}: damaged manifest, ids are not {manifest['count']} strings")
        if len(set(ids)) != len(ids):
            raise ImageHashError(f"{manifest_path}: damaged manifest, repeated ids")
        codes_name = manifest["codes"]
        codes_path = path / codes_name
        if not isinstance(codes_name, str) or Path(codes_name).name != codes_name or not codes_path.is_file():
            raise ImageHashError(f"{path}: the codes file {codes_name!r} named by {MANIFEST} is missing")
        try:
            codes = read_npy(codes_path)
        except (OSError, ValueError, EOFError) as exc:
            raise ImageHashError(f"{codes_path}: damaged codes file ({exc})") from exc
        if codes.dtype != np.uint8 or codes.shape != (len(ids), index.code_bytes):
            raise ImageHashError(f"{codes_path}: damaged codes file, {codes.dtype} {codes.shape} where uint8 "
                                 f"{(len(ids), index.code_bytes)} was expected")
        if hashlib.sha256(np.ascontiguousarray(codes).tobytes()).hexdigest() != manifest["codes_sha256"]:
            raise ImageHashError(f"{codes_path}: damaged codes file, its checksum does not match {MANIFEST}")
        index._ids = list(ids)
        index._codes = np.ascontiguousarray(codes)
        index._row = {doc_id: j for j, doc_id in enumerate(ids)}
        return index
