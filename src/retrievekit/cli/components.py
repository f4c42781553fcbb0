"""``retrievekit components``: every named component (analyzers, encoders, tiers, ANN indexes, chunkers, selectors,
compressors, generators, rerankers, scorers, fusion methods), its spec syntax, and whether it is installed or which
extra installs it. Lists the registries of ``retrievekit.core.registry`` without importing any optional library."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from retrievekit.core.registry import REGISTRIES, Entry

# The modules that declare registries; importing them registers the built-ins (none imports an optional library).
REGISTRY_MODULES = (
    "retrievekit.analysis",
    "retrievekit.encoders.registry",
    "retrievekit.encoders.splade",
    "retrievekit.chunking",
    "retrievekit.index.dense.tiers",
    "retrievekit.index.dense.ann.faiss_ann",
    "retrievekit.retrieval.bm25.scoring",
    "retrievekit.retrieval.fusion",
    "retrievekit.retrieval.rerank.base",
    "retrievekit.rag.selection",
    "retrievekit.rag.compression",
    "retrievekit.rag.generators.base",
    "retrievekit.ingest.documents",
)


def load_registries() -> None:
    """Import every module that declares a registry, so ``REGISTRIES`` holds every kind."""
    for module in REGISTRY_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:  # a module moved or not there in this version: list the others
            if not (exc.name or "").startswith("retrievekit"):
                raise


def install_hint(entry: Entry[Any]) -> str:
    """"installed", or what installs the missing libraries."""
    missing = entry.missing
    if not missing:
        return "installed"
    if entry.extra:
        return f"pip install 'retrievekit[{entry.extra}]'"
    return "missing: " + ", ".join(missing)


def describe(entry: Entry[Any]) -> dict[str, Any]:
    missing = entry.missing
    return {"name": entry.name, "usage": entry.usage, "aliases": list(entry.aliases),
            "installed": not missing, "extra": entry.extra, "requires": list(entry.requires), "missing": missing,
            "install": None if not missing else install_hint(entry), "description": entry.description}


def components(kinds: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """kind -> its components (``describe``), for every registry (or those named in ``kinds``)."""
    load_registries()
    wanted = None if not kinds else {k.lower() for k in kinds}
    return {kind: [describe(entry) for entry in reg] for kind, reg in sorted(REGISTRIES.items())
            if wanted is None or kind in wanted}


def render(listing: dict[str, list[dict[str, Any]]]) -> str:
    lines: list[str] = []
    for kind, items in listing.items():
        installed = sum(item["installed"] for item in items)
        lines.append(f"{kind} ({installed} of {len(items)} installed)")
        width = max((len(item["usage"]) for item in items), default=0)
        for item in items:
            status = "installed" if item["installed"] else item["install"]
            detail = f"  {item['description']}" if item["description"] else ""
            lines.append(f"  {item['usage']:<{width}}  {status}{detail}".rstrip())
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def encoder_paths() -> dict[str, Any]:
    """This CPU's encoding-relevant features, the numeric paths a sentence-transformers encoder would try here,
    a forced path if any, and the decisions cached so far (what was chosen for which model, and why)."""
    import os

    from retrievekit.core import allocator
    from retrievekit.core.cpu import cpu_info
    from retrievekit.encoders.auto import PATH_ENV, cached_decisions, candidate_paths

    cpu = cpu_info()
    return {"cpu": cpu.summary(), "candidates": candidate_paths(cpu), "forced": os.environ.get(PATH_ENV) or None,
            "allocator": allocator.describe(),
            "decisions": [{"model": d.model, "path": d.path, "reason": d.reason, "decided_at": d.decided_at}
                          for d in cached_decisions()]}


def render_encoder_paths(paths: dict[str, Any]) -> str:
    cpu = paths["cpu"]
    lines = [f"encoder paths on this CPU ({cpu['model']}, {cpu['physical_cores']} cores; "
             f"{', '.join(cpu['features']) or 'no AVX2/AVX-512 features'})",
             f"  measured against fp32 on first bulk encode: {', '.join(paths['candidates'])}"
             + (f"; forced: {paths['forced']}" if paths["forced"] else ""),
             f"  {paths['allocator']}"]
    for d in paths["decisions"]:
        lines.append(f"  {d['model']}: {d['reason']} ({d['decided_at']})")
    if not paths["decisions"]:
        lines.append("  no choice made yet (made on the first bulk encode of a sentence-transformers model)")
    return "\n".join(lines) + "\n"


def run_components(args: argparse.Namespace) -> int:
    load_registries()
    unknown = sorted({k.lower() for k in args.kind or []} - set(REGISTRIES))
    if unknown:
        print(f"retrievekit components: error: unknown kind(s) {', '.join(unknown)}; choose from: "
              f"{', '.join(sorted(REGISTRIES))}", file=sys.stderr)
        return 2
    listing = components(args.kind)
    # the numeric path a sentence-transformers encoder runs on here (encoders.auto), with the encoders
    paths = encoder_paths() if not args.kind or "encoder" in {k.lower() for k in args.kind} else None
    if args.json:
        print(json.dumps({**listing, **({"encoder paths": paths} if paths else {})}, indent=2))
    else:
        print(render(listing), end="")
        if paths:
            print("\n" + render_encoder_paths(paths), end="")
    return 0


def add_components(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "components",
        help="list the named components (encoders, tiers, chunkers, rerankers, ...) and which extras enable them",
        description="List every named component by kind: the spec syntax to write, and whether it is installed or "
        "which `pip install 'retrievekit[EXTRA]'` enables it.",
    )
    p.add_argument("--kind", action="append", metavar="KIND",
                   help="only this kind (repeatable), e.g. --kind encoder --kind 'vector tier'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_components)
