"""Docstring → function pairs: Python through ``ast`` (qualified names, decorators kept, docstring cut out, dunders,
stubs and tiny docstrings skipped), JavaScript/TypeScript/Java/Go doc comments through the literal-aware scanner
(braces in strings, comments, templates and regexes do not count; uncertain headers are skipped, not guessed), how a
document's language is recognised, and the builder's counts on a real collection."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrievekit import Collection
from retrievekit.core.document import Document
from retrievekit.training import TrainingDataError, TrainingSet
from retrievekit.training.builders import docstring_function
from retrievekit.training.code_functions import CodeParseError, first_paragraph, functions, language_hint

PYTHON = '''
import os


def plain(x):
    return x


@decorator(1)
def add(a, b):
    """Add two numbers and return their sum.

    More detail that is not part of the query.
    """
    # a comment stays
    return a + b


class Stack:
    """A stack."""

    def __init__(self):
        """Make an empty stack of things."""
        self.items = []

    async def push(self, item):
        """Push an item onto the top
        of the stack."""
        self.items.append(item)

    def stub(self):
        """An abstract method with nothing inside."""
        ...

    def tiny(self):
        """Tiny."""
        return 1


if os.name == "nt":
    def windows_only():
        """Only defined on windows machines."""
        def inner():
            """Inner helper function documented too."""
            return 1
        return inner


def oneliner(): "One line docstring for this."; return 1


def café(x):
    """Return a string literal that is less indented."""
    s = """
text
"""
    return s
'''


def test_python_functions() -> None:
    found = {f.qualname: f for f in functions(PYTHON, "python")}
    assert list(found) == ["add", "Stack.__init__", "Stack.push", "Stack.stub", "Stack.tiny", "windows_only",
                           "windows_only.<locals>.inner", "oneliner", "café"]
    add = found["add"]
    assert add.source == "@decorator(1)\ndef add(a, b):\n    # a comment stays\n    return a + b"
    assert add.line == 9 and first_paragraph(add.doc) == "Add two numbers and return their sum."
    push = found["Stack.push"]
    assert push.source == "async def push(self, item):\n    self.items.append(item)"
    assert first_paragraph(push.doc) == "Push an item onto the top of the stack."
    assert found["Stack.stub"].empty_body and not found["Stack.tiny"].empty_body
    assert found["windows_only.<locals>.inner"].nested and not found["windows_only"].nested
    assert '"""Inner helper function documented too."""' in found["windows_only"].source  # only its own doc goes
    assert found["oneliner"].source == "def oneliner(): return 1"
    assert found["café"].source == 'def café(x):\n    s = """\ntext\n"""\n    return s'  # UTF-8 columns, dedent
    with pytest.raises(CodeParseError, match="not valid Python"):
        functions("def broken(:\n    pass", "python")


JAVASCRIPT = r'''
import x from "y";

/**
 * Add two numbers together and return it.
 * @param {number} a first
 */
export function add(a, b) {
  const s = "}{";  // a brace } in a comment
  const re = /[{]/g;
  const t = `sum ${a + b} is ${ {v: 1}.v } }`;
  return a / b / 2;
}

/** Not a function doc: a constant. */
const LIMIT = 10;

/**
 * A class that counts things.
 */
class Counter {
  /**
   * Increase the counter by the given step.
   */
  increment(step = 1) {
    /** A nested helper that is documented too. */
    function helper() { return step; }
    this.n += helper();
  }

  /** Arrow property that resets everything now. */
  reset = () => {
    this.n = 0;
  };
}

/**
 * Multiply values with an arrow function.
 */
const mul = (a, b) => {
  return a * b;
};

/** Documented, but a blank line follows. */

function orphan() { return 1; }
'''

TYPESCRIPT = r'''
/**
 * Fetch a user by identifier from the api.
 */
export async function getUser<T>(id: string): Promise<User<T>> {
  return api.get(`/users/${id}`);
}

/**
 * Returns an object literal type, so the header is cut at its brace: skipped.
 */
function shape(): {a: number} {
  return {a: 1};
}

interface Service {
  /** A method without a body is skipped. */
  run(): void;
}
'''

JAVA = r'''
package x;

/**
 * Utility class for strings.
 */
public final class Strings {
    /**
     * Reverse the given string and return the result.
     * <p>Longer explanation.
     * @param s input
     */
    @Override
    @SuppressWarnings("unchecked")
    public static <T> String reverse(String s) throws IOException {
        char c = '{';
        String block = """
            text with } brace
            """;
        return new StringBuilder(s).reverse().toString();
    }

    /** Count the {@link Character} items in a string. */
    int count(String s) { return s.length(); }

    /** A field doc, not a method. */
    private int x = 3;

    static class Inner {
        /** Compute something inside the inner class body. */
        void compute() {
            if (true) { }
        }
    }
}
'''

GO = r'''
package main

// Server serves things.
type Server struct{ addr string }

// Start starts the server on its address
// and blocks until done.
//
// More detail.
func (s *Server) Start(ctx context.Context) error {
	msg := `raw { string`
	r := '}'
	return nil
}

// Add returns the sum of two integers a and b.
func Add(a, b int) int { return a + b }

x := 1 // a trailing comment documents nothing
func NoDoc() {}

// Pair returns an anonymous struct, whose braces come before the body: skipped.
func Pair() struct{ a int } {
	return struct{ a int }{1}
}
'''


@pytest.mark.parametrize(("language", "source", "expected"), [
    ("javascript", JAVASCRIPT, {
        "add": "Add two numbers together and return it.",
        "Counter.increment": "Increase the counter by the given step.",
        "Counter.helper": "A nested helper that is documented too.",
        "Counter.reset": "Arrow property that resets everything now.",
        "mul": "Multiply values with an arrow function."}),
    ("typescript", TYPESCRIPT, {"getUser": "Fetch a user by identifier from the api."}),
    ("java", JAVA, {
        "Strings.reverse": "Reverse the given string and return the result.",
        "Strings.count": "Count the Character items in a string.",
        "Strings.Inner.compute": "Compute something inside the inner class body."}),
    ("go", GO, {
        "Server.Start": "Start starts the server on its address and blocks until done.",
        "Add": "Add returns the sum of two integers a and b."}),
])
def test_doc_comment_languages(language: str, source: str, expected: dict[str, str]) -> None:
    found = functions(source, language)
    assert {f.qualname: first_paragraph(f.doc) for f in found} == expected
    for f in found:
        assert "/**" not in f.source.split("\n")[0] and not f.source.startswith("//")
        assert f.source.rstrip().endswith("}") and f.source.count("{") >= 1
        assert source.split("\n")[f.line - 1].strip() == f.source.split("\n")[0].strip()


def test_literals_do_not_cut_bodies() -> None:
    by_name = {f.qualname: f for f in functions(JAVASCRIPT, "javascript")}
    assert by_name["add"].source.split("\n")[-2:] == ["  return a / b / 2;", "}"]  # division is not a regex
    assert by_name["Counter.helper"].nested and not by_name["Counter.increment"].nested
    java = {f.qualname: f for f in functions(JAVA, "java")}
    assert java["Strings.reverse"].source.startswith("@Override\n@SuppressWarnings")
    assert java["Strings.reverse"].source.endswith("return new StringBuilder(s).reverse().toString();\n}")
    go = {f.qualname: f for f in functions(GO, "go")}
    assert go["Server.Start"].source.split("\n")[-1] == "}" and "msg := `raw { string`" in go["Server.Start"].source


@pytest.mark.parametrize(("source", "message"), [
    ("function f() { return '}; }", "unterminated literal"),
    ("/* never closed", "unterminated comment"),
    ("function f() {", "unbalanced braces"),
    ("function f() { return 1; }}", "unbalanced '}'"),
    ("const t = `abc", "unterminated template"),
])
def test_unreadable_files_fail_as_a_whole(source: str, message: str) -> None:
    with pytest.raises(CodeParseError, match=message):
        functions(source, "javascript")


def test_language_hint() -> None:
    assert language_hint("x", {"language": "Python"}) == "python"
    assert language_hint("x", {"language": "tsx"}) == "typescript"
    assert language_hint("x", {"language": "rust"}) == "other"
    assert language_hint("x", {"path": "src/app.go"}) == "go"
    assert language_hint("x", {"extension": "java"}) == "java"
    assert language_hint("x", {"path": "README.md"}) == "other"
    assert language_hint("lib/util.mjs", {}) == "javascript"
    assert language_hint("doc-17", {}) is None


def code_documents() -> list[Document]:
    return [
        Document(id="pkg/stack.py", text=PYTHON, metadata={"path": "pkg/stack.py"}),
        Document(id="web/app.js", text=JAVASCRIPT, metadata={"language": "javascript"}),
        Document(id="Strings.java", text=JAVA),  # no metadata: the id's extension
        Document(id="bare-python", text='def f(x):\n    """Square the number x for callers."""\n    return x * x\n'),
        Document(id="prose", text="This is just a note about gardening in spring."),  # no hint, does not parse
        Document(id="broken.py", text="def broken(:\n    pass\n", metadata={"path": "broken.py"}),
        Document(id="notes.md", text="# Notes\n\ndef looks_like_code(): pass", metadata={"path": "notes.md"}),
        # one method of a code collection (Collection.ingest_code): indented as in its file, id PATH#QUALNAME
        Document(id="pkg/queue.py#Queue.put", text='    def put(self, item):\n        """Put an item at the end of '
                 'the queue."""\n        def check():\n            """A nested check with a docstring."""\n'
                 '        self.items.append(item)\n',
                 metadata={"path": "pkg/queue.py", "language": "python", "kind": "method", "qualname": "Queue.put",
                           "part": 1, "parts": 1}),
        Document(id="pkg/queue.py#Queue.drain", text='    def drain(self):\n        def inner():\n            """Inn'
                 'er docstring of a nested function."""\n        return []\n',
                 metadata={"path": "pkg/queue.py", "language": "python", "kind": "method", "qualname": "Queue.drain",
                           "part": 1, "parts": 1}),
        Document(id="pkg/queue.py#Queue", text='class Queue:\n    """A queue of things to do."""\n',
                 metadata={"path": "pkg/queue.py", "language": "python", "kind": "class", "qualname": "Queue"}),
        Document(id="pkg/queue.py#Queue.big[2]", text="    def big(self):\n        return 2\n",
                 metadata={"path": "pkg/queue.py", "language": "python", "kind": "method", "qualname": "Queue.big",
                           "part": 2, "parts": 2}),
    ]


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Collection:
    col = Collection.create(tmp_path_factory.mktemp("code") / "col")
    col.add(code_documents())
    return col


def test_builder_on_a_collection(collection: Collection, tmp_path: Path) -> None:
    data = docstring_function(collection)
    by_id = {e.positive_id: e for e in data}
    assert set(by_id) == {
        "pkg/stack.py#add", "pkg/stack.py#Stack.push", "pkg/stack.py#windows_only",
        "pkg/stack.py#windows_only.<locals>.inner", "pkg/stack.py#oneliner", "pkg/stack.py#café",
        "web/app.js#add", "web/app.js#Counter.increment", "web/app.js#Counter.helper", "web/app.js#Counter.reset",
        "web/app.js#mul", "Strings.java#Strings.reverse", "Strings.java#Strings.count",
        "Strings.java#Strings.Inner.compute", "bare-python#f", "pkg/queue.py#Queue.put"}
    put = by_id["pkg/queue.py#Queue.put"]  # a symbol document: its own id, its function only
    assert put.query == "Put an item at the end of the queue."
    assert put.positive.startswith("def put(self, item):\n    def check():") and "end of the queue" not in put.positive
    assert by_id["pkg/stack.py#add"].query == "Add two numbers and return their sum."
    assert all(e.source == "docstring" and e.query not in e.positive for e in data)
    assert data.stats == {"documents": 11, "code_documents": 6, "not_code": 2, "unparsable": 1, "not_function": 1,
                          "partial": 1, "functions": 19, "too_short": 1, "dunder": 1, "empty_body": 1,
                          "examples": 16}
    assert docstring_function(collection) == data  # deterministic
    assert TrainingSet.load(data.save(tmp_path / "code.jsonl")) == data


def test_builder_options(collection: Collection, tmp_path: Path) -> None:
    python = docstring_function(collection, languages=["python"])
    assert {e.positive_id.split("#")[0] for e in python} == {"pkg/stack.py", "bare-python", "pkg/queue.py"}
    assert python.stats["not_code"] == 4  # the JavaScript and Java files, the prose and the Markdown
    strict = docstring_function(collection, languages=["python"], min_doc_words=6)
    assert {e.positive_id for e in strict} == {"pkg/stack.py#add", "pkg/stack.py#Stack.push", "pkg/stack.py#café",
                                               "bare-python#f", "pkg/queue.py#Queue.put"}
    assert len(docstring_function(collection, limit=3)) == 3
    with pytest.raises(TrainingDataError, match="unknown language.*rust"):
        docstring_function(collection, languages=["python", "rust"])
    with pytest.raises(TrainingDataError, match="min_doc_words"):
        docstring_function(collection, min_doc_words=0)
    with pytest.raises(TrainingDataError, match="no documents"):
        docstring_function(Collection.create(tmp_path / "empty"))


def test_a_folder_of_source_files(tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    (folder / "pkg").mkdir(parents=True)
    (folder / "pkg" / "stack.py").write_text(PYTHON, encoding="utf-8")
    (folder / "main.go").write_text(GO, encoding="utf-8")
    col = Collection.create(tmp_path / "col")
    col.ingest(folder, extensions=[".py", ".go"], progress=False)  # files carry their path in the metadata
    data = docstring_function(col)
    assert {e.positive_id for e in data} >= {"pkg/stack.py#add", "main.go#Server.Start", "main.go#Add"}
