"""Shards in this process: one ``Shard`` object each, called on a thread pool so the shards of a scatter search in
parallel (the BM25 and dense kernels release the GIL)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from retrievekit.sharding.backends.base import ShardPool
from retrievekit.sharding.shard import Shard


class LocalShards(ShardPool):
    def __init__(self, paths: Sequence[Path]) -> None:
        self.shards = [Shard(path, i) for i, path in enumerate(paths)]
        self._pool = ThreadPoolExecutor(max_workers=max(len(self.shards), 1), thread_name_prefix="retrievekit-shard")

    @property
    def size(self) -> int:
        return len(self.shards)

    def submit(self, shard: int, method: str, *args: Any, **kwargs: Any) -> Future[Any]:
        return self._pool.submit(getattr(self.shards[shard], method), *args, **kwargs)

    def wait(self, shard: int, pending: Future[Any]) -> Any:
        return pending.result(timeout=self.timeout)

    def close(self) -> None:
        for shard in self.shards:
            shard.close_writer()
        self._pool.shutdown(wait=True)
