"""A resumable embedding cache: vectors keyed by (encoder spec, exact input text), stored in shards as encoding goes.

Encoding a corpus with a transformer takes minutes to hours on a CPU. Every ``flush_every`` texts the new vectors are
written as one shard (vectors first, then the keys file, each replaced atomically; a shard counts only once its keys
file exists), so an interrupted run loses at most one shard of work, and a later run — of the same collection, or
of ``retrievekit eval`` on the same data — encodes only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.core.files import atomic_write_array, fsync_write_array, read_npy

logger = logging.getLogger(__name__)

KEY_BYTES = 16


def default_cache_root() -> Path:
    root = os.environ.get("RETRIEVEKIT_CACHE")
    return Path(root) / "embeddings" if root else Path.home() / ".cache" / "retrievekit" / "embeddings"


def model_folder_fingerprint(model: Any) -> str | None:
    """For a model that is a local folder: a digest of its files' names, sizes and modification times (training
    checkpoints left out). A model retrained into the same folder gives other vectors, so its cache must differ;
    hub names and aliases have none."""
    if not isinstance(model, str) or not model:
        return None
    folder = Path(model).expanduser()
    if not folder.is_dir():
        return None
    digest = hashlib.sha1()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if rel.parts[0] == "checkpoints" or not path.is_file():
            continue
        st = path.stat()
        digest.update(f"{rel.as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def spec_key(spec: dict[str, Any]) -> str:
    """Folder name for one encoder configuration (every field that changes the vectors, backend included, and for a
    local model folder the fingerprint of its files)."""
    relevant = {k: spec.get(k) for k in sorted(spec) if k not in ("device", "threads", "cache_dir")}
    fingerprint = model_folder_fingerprint(spec.get("model"))
    if fingerprint is not None:
        relevant["model_files"] = fingerprint
    digest = hashlib.sha1(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]
    model = str(spec.get("model", "model")).rstrip("/").split("/")[-1]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)[:40]
    return f"{spec.get('backend', 'encoder')}-{safe}-{digest}"


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """(n, 16) uint8 BLAKE2b digests of the texts."""
    out = np.empty((len(texts), KEY_BYTES), dtype=np.uint8)
    for i, t in enumerate(texts):
        out[i] = np.frombuffer(hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=KEY_BYTES).digest(),
                               dtype=np.uint8)
    return out


class EmbeddingCache:
    """Vectors of one encoder configuration in ``root/<spec_key>/``."""

    def __init__(self, root: str | Path, spec: dict[str, Any]) -> None:
        self.folder = Path(root) / spec_key(spec)
        self.dim = int(spec["dim"])
        self._index: dict[bytes, tuple[int, int]] | None = None
        self._shards: list[np.ndarray] = []

    def _load(self) -> dict[bytes, tuple[int, int]]:
        if self._index is None:
            index: dict[bytes, tuple[int, int]] = {}
            shards: list[np.ndarray] = []
            if self.folder.is_dir():
                for keys_file in sorted(self.folder.glob("keys-*.npy")):
                    vecs_file = keys_file.with_name("vecs-" + keys_file.name[5:])
                    try:
                        keys = read_npy(keys_file)
                        vecs = read_npy(vecs_file, mmap=True)
                    except (OSError, ValueError) as exc:
                        logger.warning("ignoring unreadable embedding cache shard %s: %s", keys_file, exc)
                        continue
                    if vecs.shape != (len(keys), self.dim):
                        logger.warning("ignoring embedding cache shard %s: shape %s", vecs_file, vecs.shape)
                        continue
                    for row, key in enumerate(keys):
                        index[key.tobytes()] = (len(shards), row)
                    shards.append(vecs)
            self._index, self._shards = index, shards
        return self._index

    def __len__(self) -> int:
        return len(self._load())

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found bool mask, vectors float32 (n, dim) — rows not found are zero)."""
        index = self._load()
        found = np.zeros(len(keys), dtype=bool)
        out = np.zeros((len(keys), self.dim), dtype=np.float32)
        for i, key in enumerate(keys):
            loc = index.get(key.tobytes())
            if loc is not None:
                out[i] = self._shards[loc[0]][loc[1]]
                found[i] = True
        return found, out

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        if len(keys) == 0:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{len(list(self.folder.glob('keys-*.npy'))):06d}-{secrets.token_hex(4)}.npy"
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        fsync_write_array(self.folder / f"vecs-{name}", vectors)
        atomic_write_array(self.folder / f"keys-{name}", np.ascontiguousarray(keys))  # the shard exists from here
        index = self._load()
        for row, key in enumerate(keys):
            index[key.tobytes()] = (len(self._shards), row)
        self._shards.append(vectors)

    def clear(self) -> None:
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)
        self._index, self._shards = None, []


def encode_with_cache(
    encode: Callable[[list[str]], np.ndarray],
    texts: Sequence[str],
    dim: int,
    cache: EmbeddingCache | None,
    *,
    flush_every: int = 512,
    progress: bool = False,
    desc: str = "encoding",
) -> np.ndarray:
    """Vectors for ``texts`` (already prompted): cached ones are read, the rest encoded ``flush_every`` at a time,
    longest first, each group written to the cache before the next starts."""
    n = len(texts)
    out = np.empty((n, dim), dtype=np.float32)
    if n == 0:
        return out
    keys = text_keys(texts) if cache is not None else None
    if cache is not None and keys is not None:
        found, cached = cache.lookup(keys)
        out[found] = cached[found]
        todo = np.flatnonzero(~found)
        if len(todo) < n:
            logger.info("embedding cache %s: %d of %d texts already encoded", cache.folder, n - len(todo), n)
    else:
        todo = np.arange(n)
    if len(todo) == 0:
        return out
    # One text appearing several times is encoded once.
    unique: dict[str, list[int]] = {}
    for i in todo.tolist():
        unique.setdefault(texts[i], []).append(i)
    order = sorted(unique, key=len, reverse=True)
    from retrievekit.core.progress import progress_bar

    bar = progress_bar(progress, len(order), desc)
    try:
        for start in range(0, len(order), flush_every):
            group = order[start : start + flush_every]
            vectors = np.asarray(encode(group), dtype=np.float32)
            rows = [unique[t][0] for t in group]
            for t, v in zip(group, vectors):
                out[unique[t]] = v
            if cache is not None and keys is not None:
                cache.add(keys[rows], vectors)
            bar.update(len(group))
    finally:
        bar.close()
    return out
