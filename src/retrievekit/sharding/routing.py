"""Which shard owns a document: a stable hash of its id (the same in every process and Python version, unlike
``hash()``), so any client routes a write or a lookup without asking anyone."""

from __future__ import annotations

import hashlib


def shard_of(doc_id: str, shards: int) -> int:
    """The shard (0..shards-1) that owns ``doc_id``: the first 8 bytes of its BLAKE2b digest modulo ``shards``."""
    digest = hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % shards
