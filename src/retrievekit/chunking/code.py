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

import inspect
import logging
import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, replace
from itertools import accumulate
from typing import Any

from retrievekit.chunking.base import Chunk, Chunker, ChunkingError, _positive_int, _Span
from retrievekit.chunking.code_languages import CLASS_KINDS, GRAMMARS, Grammar, grammar_key, language_of, parser_for

logger = logging.getLogger(__name__)

#: Bumped when the chunks of an unchanged file would come out differently: incremental indexing re-chunks then.
CHUNKER_VERSION = 1
DEFAULT_MAX_LINES = 60
DEFAULT_MAX_CHARS = 4000
MAX_HEADER_LINES = 8
MAX_SIGNATURE_CHARS = 300
MAX_DOCSTRING_CHARS = 2000
MAX_NAME_CHARS = 200

# Node types never searched for symbols (strings, comments, literals, data): descending them costs time on data
# files and finds nothing.
_OPAQUE = re.compile(r".*(string|comment|literal|heredoc)|dictionary|list|array|tuple|set")
_JS_FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function", "generator_function"})
_TRIVIAL = re.compile(r"[\s)\]};,]*")
_WS = re.compile(r"\s+")
_TEMPLATE_ARGS = re.compile(r"<[^<>]*>")
_COMMENT_MARKS = re.compile(r"^\s*(?:/\*\*|/\*|\*/|\*|///|//!|//|#|--)?\s?")


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


@dataclass
class _Unit:
    first: int  # rows, 0-based inclusive
    last: int
    kind: str
    symbol: str
    qualname: str
    signature: str = ""
    docstring: str = ""
    decorators: tuple[str, ...] = ()
    header: tuple[int, int] | None = None  # rows repeated at the top of parts >= 2
    cuts: tuple[int, ...] = ()  # rows where a split may start a new part


class _Lines:
    """Row geometry of a text and its UTF-8 bytes (rows split at "\\n", as tree-sitter counts them)."""

    def __init__(self, text: str, data: bytes, ruby: bool = False) -> None:
        self.text, self.data = text, data
        self.cstart = [0, *accumulate(len(line) + 1 for line in text.split("\n"))]
        self.cbound = self.cstart  # row starts, then len(text) + 1: bisect finds how many rows fit a budget
        self.cstart = self.cstart[:-1]
        self.bstart = [0, *accumulate(len(line) + 1 for line in data.split(b"\n"))][:-1]
        self.n = len(self.cstart)
        self.ruby = ruby

    def cend(self, row: int) -> int:
        end = self.cstart[row + 1] - 1 if row + 1 < self.n else len(self.text)
        return end - 1 if end > self.cstart[row] and self.text[end - 1] == "\r" else end

    def bend(self, row: int) -> int:
        end = self.bstart[row + 1] - 1 if row + 1 < self.n else len(self.data)
        return end - 1 if end > self.bstart[row] and self.data[end - 1 : end] == b"\r" else end

    def row_text(self, row: int) -> str:
        return self.text[self.cstart[row] : self.cend(row)]

    def blank(self, row: int) -> bool:
        return not self.row_text(row).strip()

    def trivial(self, row: int) -> bool:
        """Blank, or only closing brackets and separators (Ruby: ``end``): nothing a search could match."""
        line = self.row_text(row)
        return _TRIVIAL.fullmatch(line) is not None or (self.ruby and line.strip() == "end")

    def limit(self, start: int, max_lines: int, max_chars: int) -> int:
        """The last row a part starting at ``start`` may end on (at least ``start``)."""
        by_chars = bisect_right(self.cbound, self.cstart[start] + max_chars + 1) - 2
        return max(start, min(start + max_lines - 1, by_chars, self.n - 1))

    def chunk(self, unit: _Unit, first: int, last: int, part: int, parts: int, key: str) -> CodeChunk:
        start, end = self.cstart[first], self.cend(last)
        source = self.text[start:end]
        text, header_chars = source, 0
        if part > 1 and unit.header is not None:
            header = self.text[self.cstart[unit.header[0]] : self.cend(unit.header[1])]
            text, header_chars = header + "\n" + source, len(header) + 1
        return CodeChunk(key, unit.kind, unit.symbol, unit.qualname, unit.signature, unit.docstring, unit.decorators,
                         first + 1, last + 1, start, end, self.bstart[first], self.bend(last), part, parts, text,
                         header_chars)


def _strip_template(name: str) -> str:
    """``Vec<Option<T>>`` -> ``Vec``."""
    while True:
        stripped = _TEMPLATE_ARGS.sub("", name)
        if stripped == name:
            return name
        name = stripped


def _row(node: Any) -> int:
    return int(node.start_point[0])


def _last_row(node: Any) -> int:
    """The last row holding a character of ``node`` (a node ending with its line break ends on the next row)."""
    row, column = node.end_point
    return int(row) if column > 0 or row == node.start_point[0] else int(row) - 1


def _clean_comment(text: str) -> str:
    lines = [_COMMENT_MARKS.sub("", line).rstrip() for line in text.splitlines()]
    return "\n".join(line.removesuffix("*/").rstrip() for line in lines).strip()


class _Extractor:
    """Finds the symbols of one parse tree, in file order, and the rows they cover."""

    def __init__(self, grammar: Grammar, lines: _Lines, max_lines: int) -> None:
        self.g, self.lines, self.max_lines = grammar, lines, max_lines
        self.units: list[_Unit] = []
        self.containers: list[tuple[int, int, str]] = []  # (first row, last row, qualname)
        self.last = -1  # the last row taken by a symbol so far, in file order

    # -- the walk --------------------------------------------------------------------------------------------------
    def visit(self, node: Any, scope: tuple[str, ...], container_kind: str | None) -> None:
        g = self.g
        for child in node.named_children:
            if child.has_error and (child.is_error or child.type in g.functions or child.type in g.types
                                    or child.type in g.containers or child.type in g.wrappers):
                continue  # an error region or a broken definition: its lines go to windows, nothing is mined in it
            found = self.resolve(child)
            if found is not None:
                self.symbol(found[0], found[1], scope, container_kind)
            elif child.named_child_count and not _OPAQUE.fullmatch(child.type):
                self.visit(child, scope, container_kind)

    def resolve(self, node: Any) -> tuple[Any, Any] | None:
        """(outer, inner) when ``node`` is a symbol (outer = inner) or a wrapper around exactly one."""
        g = self.g
        t = node.type
        if t in g.functions or t in g.types or t in g.containers:
            return (node, node) if self.describe(node) is not None else None
        if t in g.wrappers:
            inner = [found for c in node.named_children
                     if c.type not in g.comments and c.type not in g.decorators and c.type not in g.attributes
                     and (found := self.resolve(c)) is not None]
            if len(inner) == 1:
                return node, inner[0][1]
        return None

    def describe(self, node: Any) -> tuple[str, tuple[str, ...], str, Any] | None:
        """(name, extra scope, kind, body) of a symbol node, or None when it is not a definition (no body, no name)."""
        g, t = self.g, node.type
        body = node.child_by_field_name("body")
        extra: tuple[str, ...] = ()
        if t in g.functions:
            kind = "function"
            if t == "variable_declarator":  # const f = (...) => {...}
                value = node.child_by_field_name("value")
                if value is None or value.type not in _JS_FUNCTION_VALUES:
                    return None
                body = value.child_by_field_name("body")
            if body is None and not g.body_optional:
                return None
            name_node = self._function_name(node)
            if t == "method_declaration" and g.language == "go":
                receiver = _receiver_type(node)
                extra, kind = ((receiver,) if receiver else ()), "method"
            elif t == "singleton_method":
                kind = "method"
        elif t in g.types:
            kind = g.types[t]
            name_node = node.child_by_field_name("name")
            if t == "type_definition":  # typedef struct {...} name;
                inner = node.child_by_field_name("type")
                if inner is None or inner.child_by_field_name("body") is None:
                    return None
                name_node, body = node.child_by_field_name("declarator"), inner.child_by_field_name("body")
            elif t in ("struct_specifier", "union_specifier", "enum_specifier") and body is None:
                return None  # a use of the type, not its definition
            elif t == "type_spec":
                type_node = node.child_by_field_name("type")
                kind = {"struct_type": "struct", "interface_type": "interface"}.get(
                    type_node.type if type_node is not None else "", "type")
        else:
            kind = g.containers[t]
            name_node = node.child_by_field_name("type" if t == "impl_item" else "name")
            if body is None and t not in ("class", "module", "singleton_class", "class_declaration"):
                return None  # a forward declaration (C++ ``class A;``, Rust ``mod a;``)
        if name_node is None:
            if t != "singleton_class":  # an anonymous class or struct belongs to what holds it
                return None
            name = "<singleton>"  # class << self
        else:
            name = _WS.sub("", name_node.text.decode("utf-8", "replace"))
        parts = [p for p in name.split("::") if p]  # C++ A::B::f, Ruby A::B
        if not parts:
            return None
        if t == "impl_item":  # impl<T> a::Vec<T> -> Vec
            parts = [_strip_template(parts[-1])]
        parts = [*(_strip_template(p) for p in parts[:-1]), parts[-1]]
        parts = [p.replace("#", "?")[:MAX_NAME_CHARS] for p in parts]
        return parts[-1], extra + tuple(parts[:-1]), kind, body

    def _function_name(self, node: Any) -> Any:
        if self.g.language in ("c", "cpp") and node.type == "function_definition":
            declarator = node.child_by_field_name("declarator")
            while declarator is not None and declarator.type != "function_declarator":
                inner = declarator.child_by_field_name("declarator")
                if inner is None:  # a reference declarator (int& f()) holds its declarator unnamed
                    named = declarator.named_children
                    inner = named[-1] if named else None
                declarator = inner
            return declarator.child_by_field_name("declarator") if declarator is not None else None
        return node.child_by_field_name("name")

    def symbol(self, outer: Any, inner: Any, scope: tuple[str, ...], container_kind: str | None) -> None:
        described = self.describe(inner)
        if described is None or _row(outer) <= self.last:
            return  # shares its first line with the previous symbol: that line (and chunk) is taken
        name, extra, kind, body = described
        first, prefix = self.leading(outer, self.last + 1)
        last = _last_row(outer)
        if kind == "function" and container_kind in CLASS_KINDS:
            kind = "method"
        qualname = ".".join((*scope, *extra, name))
        unit = _Unit(first, last, kind, name, qualname, self.signature(outer, inner, body),
                     self.docstring(inner, body, prefix), self.decorators(outer, inner, prefix))
        if inner.type in self.g.containers:
            self.last = _row(outer)  # the header line: members start below it
            self.containers.append((first, last, qualname))
            position = len(self.units)
            if body is not None:
                self.visit(body, (*scope, *extra, name), kind)
            members = [u.first for u in self.units[position:]]
            unit.last = min(members) - 1 if members else last
            while unit.last > first and self.lines.blank(unit.last):
                unit.last -= 1
            unit.header = (_row(inner), _row(inner))
            unit.cuts = self._own_line_rows(body.named_children if body is not None else [])
            self.units.insert(position, unit)
            self.last = max(self.last, last)
            return
        row = _row(inner)
        statements = _statements(body)
        header_end = row
        if statements and _row(statements[0]) > row:
            header_end = min(_row(statements[0]) - 1, row + MAX_HEADER_LINES - 1)
        unit.header = (row, header_end)
        unit.cuts = self._cuts(statements)
        self.units.append(unit)
        self.last = last

    # -- what surrounds a symbol ---------------------------------------------------------------------------------------
    def leading(self, outer: Any, floor: int) -> tuple[int, list[Any]]:
        """The first row of a symbol with the comments and attributes directly above it, and those nodes."""
        first = _row(outer)
        prefix: list[Any] = []
        node = _previous(outer)
        while node is not None and (node.type in self.g.comments or node.type in self.g.attributes):
            if _row(node) < floor or _last_row(node) not in (first - 1, first) or not self._own_line(node) \
                    or (node.start_byte == 0 and self.lines.data.startswith(b"#!")):  # a #! line is the file's
                break
            first = _row(node)
            prefix.append(node)
            node = _previous(node)
        prefix.reverse()
        return first, prefix

    def _own_line(self, node: Any) -> bool:
        """Whether only whitespace precedes ``node`` on its first line."""
        return not self.lines.data[self.lines.bstart[_row(node)] : node.start_byte].strip()

    def _own_line_rows(self, nodes: Iterable[Any]) -> tuple[int, ...]:
        return tuple(_row(n) for n in nodes if self._own_line(n))

    def _cuts(self, statements: list[Any]) -> tuple[int, ...]:
        """Rows where a part may begin: statements starting a line, and inside a statement too long by itself."""
        rows: list[int] = []
        stack = list(reversed(statements))
        while stack:
            node = stack.pop()
            if self._own_line(node):
                rows.append(_row(node))
            if _last_row(node) - _row(node) + 1 > self.max_lines:
                stack.extend(reversed(node.named_children))
        return tuple(sorted(set(rows)))

    def signature(self, outer: Any, inner: Any, body: Any) -> str:
        start = outer.start_byte
        data = self.lines.data
        if body is not None and body.start_byte > start:
            end = body.start_byte
        else:
            end = data.find(b"\n", inner.start_byte)
            end = len(data) if end < 0 else end
        pieces, cursor = [], start
        comments = [c for c in inner.named_children if c.type in self.g.comments]
        for node in sorted([*self._decorator_nodes(outer, inner), *comments], key=lambda n: n.start_byte):
            if start <= node.start_byte and node.end_byte <= end:
                pieces.append(data[cursor : node.start_byte])
                cursor = node.end_byte
        pieces.append(data[cursor:end])
        text = _WS.sub(" ", b"".join(pieces).decode("utf-8", "replace")).strip()
        text = text.rstrip("{:= ").strip() if not text.endswith("=>") else text
        return text[:MAX_SIGNATURE_CHARS]

    def docstring(self, inner: Any, body: Any, prefix: list[Any]) -> str:
        if self.g.language == "python" and body is not None and body.named_children:
            first = body.named_children[0]
            if first.type == "expression_statement" and first.named_children \
                    and first.named_children[0].type == "string":
                text = _python_string(first.named_children[0])
                if text:
                    return text[:MAX_DOCSTRING_CHARS]
        comments = [n for n in prefix if n.type in self.g.comments]
        text = "\n".join(_clean_comment(n.text.decode("utf-8", "replace")) for n in comments).strip()
        return text[:MAX_DOCSTRING_CHARS]

    def _decorator_nodes(self, outer: Any, inner: Any) -> list[Any]:
        found = []
        for node in {outer.id: outer, inner.id: inner}.values():
            for child in node.named_children:
                if child.type in self.g.decorators:
                    found.append(child)
                elif child.type == "modifiers":  # Java annotations
                    found.extend(c for c in child.named_children if c.type in self.g.decorators)
        return sorted(found, key=lambda n: n.start_byte)

    def decorators(self, outer: Any, inner: Any, prefix: list[Any]) -> tuple[str, ...]:
        nodes = [n for n in prefix if n.type in self.g.attributes] + self._decorator_nodes(outer, inner)
        texts = [_WS.sub(" ", n.text.decode("utf-8", "replace")).strip() for n in nodes]
        return tuple(dict.fromkeys(t[:MAX_SIGNATURE_CHARS] for t in texts))


def _previous(node: Any) -> Any:
    """The named node just before ``node`` at its level, climbing out of parents that start where it starts (a
    Ruby class that opens a module's body has its comment beside the body, not beside the class)."""
    while node.prev_named_sibling is None:
        parent = node.parent
        if parent is None or parent.start_byte != node.start_byte:
            return None
        node = parent
    return node.prev_named_sibling


def _statements(body: Any) -> list[Any]:
    """The statements of a body (Go wraps them in a statement_list)."""
    if body is None:
        return []
    children = body.named_children
    if len(children) == 1 and children[0].type == "statement_list":
        return list(children[0].named_children)
    return list(children)


def _receiver_type(node: Any) -> str:
    receiver = node.child_by_field_name("receiver")
    if receiver is None:
        return ""
    match = re.search(r"\w+", re.sub(r"^\(\s*\w+\s+", "(", receiver.text.decode("utf-8", "replace"))[1:])
    return match.group(0) if match else ""


def _python_string(node: Any) -> str:
    content = [c for c in node.children if c.type not in ("string_start", "string_end")]
    if not content or any(c.type == "interpolation" for c in content):
        return ""
    raw = b"".join(c.text for c in content).decode("utf-8", "replace")
    return inspect.cleandoc(raw)


def _first_error_row(root: Any) -> int:
    node = root
    while True:
        nxt = next((c for c in node.children if c.is_error or c.is_missing or c.has_error), None)
        if nxt is None or nxt.is_error or nxt.is_missing:
            return _row(nxt if nxt is not None else node)
        node = nxt


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
    lines = _Lines(text, data, ruby=key == "ruby")
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
        row = _first_error_row(tree.root_node)
        warning = (f"{path}:{row + 1}: syntax error; the definitions that hold an error (or lie in one) are indexed "
                   "as line windows")
    extractor = _Extractor(GRAMMARS[key], lines, max_lines)
    extractor.visit(tree.root_node, (), None)
    return CodeChunks(GRAMMARS[key].language, _assemble(lines, extractor, max_lines, max_chars), parsed=True,
                      warning=warning)


# -- from units and uncovered rows to chunks -------------------------------------------------------------------------
def _split(lines: _Lines, unit: _Unit, max_lines: int, max_chars: int) -> list[tuple[int, int]]:
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


def _windows(lines: _Lines, kind: str, max_lines: int, max_chars: int, runs: list[tuple[int, int, str]] | None = None,
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
            chunks.append(lines.chunk(_Unit(start, cut_end, kind, "", qualname), start, cut_end, 1, 1, qualname))
            start = end + 1
            while start <= last and lines.blank(start):
                start += 1
    return chunks


def _assemble(lines: _Lines, extractor: _Extractor, max_lines: int, max_chars: int) -> list[CodeChunk]:
    """Symbol chunks (split where long) plus windows over every row no symbol covers, in file order, keyed."""
    chunks: list[CodeChunk] = []
    covered = bytearray(lines.n)
    for unit in extractor.units:
        ranges = _split(lines, unit, max_lines, max_chars)
        for i, (first, last) in enumerate(ranges, 1):
            chunks.append(lines.chunk(unit, first, last, i, len(ranges), unit.qualname))
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
