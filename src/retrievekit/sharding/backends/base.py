"""How the coordinator reaches its shards: submit a ``Shard`` method call to one shard, collect the answers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from retrievekit.core.errors import CollectionError, RetrievekitError


class ShardUnavailableError(RetrievekitError):
    """A shard did not answer (its actor died and is restarting, its node is gone, or it timed out)."""

    def __init__(self, shard: int, reason: str) -> None:
        super().__init__(f"shard {shard} is unavailable: {reason}")
        self.shard = shard
        self.reason = reason


class CutExpiredError(CollectionError):
    """A shard no longer keeps the generation a cut names: writers have committed twice since the cut was read.
    Searching the latest cut again answers (``ShardedCollection.search`` does so by itself)."""


class ShardPool(ABC):
    """The shards of one sharded collection, reachable by number."""

    #: how long a call may take before the shard counts as unavailable (seconds; None: no limit)
    timeout: float | None = None

    @property
    @abstractmethod
    def size(self) -> int: ...

    @abstractmethod
    def submit(self, shard: int, method: str, *args: Any, **kwargs: Any) -> Any:
        """Start ``Shard.method(*args, **kwargs)`` on ``shard``; returns a pending call for ``wait``."""

    @abstractmethod
    def wait(self, shard: int, pending: Any) -> Any:
        """The result of a pending call; ShardUnavailableError when the shard could not answer (the shard's own
        errors, such as a bad filter, are raised as they are)."""

    def call(self, shard: int, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.wait(shard, self.submit(shard, method, *args, **kwargs))

    def scatter(self, method: str, args: Sequence[tuple[Any, ...]] | None = None, *,
                shards: Sequence[int] | None = None, partial: bool = False, **kwargs: Any) -> list[Any]:
        """Call ``method`` on every shard in ``shards`` (default all) at once, with ``args[i]`` for the i-th of
        them (or none), and gather the answers in that order. ``partial``: a shard that cannot answer gives a
        ShardUnavailableError in its place instead of failing the whole call."""
        targets = list(range(self.size)) if shards is None else list(shards)
        pending = [self.submit(s, method, *(args[i] if args is not None else ()), **kwargs)
                   for i, s in enumerate(targets)]
        out: list[Any] = []
        for s, p in zip(targets, pending):
            try:
                out.append(self.wait(s, p))
            except ShardUnavailableError as exc:
                if not partial:
                    for rest in pending[len(out) + 1:]:
                        self.discard(rest)
                    raise
                out.append(exc)
        return out

    def discard(self, pending: Any) -> None:  # noqa: B027 (optional hook: most backends need nothing)
        """Forget a pending call whose answer is no longer needed."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release the pool's resources (the shards' data stays)."""
