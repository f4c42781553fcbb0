"""The collection manifest: the one file that says which segments and deletions make up the committed state.

A commit writes every new file first (fsynced), then atomically replaces ``manifest.json``. Whatever the manifest
names is complete; anything else in the folder is garbage from an interrupted writer and is removed by the next
writer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrievekit.core.config import CollectionConfig
from retrievekit.core.errors import CollectionError
from retrievekit.core.files import atomic_write_text
from retrievekit.core.version import __version__

MANIFEST = "manifest.json"
PINS = "pins"  # folder of pinned generations: manifest copies whose files the garbage collector keeps
FORMAT = "retrievekit-collection"
FORMAT_VERSION = 1


@dataclass
class SegmentEntry:
    name: str
    docs: int
    deleted: int = 0
    deletes_file: str | None = None  # relative to the segment folder

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "docs": self.docs, "deleted": self.deleted, "deletes_file": self.deletes_file}


@dataclass
class Manifest:
    config: dict[str, Any]
    generation: int = 0
    next_segment: int = 1
    segments: list[SegmentEntry] = field(default_factory=list)

    @property
    def settings(self) -> CollectionConfig:
        """``config`` as typed settings (the JSON stays the stored form: index file names hash it)."""
        return CollectionConfig.from_json(self.config)

    @property
    def live_docs(self) -> int:
        return sum(s.docs - s.deleted for s in self.segments)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "retrievekit_version": __version__,
            "generation": self.generation,
            "next_segment": self.next_segment,
            "config": self.config,
            "segments": [s.to_json() for s in self.segments],
        }

    def write(self, folder: Path) -> None:
        atomic_write_text(folder / MANIFEST, json.dumps(self.to_json(), indent=1, ensure_ascii=False))

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise CollectionError(f"{folder} is not a retrievekit collection (no {MANIFEST})") from None
        except (OSError, ValueError) as exc:
            raise CollectionError(f"cannot read {path}: {exc}") from exc
        return cls.from_json(data, path)

    @classmethod
    def from_json(cls, data: Any, path: Path) -> Manifest:
        """The manifest stored as ``data`` (read from ``path``, named in errors): format, version and every field
        checked."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CollectionError(f"{path} is not a retrievekit collection manifest")
        if data.get("format_version", 0) > FORMAT_VERSION:
            raise CollectionError(
                f"{path} has format version {data['format_version']}, newer than this retrievekit understands "
                f"({FORMAT_VERSION}); upgrade retrievekit"
            )
        try:
            CollectionConfig.from_json(data["config"], f"{path}: config")  # a damaged config fails here, named
            return cls(
                config=data["config"],
                generation=int(data["generation"]),
                next_segment=int(data["next_segment"]),
                segments=[SegmentEntry(**s) for s in data["segments"]],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CollectionError(f"{path} is damaged ({type(exc).__name__}: {exc}); restore it from a backup or "
                                  "re-create the collection") from None


# -- pinned generations ---------------------------------------------------------------------------------------------
# A pinned generation stays readable after later commits: its manifest is copied to pins/ and the writer's garbage
# collection keeps every file a pinned manifest names. A sharded collection pins each shard's commit so its readers
# can open exactly the cut the cluster manifest records (Lucene keeps commit points the same way).


def _pin_path(folder: Path, generation: int) -> Path:
    return folder / PINS / f"manifest-{generation:09d}.json"


def pin_manifest(folder: Path, manifest: Manifest) -> None:
    """Keep ``manifest``'s generation readable (``read_pinned``) until ``unpin``; atomic."""
    (folder / PINS).mkdir(exist_ok=True)
    atomic_write_text(_pin_path(folder, manifest.generation), json.dumps(manifest.to_json(), ensure_ascii=False))


def pinned_generations(folder: Path) -> list[int]:
    """The pinned generations, ascending."""
    out = []
    for path in (folder / PINS).glob("manifest-*.json"):
        try:
            out.append(int(path.stem.split("-", 1)[1]))
        except ValueError:
            continue  # not ours
    return sorted(out)


def read_pinned(folder: Path, generation: int) -> Manifest:
    """The manifest of pinned ``generation``; CollectionError if it is not (or no longer) pinned."""
    path = _pin_path(folder, generation)
    if not path.exists():
        current = Manifest.read(folder)
        if current.generation == generation:
            return current
        raise CollectionError(f"generation {generation} of {folder} is not pinned (pinned: "
                              f"{pinned_generations(folder) or 'none'}; current: {current.generation})")
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise CollectionError(f"generation {generation} of {folder} was unpinned while being read") from None
    except (OSError, ValueError) as exc:
        raise CollectionError(f"pinned manifest {path} is damaged ({type(exc).__name__}: {exc})") from None
    return Manifest.from_json(data, path)


def pinned_manifests(folder: Path) -> list[Manifest]:
    out = []
    for generation in pinned_generations(folder):
        try:
            out.append(read_pinned(folder, generation))
        except CollectionError:
            continue  # unpinned meanwhile
    return out


def unpin(folder: Path, keep: set[int]) -> None:
    """Unpin every generation not in ``keep``; their files go at the writer's next garbage collection."""
    for generation in pinned_generations(folder):
        if generation not in keep:
            _pin_path(folder, generation).unlink(missing_ok=True)
