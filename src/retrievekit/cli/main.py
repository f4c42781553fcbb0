"""Entry point of the ``retrievekit`` command."""

from __future__ import annotations

import argparse
import logging
import sys

from retrievekit.cli.ask import add_ask
from retrievekit.cli.commands import add_delete, add_index, add_info, add_optimize, add_search
from retrievekit.cli.components import add_components
from retrievekit.cli.demo import add_demo
from retrievekit.cli.distill import add_distill
from retrievekit.cli.errors import cli_message, command_parser
from retrievekit.cli.evaluate import add_eval
from retrievekit.cli.serve import add_serve
from retrievekit.core.errors import RetrievekitError
from retrievekit.core.progress import silence_library_progress
from retrievekit.core.version import __version__
from retrievekit.serve.mcp import add_mcp


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retrievekit",
        description="retrievekit: index documents into collections, search them with Lucene-exact BM25, dense "
        "embeddings or both fused (with reranking), and evaluate retrieval with trec_eval-exact metrics.",
    )
    parser.add_argument("--version", action="version", version=f"retrievekit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (add_demo, add_index, add_search, add_eval, add_info, add_delete, add_optimize, add_distill, add_serve,
                add_mcp, add_ask, add_components):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "no_progress", False):
        silence_library_progress()
    try:
        return int(args.func(args) or 0)
    except RetrievekitError as exc:
        message = cli_message(exc, command_parser(parser, args.command))
        print(f"retrievekit {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing uncommitted was saved", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
