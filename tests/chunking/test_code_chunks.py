"""Structural code chunking (tree-sitter): one fixture per language, exact spans, qualified names, docstrings,
decorators, splitting of long symbols, fallbacks."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("tree_sitter", reason="needs retrievekit[code]")

from retrievekit.chunking import Chunk, ChunkingError, get_chunker
from retrievekit.chunking.code import CodeChunk, CodeChunks, chunk_code

PYTHON = '''"""Module doc."""
import os

RETRIES = 3


# Computes the delay.
@functools.cache
@trace(level=2)
def backoff(attempt: int, base: float = 0.5) -> float:
    """Exponential backoff delay.

    Doubles every attempt."""
    return base * 2 ** attempt


class RetryPolicy(Base):
    """When and how often to retry."""

    max_attempts = 5

    def __init__(self, attempts):
        self.attempts = attempts

    @property
    def exhausted(self):
        return self.attempts >= self.max_attempts

    @exhausted.setter
    def exhausted(self, value):
        self.attempts = value

    timeout = 30

    class Inner:
        def deep(self):
            return 1


if __name__ == "__main__":
    print(backoff(2))
'''

JAVASCRIPT = '''import { fetch } from "./net.js";

// Adds two numbers.
function add(a, b) {
  return a + b;
}

/** A widget on screen. */
export class Widget extends Base {
  count = 0;

  constructor(name) {
    super();
    this.name = name;
  }

  static create() {
    return new Widget("w");
  }
}

export const double = (x) => x * 2;
const noop = function () {};
'''

TYPESCRIPT = '''// The service.
@Injectable()
export class UserService implements Service {
  private cache: Map<string, User> = new Map();

  @Get(":id")
  async find(id: string): Promise<User> {
    return this.cache.get(id)!;
  }
}

export interface User {
  id: string;
  name(): string;
}

export function greet(u: User): string {
  return `hi ${u.id}`;
}

type Id = string;

enum Color { Red, Green }

namespace Util {
  export function helper(): void {}
}
'''

TSX = '''import React from "react";

export function Button(props: { label: string }) {
  return <button>{props.label}</button>;
}
'''

GO = '''package server

import "net/http"

// Server serves HTTP.
type Server struct {
	addr string
}

// Start listens on the port.
func (s *Server) Start(port int) error {
	return http.ListenAndServe(s.addr, nil)
}

func main() {
	s := &Server{}
	s.Start(80)
}
'''

RUST = '''use std::fmt;

/// A point in the plane.
#[derive(Debug, Clone)]
pub struct Point {
    x: i32,
}

impl Point {
    /// Makes a point.
    pub fn new(x: i32) -> Self {
        Point { x }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.x)
    }
}

pub trait Shape {
    fn area(&self) -> f64;
    fn name(&self) -> String {
        "shape".to_string()
    }
}

fn main() {}
'''

JAVA = '''package com.example;

import java.util.List;

/** A repository of users. */
@Repository
public class UserRepo extends Base {
    private final int limit = 10;

    /** Finds users by name. */
    @Override
    public List<User> find(String name) throws IOException {
        return query(name);
    }

    public UserRepo() {
        super();
    }

    interface Listener {
        void changed();
    }
}
'''

C = '''#include <stdio.h>

/* A linked list node. */
struct node {
    int value;
    struct node *next;
};

typedef struct { int x; int y; } point_t;

// Sums the list.
static int sum(const struct node *n) {
    int s = 0;
    for (; n; n = n->next) s += n->value;
    return s;
}

int *make_buffer(size_t n) { return calloc(n, sizeof(int)); }
'''

CPP = '''#include <vector>

namespace geo {

// A shape.
class Shape {
 public:
  virtual ~Shape() = default;
  virtual double area() const = 0;
  int id() const { return id_; }

 private:
  int id_ = 0;
};

template <typename T>
T max_of(T a, T b) {
  return a > b ? a : b;
}

double Shape::scale(double f) { return f * 2; }

}  // namespace geo
'''

RUBY = '''require "json"

# Billing code.
module Billing
  # An invoice.
  class Invoice < Base
    attr_reader :total

    # The total with tax.
    def total(tax = 0)
      @total + tax
    end

    def self.build(data)
      new(data)
    end
  end
end
'''

FIXTURES = {  # path -> (source, language, expected (key, kind) pairs)
    "pkg/retry.py": (PYTHON, "python", [
        ("<module>", "module"), ("backoff", "function"), ("RetryPolicy", "class"),
        ("RetryPolicy.__init__", "method"), ("RetryPolicy.exhausted", "method"),
        ("RetryPolicy.exhausted~2", "method"), ("RetryPolicy.<block>", "block"), ("RetryPolicy.Inner", "class"),
        ("RetryPolicy.Inner.deep", "method"), ("<module>~2", "module")]),
    "web/widget.js": (JAVASCRIPT, "javascript", [
        ("<module>", "module"), ("add", "function"), ("Widget", "class"), ("Widget.constructor", "method"),
        ("Widget.create", "method"), ("double", "function"), ("noop", "function")]),
    "src/user.ts": (TYPESCRIPT, "typescript", [
        ("UserService", "class"), ("UserService.find", "method"), ("User", "interface"), ("greet", "function"),
        ("Id", "type"), ("Color", "enum"), ("Util", "namespace"), ("Util.helper", "function")]),
    "ui/button.tsx": (TSX, "typescript", [("<module>", "module"), ("Button", "function")]),
    "server/server.go": (GO, "go", [
        ("<module>", "module"), ("Server", "struct"), ("Server.Start", "method"), ("main", "function")]),
    "src/point.rs": (RUST, "rust", [
        ("<module>", "module"), ("Point", "struct"), ("Point~2", "impl"), ("Point.new", "method"),
        ("Point~3", "impl"), ("Point.fmt", "method"), ("Shape", "trait"), ("Shape.name", "method"),
        ("main", "function")]),
    "src/UserRepo.java": (JAVA, "java", [
        ("<module>", "module"), ("UserRepo", "class"), ("UserRepo.find", "method"), ("UserRepo.UserRepo", "method"),
        ("UserRepo.Listener", "interface")]),
    "src/list.c": (C, "c", [
        ("<module>", "module"), ("node", "struct"), ("point_t", "type"), ("sum", "function"),
        ("make_buffer", "function")]),
    "src/shape.cpp": (CPP, "cpp", [
        ("<module>", "module"), ("geo", "namespace"), ("geo.Shape", "class"), ("geo.Shape.id", "method"),
        ("geo.Shape.<block>", "block"), ("geo.max_of", "function"), ("geo.Shape.scale", "function"),
        ("geo.<block>", "block")]),  # "}  // namespace geo"
    "lib/billing.rb": (RUBY, "ruby", [
        ("<module>", "module"), ("Billing", "namespace"), ("Billing.Invoice", "class"),
        ("Billing.Invoice.total", "method"), ("Billing.Invoice.build", "method")]),
}

_TRIVIAL = re.compile(r"[\s)\]};,]*|\s*end\s*")


def check_invariants(text: str, result: CodeChunks, max_lines: int | None = None) -> None:
    """Exact spans (characters and bytes), unique keys, and every line that holds more than closing brackets in
    exactly one chunk."""
    data = text.encode("utf-8")
    lines = text.split("\n")
    owners = [0] * len(lines)
    keys = [c.key for c in result.chunks]
    assert len(keys) == len(set(keys)), keys
    for c in result.chunks:
        assert text[c.start : c.end] == c.source == c.text[c.header_chars :]
        assert data[c.start_byte : c.end_byte] == c.source.encode("utf-8")
        assert text.count("\n", 0, c.start) + 1 == c.start_line
        assert text.count("\n", 0, c.end) + 1 == c.end_line
        assert c.source.strip(), c
        for row in range(c.start_line - 1, c.end_line):
            owners[row] += 1
        if max_lines is not None:
            content = [r for r in range(c.start_line - 1, c.end_line) if not _TRIVIAL.fullmatch(lines[r])]
            assert len(content) <= max_lines or c.end_line - c.start_line < max_lines + 3, c
    for row, line in enumerate(lines):
        assert owners[row] <= 1, (row + 1, line)
        assert owners[row] == 1 or _TRIVIAL.fullmatch(line), (row + 1, line)


@pytest.mark.parametrize("path", list(FIXTURES))
def test_every_language_fixture(path: str) -> None:
    source, language, expected = FIXTURES[path]
    result = chunk_code(source, path)
    assert result.parsed and result.warning is None and result.language == language
    check_invariants(source, result)
    assert [(c.key, c.kind) for c in result.chunks] == expected


def by_key(result: CodeChunks) -> dict[str, CodeChunk]:
    return {c.key: c for c in result.chunks}


def test_python_symbols_carry_docstrings_decorators_signatures_and_comments() -> None:
    chunks = by_key(chunk_code(PYTHON, "retry.py"))
    backoff = chunks["backoff"]
    assert backoff.docstring == "Exponential backoff delay.\n\nDoubles every attempt."
    assert backoff.decorators == ("@functools.cache", "@trace(level=2)")
    assert backoff.signature == "def backoff(attempt: int, base: float = 0.5) -> float"
    assert backoff.source.startswith("# Computes the delay.\n@functools.cache")  # comment and decorators in the span
    assert (backoff.start_line, backoff.end_line, backoff.qualname, backoff.symbol) == (7, 14, "backoff", "backoff")
    policy = chunks["RetryPolicy"]  # header, docstring and fields, not the methods
    assert policy.source == 'class RetryPolicy(Base):\n    """When and how often to retry."""\n\n    max_attempts = 5'
    assert policy.docstring == "When and how often to retry." and policy.signature == "class RetryPolicy(Base)"
    assert chunks["RetryPolicy.exhausted"].decorators == ("@property",)
    assert chunks["RetryPolicy.exhausted~2"].decorators == ("@exhausted.setter",)
    assert chunks["RetryPolicy.<block>"].source == "    timeout = 30"
    assert chunks["<module>~2"].source.startswith('if __name__ == "__main__":')


def test_leading_comments_and_attributes_belong_to_their_symbol() -> None:
    go = by_key(chunk_code(GO, "s.go"))
    assert go["Server.Start"].docstring == "Start listens on the port."
    assert go["Server.Start"].signature == "func (s *Server) Start(port int) error"
    assert go["Server"].docstring == "Server serves HTTP."
    rust = by_key(chunk_code(RUST, "p.rs"))
    assert rust["Point"].decorators == ("#[derive(Debug, Clone)]",)
    assert rust["Point"].docstring == "A point in the plane." and rust["Point.new"].docstring == "Makes a point."
    assert rust["Point~3"].signature == "impl fmt::Display for Point"
    java = by_key(chunk_code(JAVA, "R.java"))
    assert java["UserRepo.find"].decorators == ("@Override",)
    assert java["UserRepo.find"].docstring == "Finds users by name."
    assert java["UserRepo.find"].signature == "public List<User> find(String name) throws IOException"
    assert java["UserRepo"].decorators == ("@Repository",) and "private final int limit" in java["UserRepo"].source
    ts = by_key(chunk_code(TYPESCRIPT, "u.ts"))
    assert ts["UserService"].decorators == ("@Injectable()",) and ts["UserService"].docstring == "The service."
    assert ts["UserService.find"].decorators == ('@Get(":id")',)
    assert ts["UserService.find"].signature == "async find(id: string): Promise<User>"
    js = by_key(chunk_code(JAVASCRIPT, "w.js"))
    assert js["Widget"].docstring == "A widget on screen." and js["add"].docstring == "Adds two numbers."
    assert js["double"].signature == "export const double = (x) =>"
    ruby = by_key(chunk_code(RUBY, "b.rb"))
    assert ruby["Billing.Invoice"].docstring == "An invoice." and ruby["Billing"].signature == "module Billing"
    assert ruby["Billing.Invoice.total"].docstring == "The total with tax."
    c = by_key(chunk_code(C, "l.c"))
    assert c["sum"].docstring == "Sums the list." and c["sum"].signature == "static int sum(const struct node *n)"
    cpp = by_key(chunk_code(CPP, "s.cpp"))
    assert "virtual double area() const = 0;" in cpp["geo.Shape"].source  # declarations stay with the class
    assert cpp["geo.max_of"].source.startswith("template <typename T>")


def big_function(n: int) -> str:
    body = "\n".join(f"    value_{i} = compute({i}, 'é')" for i in range(n))
    return f"import os\n\n\ndef big(alpha,\n        beta):\n    \"\"\"Long.\"\"\"\n{body}\n    return alpha\n"


def test_a_long_symbol_is_split_at_statements_with_its_header_repeated() -> None:
    text = big_function(100)
    result = chunk_code(text, "big.py", max_lines=20)
    check_invariants(text, result, max_lines=20)
    parts = [c for c in result.chunks if c.qualname == "big"]
    assert [c.part for c in parts] == list(range(1, len(parts) + 1)) and len(parts) == 6
    assert all(c.parts == len(parts) for c in parts)
    assert [c.key for c in parts] == ["big"] + [f"big[{i}]" for i in range(2, len(parts) + 1)]
    assert all(parts[i].end_line + 1 == parts[i + 1].start_line for i in range(len(parts) - 1))  # contiguous
    assert parts[0].header_chars == 0 and parts[0].text == parts[0].source
    for part in parts[1:]:
        assert part.text.startswith("def big(alpha,\n        beta):\n    ")
        assert part.text[part.header_chars :] == part.source
        assert re.match(r"    (value_\d+ = |return )", part.source)  # starts at a statement
        assert part.signature == "def big(alpha, beta)" and part.docstring == "Long."


def test_a_statement_too_long_by_itself_is_split_inside() -> None:
    inner = "\n".join(f"        y_{i} = {i}" for i in range(50))
    text = f"def f(flag):\n    if flag:\n{inner}\n    return flag\n"
    result = chunk_code(text, "f.py", max_lines=10)
    check_invariants(text, result, max_lines=10)
    assert len(result.chunks) >= 6
    assert all(re.match(r"        y_\d+ = ", c.source) or c.part == 1 or c.source.startswith("    return")
               for c in result.chunks)


def test_a_long_line_budget_splits_by_characters_too() -> None:
    text = big_function(30)
    result = chunk_code(text, "big.py", max_lines=1000, max_chars=300)
    check_invariants(text, result)
    assert all(len(c.source) <= 300 for c in result.chunks)


def test_syntax_errors_keep_the_sound_definitions_and_window_the_rest() -> None:
    text = ("def ok():\n    return 1\n\n\nclass K:\n    def m(self):\n        return (1,\n\n\n"
            "def after():\n    return 2\n")
    result = chunk_code(text, "broken.py")
    check_invariants(text, result)
    assert result.warning == ("broken.py:7: syntax error; the definitions that hold an error (or lie in one) are "
                              "indexed as line windows")
    assert [(c.key, c.kind) for c in result.chunks] == [("ok", "function"), ("<module>", "module")]
    c_text = "int ok(void) { return 1; }\n\nint bad(void) { return 1 +; }\n\nint fine(int a) {\n  return a;\n}\n"
    result = chunk_code(c_text, "p.c")
    check_invariants(c_text, result)
    assert [c.key for c in result.chunks] == ["ok", "<module>", "fine"] and "p.c:3:" in (result.warning or "")


def test_other_languages_fall_back_to_line_windows() -> None:
    text = "# Title\n\n" + "\n".join(f"line {i}" for i in range(150)) + "\n"
    result = chunk_code(text, "docs/README.md", max_lines=60)
    assert not result.parsed and result.language == "markdown" and result.warning is None
    check_invariants(text, result, max_lines=60)
    assert [c.key for c in result.chunks] == ["<lines>", "<lines>~2", "<lines>~3"]
    assert {c.kind for c in result.chunks} == {"lines"}
    assert result.chunks[0].source.startswith("# Title\n\nline 0")
    assert chunk_code("x = 1\n", "Makefile").language == "make"
    assert chunk_code("whatever\n", "notes").language == "text"


def test_language_from_shebang_and_c_headers_parsed_as_cpp() -> None:
    script = "#!/usr/bin/env python3\ndef main():\n    pass\n"
    assert [c.key for c in chunk_code(script, "bin/tool").chunks] == ["<module>", "main"]
    header = "#pragma once\nclass Vec {\n public:\n  int size() const { return n; }\n  int n;\n};\n"
    result = chunk_code(header, "vec.h")
    assert result.language == "cpp" and result.warning is None
    assert [c.key for c in result.chunks] == ["<module>", "Vec", "Vec.size", "Vec.<block>"]


def test_offsets_with_crlf_and_non_ascii() -> None:
    text = "# café ☕\r\ndef naïve(x):\r\n    return 'ü' + x\r\n\r\nvalue = naïve('é')\r\n"
    result = chunk_code(text, "u.py")
    check_invariants(text, result)
    fn = by_key(result)["naïve"]
    assert fn.source == "# café ☕\r\ndef naïve(x):\r\n    return 'ü' + x"  # no trailing \r: the line break is outside
    assert fn.start_byte == 0 and fn.end_byte == len(fn.source.encode("utf-8")) and fn.end == len(fn.source)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ChunkingError, match="max_lines must be an integer >= 1"):
        chunk_code("x = 1", "a.py", max_lines=0)
    with pytest.raises(ChunkingError, match="unknown code language 'cobol'"):
        chunk_code("x = 1", "a.py", language="cobol")
    assert chunk_code("", "a.py").chunks == [] and chunk_code("\n\n  \n", "a.py").chunks == []


def test_the_code_chunker_in_the_registry() -> None:
    chunker = get_chunker("code:20")
    assert chunker.spec == "code:20"
    chunks = chunker.chunk("repo/retry.py", PYTHON)
    assert all(isinstance(c, Chunk) and PYTHON[c.start : c.end] == c.text for c in chunks)
    assert [c.metadata["heading"] for c in chunks][:3] == ["<module>", "backoff", "RetryPolicy"]
    assert chunks[1].metadata["kind"] == "function" and chunks[1].metadata["start_line"] == 7
    # the language comes from the metadata path when the id is not a path
    assert get_chunker("code").chunk("doc-1", GO, {"path": "s.go"})[1].metadata["language"] == "go"
    with pytest.raises(ChunkingError, match="code MAX_LINES must be an integer"):
        get_chunker("code:many")
