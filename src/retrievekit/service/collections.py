"""Opening a collection folder, plain or sharded, and the few places where the services treat the two differently.

A folder holding ``cluster.json`` is a sharded collection (``retrievekit.sharding.ShardedCollection``: N ordinary
collections searched by scatter-gather); one holding ``manifest.json`` is a plain ``Collection``. Both offer the
reading and searching API the services use (search, get, get_many, hit_documents, info, config, analyzer,
default_mode, snapshot().generation, rag, writer); ``collection_modes``, ``document_reader`` and ``is_sharded``
cover what differs.

    col = open_collection("my-collection")                 # Collection or ShardedCollection
    col = open_collection("my-sharded", ray="local")       # shards as Ray actors
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeGuard, cast

from retrievekit.core.document import Document
from retrievekit.core.errors import CollectionError

if TYPE_CHECKING:
    from retrievekit.collection import Collection
    from retrievekit.sharding.collection import Cut, ShardedCollection

__all__ = ["CLUSTER_MANIFEST", "AnyCollection", "DocumentReader", "collection_modes", "document_reader",
           "is_sharded", "is_sharded_folder", "open_collection"]

AnyCollection: TypeAlias = "Collection | ShardedCollection"

CLUSTER_MANIFEST = "cluster.json"  # retrievekit.sharding.manifest.CLUSTER_MANIFEST, without importing sharding


def is_sharded_folder(path: str | Path) -> bool:
    """Whether ``path`` holds a sharded collection (its ``cluster.json``)."""
    return (Path(path) / CLUSTER_MANIFEST).is_file()


def open_collection(path: str | Path, *, ray: str | None = None, **options: Any) -> AnyCollection:
    """The collection in folder ``path``: a ``ShardedCollection`` when it holds ``cluster.json`` (``ray``: None
    runs its shards in this process, an address such as "local" or "HOST:PORT" as Ray actors; ``options`` go to
    ``ShardedCollection``), else a ``Collection``. ``ray`` given for a plain collection is an error: it has no
    shards to run."""
    folder = Path(path)
    if is_sharded_folder(folder):
        from retrievekit.sharding.collection import ShardedCollection

        return ShardedCollection(folder, ray=ray, **options)
    if ray is not None or options:
        what = f"the Ray address {ray!r}" if ray is not None else f"options {sorted(options)}"
        raise CollectionError(f"{folder} is not a sharded collection (no {CLUSTER_MANIFEST}): {what} applies to the "
                              "shards of a sharded collection only")
    from retrievekit.collection import Collection

    return Collection(folder)


def is_sharded(col: object) -> TypeGuard[ShardedCollection]:
    """Whether ``col`` is a ShardedCollection (without importing ``retrievekit.sharding`` when none was made)."""
    module = sys.modules.get("retrievekit.sharding.collection")
    return module is not None and isinstance(col, module.ShardedCollection)


def collection_modes(col: AnyCollection) -> list[str]:
    """The search modes ``col`` supports (plain or sharded: ``modes()``)."""
    return col.modes()


class DocumentReader(Protocol):
    """Reads stored documents (passages included, by their own ids) of one committed state."""

    def get(self, doc_id: str) -> Document | None: ...


class _CutReader:
    """``get`` over one cut of a sharded collection (the ``Snapshot.get`` of a plain one)."""

    def __init__(self, col: ShardedCollection, cut: Cut) -> None:
        self.col, self.cut = col, cut

    def get(self, doc_id: str) -> Document | None:
        return self.get_many([doc_id])[0]

    def get_many(self, ids: Sequence[str]) -> list[Document | None]:
        return self.col.get_many(ids, self.cut)


def document_reader(col: AnyCollection) -> DocumentReader:
    """Stored documents of ``col``'s latest committed state, read by id (a plain collection's snapshot; a sharded
    collection's latest cut)."""
    if is_sharded(col):
        return _CutReader(col, col.snapshot())
    return cast("Collection", col).snapshot()
