"""The languages the code chunker parses: which file is which language, and which tree-sitter node types are its
functions, types and containers (``chunking.code`` does the rest, the same way for every language).

Grammars come from the per-language wheels (``tree-sitter-python``, ``tree-sitter-javascript``, ...) loaded with the
``tree-sitter`` package, not from ``tree-sitter-language-pack``: its 1.x releases ship no grammar and download each
one from GitHub on first use (checked: ``get_parser("python")`` fails with a DownloadError without network), which
breaks on air-gapped machines and in CI. The wheels carry their compiled grammar and work offline from a plain
``pip install 'retrievekit[code]'``.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from retrievekit.core.errors import MissingExtraError

logger = logging.getLogger(__name__)

# Kinds of containers whose functions are methods (a function in a namespace or Ruby module stays a function).
CLASS_KINDS = frozenset({"class", "struct", "interface", "trait", "impl", "enum", "record"})


@dataclass(frozen=True)
class Grammar:
    """One parsed language. ``functions`` are leaf symbols (their nested functions stay inside them);
    ``types`` are leaf type symbols (kind by node type); ``containers`` hold members that become chunks of their
    own (the container's chunk keeps its header, docstring and fields); ``wrappers`` enclose one symbol and belong
    to its span (decorators, ``export``, ``template<...>``); ``comments`` and ``attributes`` directly above a symbol
    belong to it (``attributes`` also count as decorators)."""

    language: str
    module: str
    function: str = "language"
    functions: frozenset[str] = frozenset()
    types: Mapping[str, str] = field(default_factory=dict)
    containers: Mapping[str, str] = field(default_factory=dict)
    wrappers: frozenset[str] = frozenset()
    comments: frozenset[str] = frozenset({"comment"})
    attributes: frozenset[str] = frozenset()
    decorators: frozenset[str] = frozenset()  # decorator node types found inside a symbol or its wrapper
    body_optional: bool = False  # a function without a body field is still a definition (Ruby ``def f; end``)

    @property
    def package(self) -> str:
        return self.module.replace("_", "-")


_JS_FUNCTIONS = frozenset({"function_declaration", "generator_function_declaration", "method_definition",
                           "variable_declarator"})
_JS_WRAPPERS = frozenset({"export_statement", "lexical_declaration", "variable_declaration"})
_TS_CONTAINERS = {"class_declaration": "class", "abstract_class_declaration": "class",
                  "interface_declaration": "interface", "enum_declaration": "enum", "internal_module": "namespace",
                  "module": "namespace"}


def _typescript(function: str) -> Grammar:
    # a namespace parses as an expression statement holding an internal_module: that statement is its wrapper
    return Grammar("typescript", "tree_sitter_typescript", function, functions=_JS_FUNCTIONS,
                   types={"type_alias_declaration": "type"}, containers=_TS_CONTAINERS,
                   wrappers=_JS_WRAPPERS | {"ambient_declaration", "expression_statement"},
                   decorators=frozenset({"decorator"}), attributes=frozenset({"decorator"}))


GRAMMARS: dict[str, Grammar] = {
    "python": Grammar("python", "tree_sitter_python", functions=frozenset({"function_definition"}),
                      containers={"class_definition": "class"}, wrappers=frozenset({"decorated_definition"}),
                      decorators=frozenset({"decorator"}), body_optional=True),
    "javascript": Grammar("javascript", "tree_sitter_javascript", functions=_JS_FUNCTIONS,
                          containers={"class_declaration": "class"}, wrappers=_JS_WRAPPERS,
                          decorators=frozenset({"decorator"}), attributes=frozenset({"decorator"})),
    "typescript": _typescript("language_typescript"),
    "tsx": _typescript("language_tsx"),
    "go": Grammar("go", "tree_sitter_go", functions=frozenset({"function_declaration", "method_declaration"}),
                  types={"type_spec": "type"}, wrappers=frozenset({"type_declaration"})),
    "rust": Grammar("rust", "tree_sitter_rust", functions=frozenset({"function_item"}),
                    types={"type_item": "type", "macro_definition": "macro", "struct_item": "struct",
                           "enum_item": "enum", "union_item": "struct"},
                    containers={"trait_item": "trait", "impl_item": "impl", "mod_item": "namespace"},
                    comments=frozenset({"line_comment", "block_comment"}),
                    attributes=frozenset({"attribute_item"})),
    "java": Grammar("java", "tree_sitter_java",
                    functions=frozenset({"method_declaration", "constructor_declaration",
                                         "compact_constructor_declaration"}),
                    containers={"class_declaration": "class", "interface_declaration": "interface",
                                "enum_declaration": "enum", "record_declaration": "record",
                                "annotation_type_declaration": "interface"},
                    comments=frozenset({"line_comment", "block_comment"}),
                    decorators=frozenset({"annotation", "marker_annotation"})),
    "c": Grammar("c", "tree_sitter_c", functions=frozenset({"function_definition"}),
                 types={"struct_specifier": "struct", "union_specifier": "struct", "enum_specifier": "enum",
                        "type_definition": "type"}),
    "cpp": Grammar("cpp", "tree_sitter_cpp", functions=frozenset({"function_definition"}),
                   types={"enum_specifier": "enum", "type_definition": "type"},
                   containers={"class_specifier": "class", "struct_specifier": "struct",
                               "union_specifier": "struct", "namespace_definition": "namespace"},
                   wrappers=frozenset({"template_declaration"})),
    "ruby": Grammar("ruby", "tree_sitter_ruby", functions=frozenset({"method", "singleton_method"}),
                    containers={"class": "class", "module": "namespace", "singleton_class": "class"},
                    body_optional=True),
}

# file extension (lower-case) -> grammar key; ".h" is tried as C, then as C++ when C fails to parse it
EXTENSIONS = {
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".go": "go", ".rs": "rust", ".java": "java",
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp", ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp",
    ".h++": "cpp", ".ipp": "cpp", ".tpp": "cpp",
    ".rb": "ruby", ".rake": "ruby", ".gemspec": "ruby",
}
FILE_NAMES = {"rakefile": "ruby", "gemfile": "ruby", "guardfile": "ruby", "vagrantfile": "ruby"}
SHEBANGS = {"python": "python", "python3": "python", "node": "javascript", "ruby": "ruby"}

# languages recorded for files indexed as line windows (no grammar): extension -> language
OTHER_LANGUAGES = {
    ".md": "markdown", ".markdown": "markdown", ".rst": "rst", ".txt": "text", ".json": "json", ".jsonl": "json",
    ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".ini": "ini", ".cfg": "ini", ".xml": "xml",
    ".html": "html", ".htm": "html", ".css": "css", ".scss": "css", ".sql": "sql", ".sh": "shell",
    ".bash": "shell", ".zsh": "shell", ".ps1": "powershell", ".bat": "batch", ".cs": "csharp", ".kt": "kotlin",
    ".kts": "kotlin", ".swift": "swift", ".scala": "scala", ".php": "php", ".lua": "lua", ".pl": "perl",
    ".r": "r", ".m": "objective-c", ".mm": "objective-c", ".dart": "dart", ".ex": "elixir", ".exs": "elixir",
    ".erl": "erlang", ".hs": "haskell", ".ml": "ocaml", ".clj": "clojure", ".vue": "vue", ".svelte": "svelte",
    ".proto": "protobuf", ".graphql": "graphql", ".tf": "terraform", ".cmake": "cmake", ".mk": "make",
}
OTHER_FILE_NAMES = {"makefile": "make", "dockerfile": "dockerfile", "cmakelists.txt": "cmake"}


def grammar_key(path: str, text: str | None = None) -> str | None:
    """The grammar for ``path`` (by extension, file name, or a ``#!`` line of ``text``), or None."""
    name = os.path.basename(path).lower()
    key = EXTENSIONS.get(os.path.splitext(name)[1]) or FILE_NAMES.get(name)
    if key is None and text is not None and text.startswith("#!"):
        words = text[: text.find("\n") if "\n" in text else 200].replace("/", " ").split()
        for word in reversed(words):
            if word in SHEBANGS:
                return SHEBANGS[word]
            if word.startswith("python"):
                return "python"
    return key


def language_of(path: str, text: str | None = None) -> str:
    """The language name recorded for a file: a parsed language, another known one, or "text"."""
    key = grammar_key(path, text)
    if key is not None:
        return GRAMMARS[key].language
    name = os.path.basename(path).lower()
    return OTHER_FILE_NAMES.get(name) or OTHER_LANGUAGES.get(os.path.splitext(name)[1], "text")


_LANGUAGES: dict[str, Any] = {}
_MISSING: set[str] = set()
_LOCK = threading.Lock()


def parser_for(key: str) -> Any | None:
    """A new tree-sitter parser for grammar ``key`` (parsers are not thread-safe; a parser is cheap, the loaded
    grammar is cached), or None when the grammar wheel is not installed (logged once). Raises MissingExtraError
    naming the ``code`` extra when tree-sitter itself is missing."""
    try:
        import tree_sitter
    except ImportError as exc:
        raise MissingExtraError("code chunking needs tree-sitter and its grammars; install them with: "
                                "pip install 'retrievekit[code]'") from exc
    language = _LANGUAGES.get(key)
    if language is None:
        if key in _MISSING:
            return None
        grammar = GRAMMARS[key]
        with _LOCK:
            try:
                module = importlib.import_module(grammar.module)
            except ImportError:
                _MISSING.add(key)
                logger.warning("no %s grammar (pip install %s): %s files are indexed as line windows",
                               grammar.language, grammar.package, grammar.language)
                return None
            language = _LANGUAGES[key] = tree_sitter.Language(getattr(module, grammar.function)())
    return tree_sitter.Parser(language)
