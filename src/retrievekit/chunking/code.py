"""Structural chunking of source code with tree-sitter: one chunk per function, method and class, whole lines.

``chunk_code(text, path)`` parses a file with the grammar of its language (``code_languages``: Python, JavaScript,
TypeScript/TSX, Go, Rust, Java, C, C++, Ruby) and returns ``CodeChunk``s in file order:

* **functions and methods** (``kind`` "function" / "method"): the definition with the comments, decorators and
  attributes directly above it (no blank line between). Nested functions stay inside their function.
* **containers** (classes, structs, interfaces, traits, impls, enums, namespaces, Ruby modules): the container's
  own chunk holds its header, docstring and whatever precedes the first member (fields, declarations); each member
  is a chunk of its own, qualified by the container (``Class.method``, ``ns.Class.method``, Go ``Recv.Method``,
  Rust ``Type.method`` for ``impl Type``).
* **types** without members (C structs, Go type specs, Rust structs/enums, type aliases): one chunk each.
* **windows** over the rest, so that no line is left out: ``kind`` "module" (top-level code between symbols:
  imports, constants, ``if __name__ == ...``), "block" (lines inside a container that belong to no member: fields
  declared between methods, access specifiers) and "lines" (a whole file indexed by line windows, see below).
  Only lines that are blank or hold nothing but closing brackets / ``;`` / ``,`` (Ruby: ``end``) may lie outside
  every chunk.

Every chunk covers whole lines: ``start``/``end`` are character offsets into the text (``text[start:end]`` is the
chunk's source, from the first character of its first line to the end of its last line, without the line break),
``start_byte``/``end_byte`` the same span in the text's UTF-8 encoding, ``start_line``/``end_line`` 1-based and
inclusive. A symbol longer than ``max_lines`` lines (or ``max_chars`` characters) is split at statement boundaries
(recursing into a statement too long by itself, cutting by lines only inside a single over-long statement) into
parts ``part`` 1..``parts``; every part after the first repeats the symbol's header (its signature lines) at the
top of its ``text``: ``text[header_chars:]`` is always exactly ``source[start:end]``.

Fallback: a file with no grammar (another language, or its grammar wheel not installed) is chunked into line
windows of ``kind`` "lines". A file with syntax errors (tree-sitter still returns a tree, with ERROR and MISSING
nodes) keeps the definitions that hold no error and lie in no error region; the lines of the others become
windows, and ``warning`` names the first error's line. Definitions near an error are not trusted because error
recovery can attach a class's methods to the wrong scope (a missing ``)`` turns the methods after it into
top-level functions inside an ERROR node), which would give wrong qualified names; windows lose nothing, and the
next index run after the fix parses the file again. (C headers that fail as C are parsed as C++.)

``CodeChunker`` (spec ``code[:MAX_LINES]``) offers the same chunking to passage collections; the language is
taken from the document's path (metadata ``path``, else its id).
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from dataclasses import dataclass, replace
from typing import Any

from retrievekit.chunking.base import Chunk, Chunker, ChunkingError, _positive_int, _Span
from retrievekit.chunking.code_languages import GRAMMARS, grammar_key, language_of, parser_for
from retrievekit.chunking.code_symbols import Extractor, Lines, Unit, first_error_row

logger = logging.getLogger(__name__)

#: Bumped when the chunks of an unchanged file would come out differently: incremental indexing re-chunks then.
CHUNKER_VERSION = 1
DEFAULT_MAX_LINES = 60
DEFAULT_MAX_CHARS = 4000


@dataclass(frozen=True)
class CodeChunk:
    """One chunk of a source file. ``key`` names it uniquely within the file (``qualname``, then ``~2``, ``~3``
    for later chunks of the same name, then ``[k]`` for part k >= 2 of a split symbol): the part of the document id
    after ``path#``. ``text`` is what gets indexed; ``text[header_chars:]`` is the exact source span."""

    key: str
    kind: str  # function | method | class | struct | interface | trait | impl | enum | record | namespace | type
    #           | macro | module | block | lines
    symbol: str  # the name ("" for windows)
    qualname: str  # "Class.method"; windows: "<module>", "Class.<block>", "<lines>"
    signature: str  # one line: "def f(a, b) -> int", "public List<T> find(String q) throws IOException"
    docstring: str  # the docstring, else the comments directly above the symbol, markers removed
    decorators: tuple[str, ...]  # "@property", "@Override", "#[derive(Debug)]"
    start_line: int  # 1-based, inclusive
    end_line: int
    start: int  # character offsets of the span in the file's text
    end: int
    start_byte: int  # the span in the text's UTF-8 encoding
    end_byte: int
    part: int  # 1-based part of a split symbol; 1 of 1 when whole
    parts: int
    text: str
    header_chars: int  # length of the repeated header (and its line break) at the top of ``text``; 0 for part 1

    @property
    def source(self) -> str:
        """The exact source span, ``file_text[start:end]``."""
        return self.text[self.header_chars :]


@dataclass(frozen=True)
class CodeChunks:
    """The chunks of one file: its language, whether a grammar parsed it (else all chunks are "lines" windows), and
    why some or all of it is line windows (``warning``: no grammar, or a syntax error and its line)."""

    language: str
    chunks: list[CodeChunk]
    parsed: bool
    warning: str | None = None


def chunk_code(text: str, path: str = "", *, language: str | None = None, max_lines: int = DEFAULT_MAX_LINES,
               max_chars: int = DEFAULT_MAX_CHARS) -> CodeChunks:
    """The chunks of one source file (see the module docstring). ``path`` picks the grammar by extension (or the
    text's ``#!`` line); ``language`` names a grammar key instead ("python", "tsx", "cpp", ...)."""
    max_lines = _positive_int(max_lines, "max_lines")
    max_chars = _positive_int(max_chars, "max_chars")
    if not isinstance(text, str):
        raise ChunkingError(f"{path or 'code'}: text must be a str, got {type(text).__name__}")
    if language is not None and language not in GRAMMARS:
        raise ChunkingError(f"unknown code language {language!r}; choose one of {', '.join(sorted(GRAMMARS))}")
    key = language or grammar_key(path, text)
    data = text.encode("utf-8", "surrogatepass")
    lines = Lines(text, data, ruby=key == "ruby")
    if key is None:
        return CodeChunks(language_of(path, text), _keyed(_windows(lines, "lines", max_lines, max_chars)),
                          parsed=False)
    parser = parser_for(key)
    if parser is None:
        return CodeChunks(GRAMMARS[key].language, _keyed(_windows(lines, "lines", max_lines, max_chars)),
                          parsed=False, warning=f"{path}: no {GRAMMARS[key].package} grammar installed; indexed as "
                          "line windows")
    tree = parser.parse(data)
    if tree.root_node.has_error and key == "c" and path.lower().endswith(".h"):  # a C++ header?
        cpp = parser_for("cpp")
        cpp_tree = cpp.parse(data) if cpp is not None else None
        if cpp_tree is not None and not cpp_tree.root_node.has_error:
            key, tree = "cpp", cpp_tree
    warning = None
    if tree.root_node.has_error:
        row = first_error_row(tree.root_node)
        warning = (f"{path}:{row + 1}: syntax error; the definitions that hold an error (or lie in one) are indexed "
                   "as line windows")
    extractor = Extractor(GRAMMARS[key], lines, max_lines)
    extractor.visit(tree.root_node, (), None)
    return CodeChunks(GRAMMARS[key].language, _assemble(lines, extractor, max_lines, max_chars), parsed=True,
                      warning=warning)


# -- from units and uncovered rows to chunks -------------------------------------------------------------------------
def _make_chunk(lines: Lines, unit: Unit, first: int, last: int, part: int, parts: int, key: str) -> CodeChunk:
    start, end = lines.cstart[first], lines.cend(last)
    source = lines.text[start:end]
    text, header_chars = source, 0
    if part > 1 and unit.header is not None:
        header = lines.text[lines.cstart[unit.header[0]] : lines.cend(unit.header[1])]
        text, header_chars = header + "\n" + source, len(header) + 1
    return CodeChunk(key, unit.kind, unit.symbol, unit.qualname, unit.signature, unit.docstring, unit.decorators,
                     first + 1, last + 1, start, end, lines.bstart[first], lines.bend(last), part, parts, text,
                     header_chars)


def _split(lines: Lines, unit: Unit, max_lines: int, max_chars: int) -> list[tuple[int, int]]:
    """Row ranges of the parts of ``unit``: greedy, each as long as the budget allows, cut at the last allowed row."""
    parts: list[tuple[int, int]] = []
    start, last = unit.first, unit.last
    while lines.limit(start, max_lines, max_chars) < last:
        limit = lines.limit(start, max_lines, max_chars)
        i = bisect_right(unit.cuts, limit + 1) - 1
        cut = unit.cuts[i] if i >= 0 and unit.cuts[i] > start else limit + 1
        parts.append((start, cut - 1))
        start = cut
    parts.append((start, last))
    out: list[tuple[int, int]] = []
    for first, end in parts:
        while end > first and lines.blank(end):
            end -= 1
        if out and all(lines.trivial(r) for r in range(first, end + 1)):
            out[-1] = (out[-1][0], end)  # a closing brace alone is no part
        else:
            out.append((first, end))
    return out


def _windows(lines: Lines, kind: str, max_lines: int, max_chars: int, runs: list[tuple[int, int, str]] | None = None,
             trivial: bool = False) -> list[CodeChunk]:
    """Line windows over ``runs`` ((first row, last row, scope qualname); default: the whole text), blank (and,
    with ``trivial``, closing-bracket) lines trimmed at their edges, cut at blank lines where possible."""
    skip = lines.trivial if trivial else lines.blank
    chunks: list[CodeChunk] = []
    for first, last, scope in runs if runs is not None else [(0, lines.n - 1, "")]:
        while first <= last and skip(first):
            first += 1
        while last >= first and skip(last):
            last -= 1
        start = first
        while start <= last:
            limit = lines.limit(start, max_lines, max_chars)
            end = last
            if limit < last:
                end = limit
                half = start + (limit - start + 1) // 2
                for row in range(limit + 1, half, -1):  # a blank line, ideally, begins the next window
                    if lines.blank(row):
                        end = row - 1
                        break
            cut_end = end
            while cut_end > start and lines.blank(cut_end):
                cut_end -= 1
            qualname = {"module": "<module>", "lines": "<lines>"}.get(kind) or f"{scope}.<block>"
            chunks.append(_make_chunk(lines, Unit(start, cut_end, kind, "", qualname), start, cut_end, 1, 1, qualname))
            start = end + 1
            while start <= last and lines.blank(start):
                start += 1
    return chunks


def _assemble(lines: Lines, extractor: Extractor, max_lines: int, max_chars: int) -> list[CodeChunk]:
    """Symbol chunks (split where long) plus windows over every row no symbol covers, in file order, keyed."""
    chunks: list[CodeChunk] = []
    covered = bytearray(lines.n)
    for unit in extractor.units:
        ranges = _split(lines, unit, max_lines, max_chars)
        for i, (first, last) in enumerate(ranges, 1):
            chunks.append(_make_chunk(lines, unit, first, last, i, len(ranges), unit.qualname))
            covered[first : last + 1] = b"\x01" * (last - first + 1)
    # the innermost container of each row, for the windows over what no symbol covers
    scope = [-1] * lines.n
    for i, (first, last, _) in enumerate(sorted(extractor.containers, key=lambda c: (c[0], -c[1]))):
        scope[first : last + 1] = [i] * (last - first + 1)
    names = [c[2] for c in sorted(extractor.containers, key=lambda c: (c[0], -c[1]))]
    runs: dict[str, list[tuple[int, int, str]]] = {"module": [], "block": []}
    row = 0
    while row < lines.n:
        if covered[row]:
            row += 1
            continue
        end = row
        while end + 1 < lines.n and not covered[end + 1] and scope[end + 1] == scope[row]:
            end += 1
        runs["module" if scope[row] < 0 else "block"].append((row, end, names[scope[row]] if scope[row] >= 0 else ""))
        row = end + 1
    for kind, kind_runs in runs.items():
        chunks.extend(_windows(lines, kind, max_lines, max_chars, kind_runs, trivial=True))
    chunks.sort(key=lambda c: (c.start, c.part))
    return _keyed(chunks)


def _keyed(chunks: list[CodeChunk]) -> list[CodeChunk]:
    """Unique keys: the qualname, ``~n`` for its n-th definition in the file, ``[k]`` for part k >= 2."""
    seen: dict[str, int] = {}
    out = []
    base = ""
    for chunk in chunks:
        if chunk.part == 1:
            n = seen[chunk.qualname] = seen.get(chunk.qualname, 0) + 1
            base = chunk.qualname if n == 1 else f"{chunk.qualname}~{n}"
        key = base if chunk.part == 1 else f"{base}[{chunk.part}]"
        out.append(replace(chunk, key=key))
    return out


# -- the registry chunker ---------------------------------------------------------------------------------------------
class CodeChunker(Chunker):
    """Code chunking for passage collections (spec ``code[:MAX_LINES]``): the language comes from the metadata
    ``path`` or the document id (a file path, as the ``files`` reader gives). ``Chunk.text`` is the exact span
    (``text[start:end]``, no repeated header); the symbol's fields are in ``Chunk.metadata`` (``heading`` = its
    qualified name). Unlike the prose chunkers, chunks cover whole lines (so they may start with indentation) and
    lines holding only closing brackets may lie outside every chunk."""

    name = "code"

    def __init__(self, max_lines: int = DEFAULT_MAX_LINES) -> None:
        self.max_lines = _positive_int(max_lines, "code MAX_LINES")

    def chunk(self, doc_id: str, text: str, metadata: dict[str, Any] | None = None) -> list[Chunk]:
        if not isinstance(text, str):
            raise ChunkingError(f"document {doc_id!r}: text must be a str, got {type(text).__name__}")
        if not text.strip():
            return []
        path = str((metadata or {}).get("path") or doc_id)
        result = chunk_code(text, path, max_lines=self.max_lines)
        if result.warning:
            logger.warning("%s", result.warning)
        base = dict(metadata or {})
        return [Chunk(doc_id, i, c.source, c.start, c.end,
                      {**base, "heading": c.qualname, "kind": c.kind, "symbol": c.symbol, "qualname": c.qualname,
                       "language": result.language, "start_line": c.start_line, "end_line": c.end_line})
                for i, c in enumerate(result.chunks)]

    def _spans(self, text: str) -> list[_Span]:
        return [_Span(c.start, c.end, {}) for c in chunk_code(text, max_lines=self.max_lines).chunks]

    def _params(self) -> dict[str, Any]:
        return {"max_lines": self.max_lines}
