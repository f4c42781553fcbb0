"""The cluster manifest: the one file that says which commit of every shard makes up the sharded collection.

A multi-shard write commits (and pins) each shard first, then replaces ``cluster.json`` atomically with every
shard's new generation. Readers open each shard at the generation the cluster manifest names, so they always see
one cut: every shard's part of a write or none of it. A shard commit the cluster manifest never recorded (a writer
that died in between) is undone by the next writer (``CollectionWriter.restore``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrievekit.core.errors import CollectionError
from retrievekit.core.files import atomic_write_text
from retrievekit.core.version import __version__

CLUSTER_MANIFEST = "cluster.json"
FORMAT = "retrievekit-sharded-collection"
FORMAT_VERSION = 1


@dataclass
class ShardEntry:
    path: str  # relative to the cluster folder, or absolute (any path every worker can reach)
    generation: int  # the shard's pinned commit that belongs to this cut
    documents: int = 0  # its live documents at that commit

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "generation": self.generation, "documents": self.documents}


@dataclass
class ClusterManifest:
    shards: list[ShardEntry]
    generation: int = 0
    next_seq: int = 0  # the next document's global insertion number (ties rank in insertion order, as one collection)
    config: dict[str, Any] = field(default_factory=dict)  # the shards' collection settings (the same for every one)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def documents(self) -> int:
        return sum(s.documents for s in self.shards)

    def shard_path(self, folder: Path, i: int) -> Path:
        path = Path(self.shards[i].path)
        return path if path.is_absolute() else folder / path

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "retrievekit_version": __version__,
                "generation": self.generation, "next_seq": self.next_seq, "documents": self.documents,
                "config": self.config, "router": {"hash": "blake2b-64", "shards": len(self.shards)},
                "shards": [s.to_json() for s in self.shards], **self.extra}

    def write(self, folder: Path) -> None:
        atomic_write_text(folder / CLUSTER_MANIFEST, json.dumps(self.to_json(), indent=1, ensure_ascii=False))

    @classmethod
    def read(cls, folder: Path) -> ClusterManifest:
        path = folder / CLUSTER_MANIFEST
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise CollectionError(f"{folder} is not a sharded retrievekit collection (no {CLUSTER_MANIFEST})") from None
        except (OSError, ValueError) as exc:
            raise CollectionError(f"cannot read {path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CollectionError(f"{path} is not a sharded collection manifest")
        if data.get("format_version", 0) > FORMAT_VERSION:
            raise CollectionError(f"{path} has format version {data['format_version']}, newer than this retrievekit "
                                  f"understands ({FORMAT_VERSION}); upgrade retrievekit")
        try:
            shards = [ShardEntry(str(s["path"]), int(s["generation"]), int(s.get("documents", 0)))
                      for s in data["shards"]]
            router = data.get("router") or {}
            if (router.get("hash", "blake2b-64") != "blake2b-64"
                    or int(router.get("shards", len(shards))) != len(shards)):
                raise ValueError(f"router {router} does not match {len(shards)} shards")
            if not shards:
                raise ValueError("no shards")
            known = {"format", "format_version", "retrievekit_version", "generation", "next_seq", "documents",
                     "config", "router", "shards"}
            if not isinstance(data["config"], dict):
                raise ValueError("config is not an object")
            return cls(shards=shards, generation=int(data["generation"]), next_seq=int(data["next_seq"]),
                       config=data["config"], extra={k: v for k, v in data.items() if k not in known})
        except (KeyError, TypeError, ValueError) as exc:
            raise CollectionError(f"{path} is damaged ({type(exc).__name__}: {exc}); restore it from a "
                                  "backup") from None
