"""Finding the symbols of a tree-sitter parse tree, for ``chunking.code``: what a definition is in each language
(``code_languages``), its name and scope, the comments and decorators above it, its signature and docstring, the
rows it covers and the rows where it may be split. Rows are 0-based here; ``chunking.code`` makes chunks of them."""

from __future__ import annotations

import inspect
import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from retrievekit.chunking.code_languages import CLASS_KINDS, Grammar

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


@dataclass
class Unit:
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


class Lines:
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


class Extractor:
    """Finds the symbols of one parse tree, in file order, and the rows they cover."""

    def __init__(self, grammar: Grammar, lines: Lines, max_lines: int) -> None:
        self.g, self.lines, self.max_lines = grammar, lines, max_lines
        self.units: list[Unit] = []
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
        unit = Unit(first, last, kind, name, qualname, self.signature(outer, inner, body),
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


def first_error_row(root: Any) -> int:
    node = root
    while True:
        nxt = next((c for c in node.children if c.is_error or c.is_missing or c.has_error), None)
        if nxt is None or nxt.is_error or nxt.is_missing:
            return _row(nxt if nxt is not None else node)
        node = nxt
