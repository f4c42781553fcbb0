"""Entry point of the ``retrievekit`` command."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from retrievekit.cli.errors import cli_message, command_parser
from retrievekit.core.errors import RetrievekitError
from retrievekit.core.progress import silence_library_progress
from retrievekit.core.version import __version__

# command -> the module and function that add its subparser, in `--help` order. Only the invoked command's module is
# imported (each pulls in its own layers: RAG, evaluation, the server), which keeps a cold `search` near a second.
COMMANDS = {
    "demo": ("retrievekit.cli.demo", "add_demo"),
    "index": ("retrievekit.cli.commands", "add_index"),
    "search": ("retrievekit.cli.commands", "add_search"),
    "eval": ("retrievekit.cli.evaluate", "add_eval"),
    "info": ("retrievekit.cli.commands", "add_info"),
    "delete": ("retrievekit.cli.commands", "add_delete"),
    "optimize": ("retrievekit.cli.commands", "add_optimize"),
    "distill": ("retrievekit.cli.distill", "add_distill"),
    "build-data": ("retrievekit.cli.training", "add_build_data"),
    "mine-negatives": ("retrievekit.cli.training", "add_mine_negatives"),
    "score-teacher": ("retrievekit.cli.training", "add_score_teacher"),
    "generate-queries": ("retrievekit.cli.synthetic", "add_generate_queries"),
    "train": ("retrievekit.cli.training", "add_train"),
    "serve": ("retrievekit.cli.serve", "add_serve"),
    "mcp": ("retrievekit.serve.mcp", "add_mcp"),
    "ask": ("retrievekit.cli.ask", "add_ask"),
    "components": ("retrievekit.cli.components", "add_components"),
}


def _invoked(argv: list[str]) -> str | None:
    """The command named on the command line (the first argument that is not an option), if it is a known one."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv`` naming a known command, only that command's subparser (and imports)."""
    parser = argparse.ArgumentParser(
        prog="retrievekit",
        description="retrievekit: index documents into collections, search them with Lucene-exact BM25, dense "
        "embeddings or both fused (with reranking), and evaluate retrieval with trec_eval-exact metrics.",
    )
    parser.add_argument("--version", action="version", version=f"retrievekit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    invoked = _invoked(argv) if argv is not None else None
    for command, (module, function) in COMMANDS.items():
        if invoked in (None, command):  # no or an unknown command (help, a typo): every command, for the listing
            getattr(importlib.import_module(module), function)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(sys.argv[1:] if argv is None else argv)
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
