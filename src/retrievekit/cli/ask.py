"""``retrievekit ask``: answer a question from a collection with citations (RAG)."""

from __future__ import annotations

import argparse
import math
import textwrap
from typing import Any

from retrievekit.cli.render import print_json, terminal_safe
from retrievekit.rag.config import DEFAULT_RAG_CONFIG as D
from retrievekit.service.types import MODES


def add_ask(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ask",
        help="answer a question from a collection, citing its sources",
        description="Retrieve passages for the question, keep the relevant ones (score-gap selection, token budget, "
        "optional sentence compression), and answer with a generator that cites them as [n]. The default generator "
        "is the offline gemma-3-270m base model (a weak model: the point is the measured pipeline); any "
        "OpenAI-compatible endpoint works with --generator openai:MODEL@URL. Sources from a code collection (documents "
        "with path/start_line/end_line metadata, as `index --code` writes) are cited as path:start-end.",
    )
    p.add_argument("collection", help="collection folder")
    p.add_argument("question", help="the question")
    p.add_argument("--generator", default="local", metavar="SPEC",
                   help="'local' (offline gemma-3-270m), 'local:PATH', 'openai:MODEL@URL' (key from "
                   "$OPENAI_API_KEY), or 'none' to print the selected contexts only")
    p.add_argument("--mode", choices=MODES, default=D.mode,
                   help="search mode (default hybrid when the collection has a dense index, else bm25)")
    p.add_argument("--depth", type=int, default=D.depth,
                   help=f"passages retrieved before selection (default {D.depth})")
    p.add_argument("--selector", default=D.selector, metavar="SPEC",
                   help="context selection: top:K, gap[:DROP], mmr:K[:LAMBDA], budget:TOKENS, joined by + "
                   f"(default {D.selector})")
    p.add_argument("--compress", default=D.compress, metavar="SPEC",
                   help="sentence-level compression: lexical[:N|:RATIO] or dense[:N|:RATIO] (default: none)")
    p.add_argument("--expand", default=D.expand, metavar="SPEC", help="query expansion: multi-query[:N] or hyde")
    p.add_argument("--filter", metavar="JSON", help="metadata filter for retrieval, as for `search`")
    p.add_argument("--allow", metavar="IDS", help="comma-separated document ids the answer may use (allow-list)")
    p.add_argument("--drop-flagged", action="store_true",
                   help="leave out passages flagged as prompt injection or poisoning (default: keep them, flagged)")
    p.add_argument("--max-tokens", type=int, default=D.max_tokens,
                   help=f"longest answer, in generator tokens (default {D.max_tokens})")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="give up on an openai:... generator after this many seconds, retries included (default "
                   "120); a local model is bounded by --max-tokens instead")
    p.add_argument("--json", action="store_true", help="print answer, citations and contexts as JSON")
    from retrievekit.cli.commands import add_ray_option

    add_ray_option(p)
    p.set_defaults(func=run_ask)


def _generator(spec: str, timeout: float | None) -> Any:
    """The --generator spec, built here when --timeout applies to it (the spec grammar has no place for it)."""
    from retrievekit.core.errors import RetrievekitError

    if timeout is None:
        return spec
    if not (timeout > 0 and math.isfinite(timeout)):
        raise RetrievekitError(f"--timeout must be a positive number of seconds, got {timeout:g}")
    if spec.strip().partition(":")[0].lower() != "openai":
        raise RetrievekitError(f"--timeout applies to openai:MODEL@URL generators; --generator {spec!r} is not one (a "
                       "local model's answer is bounded by --max-tokens)")
    from retrievekit.rag.generators.base import get_generator

    return get_generator(spec, timeout=timeout)


def run_ask(args: argparse.Namespace) -> int:
    from retrievekit.cli.commands import opened, parse_filter
    from retrievekit.service.ask import Asker, AskRequest

    request = AskRequest(args.question, mode=args.mode, depth=args.depth, selector=args.selector,
                         compress=args.compress, filter=parse_filter(args.filter), drop_flagged=args.drop_flagged,
                         max_tokens=args.max_tokens, expand=args.expand,
                         allow=set(args.allow.split(",")) if args.allow else None)
    generator = None if args.generator == "none" else _generator(args.generator, args.timeout)
    with opened(args) as col:
        answer = Asker().ask(col, request, generator=generator).answer
    if args.json:
        print_json(answer.to_json())
        return 0
    if args.generator != "none":
        print(textwrap.fill(terminal_safe(answer.answer), 100) or "(empty answer)")  # untrusted text
        if answer.citations:
            print("\nCited:")
            for c in answer.citations:
                if c.location is not None:  # a source file's lines (code) or pages (PDF, slides)
                    chars = f", characters {c.start}-{c.end}" if c.location.page is not None else ""
                    print(f"  [{c.number}] {terminal_safe(str(c.location), newlines=False)} "
                          f"({terminal_safe(c.doc_id, newlines=False)}{chars})")
                    continue
                print(f"  [{c.number}] {terminal_safe(c.doc_id, newlines=False)} (characters {c.start}-{c.end}, "
                      f"passage {terminal_safe(c.passage_id, newlines=False)})")
    print(f"\nContexts ({len(answer.contexts)}, {answer.context_tokens} tokens"
          + (", retrieval cached" if answer.retrieval_cached else "") + "):")
    for i, p in enumerate(answer.contexts, start=1):
        flags = f"  flags: {', '.join(p.flags)}" if p.flags else ""
        name = f"{p.location} {p.title}".strip() if p.location is not None else p.title or p.doc_id
        print(f"  [{i}] {terminal_safe(name, newlines=False)}  score {p.score:.4f}{flags}")
        print(textwrap.indent(textwrap.fill(terminal_safe(p.text), 96, max_lines=4, placeholder=" …"), "      "))
    return 0
