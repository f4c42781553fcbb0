"""Chunker specs: ``get_chunker("tokens:256:32")`` through the ``chunker`` registry (``retrievekit.core.registry``).

A registered target is called ``target(spec, encoder)`` with the parsed ``Spec``; ``register_chunker`` keeps the
older form, a ``factory(args, encoder)`` taking the ':'-separated arguments, with at most ``max_args`` of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from retrievekit.chunking.base import DEFAULT_MAX_TOKENS, DEFAULT_PERCENTILE, Chunker, ChunkingError
from retrievekit.chunking.html import HTMLChunker
from retrievekit.chunking.markdown import MarkdownChunker
from retrievekit.chunking.semantic import SemanticChunker
from retrievekit.chunking.text import ParagraphChunker, SentenceChunker, TokenChunker
from retrievekit.core.registry import Registry, Spec, parse_stage, registry

if TYPE_CHECKING:
    from retrievekit.encoders.base import Encoder

ChunkerFactory = Callable[[list[str], "Encoder | None"], Chunker]

CHUNKERS: Registry[Chunker] = registry("chunker", error=ChunkingError)


class _SpecShapeError(ChunkingError):
    """A spec with the wrong number of parts: its message is complete, get_chunker does not wrap it."""


class _Positional:
    """Adapts a ``factory(args, encoder)`` to the registry's ``target(spec, encoder)``, checking the part count."""

    def __init__(self, factory: ChunkerFactory, max_args: int, usage: str) -> None:
        self.factory, self.max_args, self.usage = factory, max_args, usage

    def __call__(self, spec: Spec, encoder: Encoder | None) -> Chunker:
        # chunker arguments are positional: a "key=value" part counts as one too many
        args = [*spec.args, *(f"{k}={v}" for k, v in spec.options.items())]
        if len(args) > self.max_args:
            extra = ":".join(args[self.max_args :])
            raise _SpecShapeError(f"chunker spec {spec.text!r} has too many parts ({extra!r}); expected {self.usage}")
        return self.factory(args, encoder)


def register_chunker(name: str, factory: ChunkerFactory, max_args: int, usage: str, *,
                     description: str = "", extra: str | None = None, requires: Sequence[str] = ()) -> None:
    """Make ``get_chunker("NAME:ARG…")`` build ``factory(args, encoder)`` (at most ``max_args`` arguments)."""
    CHUNKERS.register(name, _Positional(factory, max_args, usage), usage=usage, description=description,
                      extra=extra, requires=requires)


def get_chunker(spec: str | Chunker, *, encoder: Encoder | None = None) -> Chunker:
    """A chunker from a spec such as ``"tokens:256:32"``, ``"sentences"``, ``"markdown:200"``,
    ``"semantic:10:128"`` (with ``encoder=``); a Chunker is returned as is. Bad specs raise ChunkingError naming
    the bad part and the accepted forms."""
    if isinstance(spec, Chunker):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ChunkingError(f"a chunker spec must be a non-empty string such as {CHUNKERS.usages()}; got {spec!r}")
    parsed = parse_stage(spec)
    if parsed.name not in CHUNKERS:
        name = spec.strip().partition(":")[0].strip()
        raise ChunkingError(f"unknown chunking strategy {name!r} in spec {spec!r}; "
                            f"choose one of: {CHUNKERS.usages()}")
    entry = CHUNKERS.entry(parsed.name)
    try:
        return entry.load()(parsed, encoder)
    except _SpecShapeError as exc:
        raise ChunkingError(str(exc)) from None
    except ChunkingError as exc:
        raise ChunkingError(f"bad chunker spec {spec!r} ({entry.usage}): {exc}") from None


# -- the built-in strategies ---------------------------------------------------------------------------------------
def _int_arg(args: list[str], i: int, what: str, default: int) -> int:
    if i >= len(args) or args[i] == "":
        return default
    try:
        return int(args[i])
    except ValueError:
        raise ChunkingError(f"{what} must be an integer, got {args[i]!r}") from None


def _float_arg(args: list[str], i: int, what: str, default: float) -> float:
    if i >= len(args) or args[i] == "":
        return default
    try:
        return float(args[i])
    except ValueError:
        raise ChunkingError(f"{what} must be a number, got {args[i]!r}") from None


def _budget_factory(cls: Callable[[int], Chunker], name: str) -> ChunkerFactory:
    def make(args: list[str], encoder: Encoder | None) -> Chunker:
        return cls(_int_arg(args, 0, f"{name} MAX_TOKENS", DEFAULT_MAX_TOKENS))
    return make


def _tokens(args: list[str], encoder: Encoder | None) -> Chunker:
    return TokenChunker(_int_arg(args, 0, "tokens SIZE", DEFAULT_MAX_TOKENS), _int_arg(args, 1, "tokens OVERLAP", 0))


def _semantic(args: list[str], encoder: Encoder | None) -> Chunker:
    if encoder is None:
        raise ChunkingError("the semantic chunker needs an encoder: get_chunker('semantic', encoder=...)")
    return SemanticChunker(encoder, _float_arg(args, 0, "semantic PERCENTILE", DEFAULT_PERCENTILE),
                           _int_arg(args, 1, "semantic MAX_TOKENS", DEFAULT_MAX_TOKENS))


register_chunker("tokens", _tokens, 2, "tokens:SIZE[:OVERLAP]",
                 description="fixed windows of SIZE tokens, consecutive ones sharing OVERLAP tokens")
register_chunker("sentences", _budget_factory(SentenceChunker, "sentences"), 1, "sentences[:MAX_TOKENS]",
                 description="whole sentences grouped up to the budget")
register_chunker("paragraphs", _budget_factory(ParagraphChunker, "paragraphs"), 1, "paragraphs[:MAX_TOKENS]",
                 description="blank-line separated blocks, small ones merged, long ones split by sentences")
register_chunker("markdown", _budget_factory(MarkdownChunker, "markdown"), 1, "markdown[:MAX_TOKENS]",
                 description="sections at Markdown headings, fenced code kept whole (markdown-it-py)",
                 extra="documents", requires=["markdown_it"])
register_chunker("html", _budget_factory(HTMLChunker, "html"), 1, "html[:MAX_TOKENS]",
                 description="block elements of HTML source, chunked like Markdown sections")
register_chunker("semantic", _semantic, 2, "semantic[:PERCENTILE[:MAX_TOKENS]]",
                 description="cut where neighbouring sentences' embeddings diverge (needs an encoder)")


def _code(args: list[str], encoder: Encoder | None) -> Chunker:
    from retrievekit.chunking.code import DEFAULT_MAX_LINES, CodeChunker

    return CodeChunker(_int_arg(args, 0, "code MAX_LINES", DEFAULT_MAX_LINES))


CHUNKERS.register("code", _Positional(_code, 1, "code[:MAX_LINES]"), usage="code[:MAX_LINES]", extra="code",
                  requires=["tree_sitter"],
                  description="functions, methods and classes of source code (tree-sitter; language from the path)")
