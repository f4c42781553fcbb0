"""Documented functions in source files, for docstring → function training pairs (CodeSearchNet-style).

Python is parsed with the standard library's ``ast``: every function and method (also inside classes, other
functions and ``if``/``try`` blocks) with its docstring and its exact source, decorators included, docstring cut out.

JavaScript, TypeScript, Java and Go have no parser here; a scanner blanks out comments, string, template and regex
literals (so braces inside them do not count), then a doc comment (``/** ... */``; Go: the ``//`` lines right above)
directly followed by a function header and a ``{`` gives a function whose body ends at the matching ``}``. Only
files whose braces balance once literals are blanked are read. Headers that the patterns do not recognise with
certainty (a TypeScript return type written as an object literal, an anonymous default export, a lambda) are
skipped rather than guessed; so are declarations without a body (interfaces, abstract methods). Regex literals are
told from division by the preceding token, as JavaScript tools do; a file that fools this heuristic ends up
unbalanced and is skipped as a whole.
"""

from __future__ import annotations

import ast
import bisect
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from retrievekit.core.files import AST_LOCK

__all__ = ["CODE_LANGUAGES", "CodeFunction", "CodeParseError", "dedent", "first_paragraph", "functions",
           "language_hint"]

CODE_LANGUAGES = ("python", "javascript", "typescript", "java", "go")
_EXTENSIONS = {".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
               ".jsx": "javascript", ".ts": "typescript", ".tsx": "typescript", ".mts": "typescript",
               ".cts": "typescript", ".java": "java", ".go": "go"}
_NAMES = {"py": "python", "python3": "python", "js": "javascript", "node": "javascript", "ts": "typescript",
          "tsx": "typescript", "golang": "go", **{name: name for name in CODE_LANGUAGES}}


class CodeParseError(ValueError):
    """The file cannot be read as source code of its language."""


@dataclass(frozen=True)
class CodeFunction:
    """A documented function: ``qualname`` (``Class.method``; Python's ``<locals>`` for nested functions),
    ``doc`` (the docstring or doc comment's text), ``source`` (the code without the doc, indentation removed), the
    1-based ``line`` it starts on, whether its body is empty (``pass``, ``...``, ``{}``) and whether it is nested in
    another function."""

    qualname: str
    doc: str
    source: str
    line: int
    empty_body: bool = False
    nested: bool = False  # defined inside another function (not only inside classes)


def language_hint(doc_id: str, metadata: Mapping[str, Any]) -> str | None:
    """The language a document declares: metadata ``language``/``lang`` (a name such as ``python`` or ``ts``),
    else the extension of metadata ``path``/``file``/``filename``/``extension``, else of the id; None if none.
    Unknown language names and extensions give ``"other"``."""
    for key in ("language", "lang"):
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            return _NAMES.get(value.strip().lower(), "other")
    for key in ("path", "file", "filename", "extension"):
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            suffix = value.strip().lower() if key == "extension" else PurePosixPath(value.strip()).suffix.lower()
            suffix = suffix if suffix.startswith(".") else "." + suffix
            return _EXTENSIONS.get(suffix, "other")
    return _EXTENSIONS.get(PurePosixPath(doc_id).suffix.lower())


def functions(source: str, language: str) -> list[CodeFunction]:
    """The documented functions of ``source``; raises :class:`CodeParseError` when it cannot be read as
    ``language`` (a syntax error, an unterminated comment or literal, unbalanced braces)."""
    source = source.replace("\r\n", "\n").replace("\r", "\n")
    if language == "python":
        return _python(source)
    if language in ("javascript", "typescript", "java", "go"):
        return _c_family(source, language)
    raise CodeParseError(f"unsupported language {language!r}; supported: {', '.join(CODE_LANGUAGES)}")


def first_paragraph(doc: str) -> str:
    """The summary of a docstring: its first paragraph, whitespace collapsed."""
    return " ".join(re.split(r"\n[ \t]*\n", doc.strip(), maxsplit=1)[0].split())


# -- Python -----------------------------------------------------------------------------------------------------

def _python(source: str) -> list[CodeFunction]:
    try:
        with AST_LOCK:
            tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:  # ValueError: NUL bytes
        raise CodeParseError(f"not valid Python: {exc}") from None
    lines = source.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)

    def offset(lineno: int, col: int) -> int:  # ast columns count UTF-8 bytes
        return starts[lineno - 1] + len(lines[lineno - 1].encode("utf-8")[:col].decode("utf-8", "replace"))

    out = []
    try:
        found = list(_python_defs(tree.body, ""))
    except RecursionError:
        raise CodeParseError("nested too deeply to read") from None
    for node, qualname in found:
        doc = ast.get_docstring(node, clean=True)
        if doc is None:
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        string = node.body[0]
        head = source[starts[first - 1]:offset(string.lineno, string.col_offset)]
        tail = source[offset(string.end_lineno or string.lineno, string.end_col_offset or 0):
                      offset(node.end_lineno or node.lineno, node.end_col_offset or 0)]
        rest_of_line, _, after = tail.partition("\n")
        # a docstring with its lines to itself goes whole; else code follows it on its line: `def f(): "doc"; ...`
        code = head.rstrip(" \t") + after if not rest_of_line.strip() else head + tail.lstrip(" \t;")
        empty = all(isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                                and s.value.value is Ellipsis) for s in node.body[1:])
        out.append(CodeFunction(qualname, doc, dedent(code), first, empty_body=empty, nested="<locals>" in qualname))
    return out


def _python_defs(nodes: list[ast.stmt], prefix: str) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef, str]]:
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node, prefix + node.name
            yield from _python_defs(node.body, f"{prefix}{node.name}.<locals>.")
        elif isinstance(node, ast.ClassDef):
            yield from _python_defs(node.body, f"{prefix}{node.name}.")
        else:  # if/try/with/for/match blocks: definitions inside keep the enclosing name
            for child in ast.iter_child_nodes(node):
                block = getattr(child, "body", None)
                if isinstance(child, ast.stmt):
                    yield from _python_defs([child], prefix)
                elif isinstance(block, list):  # except handlers, match cases
                    yield from _python_defs(block, prefix)


def dedent(code: str) -> str:
    """Remove the first line's indentation from every line that has it (a multi-line string literal with less
    indentation keeps its own, unlike ``textwrap.dedent`` which would then remove nothing)."""
    lines = code.split("\n")
    indent = lines[0][:len(lines[0]) - len(lines[0].lstrip(" \t"))]
    return "\n".join(line[len(indent):] if line.startswith(indent) else line for line in lines).rstrip()


# -- C-family languages (scanner + patterns) ---------------------------------------------------------------------

_REGEX_AFTER_WORDS = {"return", "typeof", "case", "do", "else", "in", "of", "new", "delete", "void", "throw",
                      "yield", "await", "instanceof"}
_KEYWORDS = {"if", "for", "while", "switch", "catch", "function", "return", "new", "else", "do", "try", "with",
             "synchronized", "class", "interface", "enum", "record", "throw", "typeof", "await", "yield", "super",
             "this", "import", "export", "constructor"}


_CODE_STOP = re.compile(r"""[/"'`{}]""")
_TEMPLATE_STOP = re.compile(r"[\\`]|\$\{")
_LITERAL = {'"': re.compile(r'"(?:[^"\\\n]|\\[\s\S])*"'), "'": re.compile(r"'(?:[^'\\\n]|\\[\s\S])*'"),
            "`": re.compile(r"`[^`]*`"),  # Go raw strings: no escapes
            '"""': re.compile(r'"""(?:[^"\\]|\\[\s\S]|"(?!""))*"""'),  # Java text blocks
            "/": re.compile(r"/(?:[^/\\\[\n]|\\.|\[(?:[^\]\\\n]|\\.)*\])+/")}  # JavaScript regular expressions
_NOT_NEWLINE = re.compile(r"[^\n]")


def _mask(s: str, language: str) -> tuple[str, list[tuple[int, int]]]:
    """``s`` with the insides of comments and literals replaced by spaces (newlines kept, so offsets and lines
    stay), and the (start, end) of every comment. Raises CodeParseError on an unterminated one or unbalanced
    braces."""
    js = language in ("javascript", "typescript")
    out = list(s)
    comments: list[tuple[int, int]] = []
    templates: list[int] = []  # brace depths at which a `${...}` substitution returns to its template literal
    depth, i, n = 0, 0, len(s)
    in_template = False

    def blank(start: int, end: int) -> None:
        out[start:end] = _NOT_NEWLINE.sub(" ", s[start:end])

    def literal(kind: str, at: int, inner: int) -> int:
        """Blank the literal starting at ``at`` (delimiters ``inner`` long kept); the offset after it."""
        m = _LITERAL[kind].match(s, at)
        if m is None:
            raise CodeParseError(f"unterminated literal {s[at:at + 20]!r}... at offset {at}")
        blank(at + inner, m.end() - inner)
        return m.end()

    while i < n:
        if in_template:
            m = _TEMPLATE_STOP.search(s, i)
            if m is None:
                raise CodeParseError("unterminated template literal")
            blank(i, m.start())
            i = m.start()
            if s[i] == "\\":
                blank(i, i + 2)
                i += 2
            elif s[i] == "`":
                in_template = False
                i += 1
            else:  # ${: code until the matching }
                templates.append(depth)
                depth += 1
                in_template = False
                i += 2
            continue
        m = _CODE_STOP.search(s, i)
        if m is None:
            break
        i = m.start()
        c, nxt = s[i], s[i + 1:i + 2]
        if c == "/" and nxt == "/":
            end = s.find("\n", i)
            end = n if end < 0 else end
            comments.append((i, end))
            blank(i, end)
            i = end
        elif c == "/" and nxt == "*":
            end = s.find("*/", i + 2)
            if end < 0:
                raise CodeParseError(f"unterminated comment at offset {i}")
            comments.append((i, end + 2))
            blank(i, end + 2)
            i = end + 2
        elif c == '"' and language == "java" and s.startswith('"""', i):
            i = literal('"""', i, 3)
        elif c in "\"'" or (c == "`" and language == "go"):
            i = literal(c, i, 1)
        elif c == "`" and js:
            in_template = True
            i += 1
        elif c == "/" and js and _regex_may_start(_previous_token(out, i)):
            i = literal("/", i, 1)
        elif c == "{":
            depth += 1
            i += 1
        elif c == "}":
            depth -= 1
            if depth < 0:
                raise CodeParseError(f"unbalanced '}}' at offset {i}")
            if templates and templates[-1] == depth:
                templates.pop()
                in_template = True
            i += 1
        else:  # a division, or a backquote in Java
            i += 1
    if in_template or depth:
        raise CodeParseError("unbalanced braces or an unterminated template literal")
    return "".join(out), comments


def _previous_token(out: list[str], at: int) -> str:
    """The token before offset ``at`` in the masked text: a word, or one punctuation character ("" at the start)."""
    j = at - 1
    while j >= 0 and out[j] in " \t\n":
        j -= 1
    if j < 0:
        return ""
    if not (out[j].isalnum() or out[j] in "_$"):
        return out[j]
    k = j
    while k >= 0 and (out[k].isalnum() or out[k] in "_$"):
        k -= 1
    return "".join(out[k + 1:j + 1])


def _regex_may_start(token: str) -> bool:
    """Whether a ``/`` after ``token`` starts a regular expression (else it divides): after an operator, an
    opening bracket or a keyword such as ``return``, not after a name, a number or a closing bracket."""
    return token == "" or token in _REGEX_AFTER_WORDS or (len(token) == 1 and token in "(,=:[!&|?{};+-*%<>~^")


def _doc_comments(s: str, comments: list[tuple[int, int]], language: str) -> Iterator[tuple[str, int]]:
    """(doc text, offset where the code after it starts) for each doc comment that has a line of its own."""
    if language != "go":
        for start, end in comments:
            if s.startswith("/**", start) and not s.startswith("/**/", start) and _own_line(s, start):
                yield _javadoc_text(s[start + 3:end - 2]), end
        return
    group: list[tuple[int, int]] = []
    for start, end in [*comments, (-1, -1)]:
        if group and start >= 0 and s.startswith("//", start) and s[group[-1][1]:start].strip(" \t") == "\n":
            group.append((start, end))
            continue
        if group:
            text = "\n".join(s[a + 2:b] for a, b in group)
            yield _go_doc_text(text), group[-1][1]
        group = [(start, end)] if start >= 0 and s.startswith("//", start) and _own_line(s, start) else []


def _own_line(s: str, at: int) -> bool:
    return not s[s.rfind("\n", 0, at) + 1:at].strip()


def _javadoc_text(body: str) -> str:
    lines = [re.sub(r"^\s*\*? ?", "", line) for line in body.split("\n")]
    kept = []
    for line in lines:
        if line.lstrip().startswith("@"):  # block tags (@param, @return) end the description
            break
        kept.append(line)
    text = "\n".join(kept)
    text = re.split(r"<p\s*/?>", text, maxsplit=1, flags=re.IGNORECASE)[0]
    text = re.sub(r"\{@\w+\s+([^}]*)\}", r"\1", text)  # {@link Foo#bar} -> Foo#bar
    return re.sub(r"<[^>\n]+>", " ", text).strip()


def _go_doc_text(body: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in body.split("\n")]
    return "\n".join(line for line in lines if not re.match(r"(go:|nolint|\+build)", line)).strip()


_GO = re.compile(r"func\s*(?:\(\s*\w*\s*\*?\s*(\w+)(?:\[[^\]]*\])?\s*\)\s*)?(\w+)\s*(?:\[[^\]]*\])?\s*\(")
_ARROW = r"(?:async\s+)?(?:function\b[^(]*\(.*|\(.*\)\s*(?::[^=]+)?=>|[\w$]+\s*=>)\s*$"
_JS_FUNCTION = re.compile(r"(?:export\s+)?(?:default\s+)?(?:async\s+)?function\s*\*?\s*([\w$]+)\s*(?:<[^(]*>)?\s*\(")
_JS_VARIABLE = re.compile(r"(?:export\s+)?(?:const|let|var)\s+([\w$]+)\s*(?::[^=]+)?=\s*" + _ARROW)
_JS_FIELD = re.compile(r"(?:(?:public|private|protected|static|readonly|override)\s+)*([\w$#]+)\s*(?::[^=]+)?=\s*"
                       + _ARROW)
_JS_PROPERTY = re.compile(r"([\w$]+)\s*:\s*(?:async\s+)?function\b")


def _header_name(header: str, language: str) -> tuple[str | None, str | None]:
    """(receiver or None, function name) of a header, or (None, None) when it is not certainly a function."""
    header = " ".join(header.split())
    header = re.sub(r"^(?:@[\w.]+(?:\s*\([^()]*\))?\s*)+", "", header)  # annotations and decorators
    if not header or "->" in header or header[-1] in ":<|&,([=":
        # a lambda, or a header cut short by a "{" that belongs to it (`f(): {a: number} {`, `Foo<{...}>`)
        return None, None
    if language == "go":
        m = _GO.match(header)
        if not m or re.search(r"\b(?:struct|interface)\s*$", header):  # a struct{...} result type, not the body
            return None, None
        return m.group(1), m.group(2)
    if language in ("javascript", "typescript"):
        for pattern in (_JS_FUNCTION, _JS_VARIABLE, _JS_FIELD, _JS_PROPERTY):
            m = pattern.match(header)
            if m:
                return None, m.group(1)
    return None, _method_name(header)


def _method_name(header: str) -> str | None:
    """The name of a method header ``[modifiers and types] name[<T>](params) [: type | throws X]``, else None."""
    p = header.find("(")
    m = re.search(r"([\w$#]+) ?(?:<[^()]*>)? ?$", header[:p]) if p > 0 else None
    if m is None:
        return None
    name, before = m.group(1), header[:m.start(1)]
    if name in _KEYWORDS or name[0].isdigit() or re.search(r"[=(){};:]", before) \
            or any(word in _KEYWORDS for word in re.findall(r"[\w$]+", before)):
        return None
    depth = 0
    for j in range(p, len(header)):
        depth += {"(": 1, ")": -1}.get(header[j], 0)
        if depth == 0:
            break
    after = header[j + 1:].strip()
    if depth or (after and not re.fullmatch(r":\s*[^{}:=;]+|throws\s+[\w.,\s<>]+", after)):
        return None
    return name


def _body_end(masked: str, at: int) -> int:
    """The offset after the ``}`` that closes the ``{`` at ``at`` (braces balance: the scanner checked)."""
    depth = 0
    for j in range(at, len(masked)):
        if masked[j] == "{":
            depth += 1
        elif masked[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    raise CodeParseError(f"no closing brace for the one at offset {at}")


def _header_end(masked: str, at: int) -> int | None:
    """The offset of the ``{`` that opens the body of the declaration starting at ``at``; None if a ``;``, ``}``
    or ``)`` too many comes first (no body)."""
    parens = 0
    for j in range(at, len(masked)):
        c = masked[j]
        if c in "([":
            parens += 1
        elif c in ")]":
            parens -= 1
            if parens < 0:
                return None
        elif parens == 0 and c in ";}":
            return None
        elif parens == 0 and c == "{":
            return j
    return None


_CLASS = re.compile(r"\b(?:class|interface|enum|record|namespace)\s+([\w$]+)")
_SPACE = re.compile(r"\s*")


def _c_family(source: str, language: str) -> list[CodeFunction]:
    masked, comments = _mask(source, language)
    classes = []  # (start, end, name) of class bodies, for qualified names
    if language != "go":
        for m in _CLASS.finditer(masked):
            brace = _header_end(masked, m.end())
            if brace is not None and m.group(1) not in ("extends", "implements"):
                classes.append((brace, _body_end(masked, brace), m.group(1)))
    newlines = [m.start() for m in re.finditer("\n", source)]
    out = []
    depth = position = 0  # brace depth at ``position``, advanced from one doc comment to the next
    for doc, after in _doc_comments(source, comments, language):
        space = _SPACE.match(masked, after)
        start = space.end() if space else after
        depth += masked.count("{", position, start) - masked.count("}", position, start)
        position = start
        if start >= len(masked) or masked.count("\n", after, start) > 1:  # a blank line: not this code's doc
            continue
        brace = _header_end(masked, start)
        if brace is None:
            continue
        receiver, name = _header_name(masked[start:brace], language)
        if name is None:
            continue
        end = _body_end(masked, brace)
        outer = [c for b, e, c in classes if b < start < e]
        qualname = ".".join([*outer, *([receiver] if receiver else []), name])
        line = bisect.bisect_left(newlines, start)  # newlines before the header: its 0-based line
        line_start = newlines[line - 1] + 1 if line else 0
        out.append(CodeFunction(qualname, doc, dedent(source[line_start:end]), line + 1,
                                empty_body=not masked[brace + 1:end - 1].strip(), nested=depth > len(outer)))
    return out
