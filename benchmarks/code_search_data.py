"""Build a CodeSearchNet-style code search benchmark (a BEIR folder) from the Python source installed here.

Every function and method of the standard library (or of ``--source``) is read with ``ast``, never imported:

* a function whose docstring's first sentence has at least 3 words gives a pair: the query is that sentence, the
  relevant document is the function's source (decorators, signature and body exactly as written, one common
  indentation removed) without the docstring's lines;
* a function without a docstring, or with a shorter first sentence, is a distractor document;
* a function that is only a docstring (plus ``pass``/``...``) is left out: without its docstring nothing is left
  to find; so is one whose docstring shares a line with other code (``def f(): "doc"; ...``), which no line-precise
  removal can separate;
* exact-duplicate documents (the same code, say in two codec modules) are kept once, the first in path order, and
  pairs whose first sentence (case and spacing aside) is shared by several kept functions are ambiguous and dropped
  (their functions stay as distractors);
* nested functions are part of their enclosing function's document, not units of their own (a nested docstring
  would otherwise be a query that matches its parent's text verbatim); functions under module- or class-level
  ``if``/``try``/``with`` count.

Files are split, not functions, so that no test query's file was seen in training: a file is "test" when a hash of
``seed`` and its path falls below ``--test-fraction`` (stable when files are added or removed). The output folder
holds ``corpus.jsonl`` (``_id`` = ``path:qualname``, ``title`` = qualname, ``text`` = code, ``path``, ``language``,
``start_line``, ``end_line``), ``queries.jsonl``, ``qrels/train.tsv``, ``qrels/test.tsv`` and ``manifest.json``
(Python version, source folder, rules, counts). The output is byte-identical across runs on the same Python; it
replaces the folder atomically, and only a folder that this script wrote.

Usage: ``python benchmarks/code_search_data.py [--out benchmarks/work/code_search] [--source DIR] [--seed 0]``
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import json
import logging
import os
import platform
import re
import shutil
import sys
import tokenize
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from retrievekit.ingest.stdlib_corpus import SKIP_DIRS as DOC_CORPUS_SKIP_DIRS
from retrievekit.ingest.stdlib_corpus import stdlib_root

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
BUILDER = "benchmarks/code_search_data.py"
DEFAULT_OUT = Path(__file__).resolve().parent / "work" / "code_search"
MIN_QUERY_WORDS = 3
DEFAULT_MIN_QUERIES = 5000

#: The stdlib documentation corpus's skipped folders (test suites, idlelib, turtledemo, bundled wheels,
#: site-packages), except lib2to3: deprecated, but library code (its test suite is still skipped as ``tests``).
SKIP_DIRS = DOC_CORPUS_SKIP_DIRS - {"lib2to3"}

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
# ast counts lines at \r\n, \r and \n only (str.splitlines would also split at form feeds, which the stdlib has).
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
# A sentence ends at . ! or ? followed by whitespace or the end, unless the word is one of these abbreviations.
_SENTENCE_END = re.compile(r"[.!?](?=\s|\Z)")
_ABBREVIATIONS = frozenset({"e.g", "i.e", "etc", "vs", "cf", "approx", "resp", "incl"})
_WORD = re.compile(r"\S*[^\W\d_]\S*")  # a whitespace-separated word with at least one letter


@dataclass(frozen=True)
class Function:
    """One function of a source file: its document text and, when it qualifies, its query."""

    qualname: str
    start_line: int  # 1-based, the first decorator's line
    end_line: int  # 1-based, inclusive
    code: str  # the source lines without the docstring's
    has_docstring: bool
    query: str | None  # the docstring's first sentence, when it has >= MIN_QUERY_WORDS words


@dataclass
class FileFunctions:
    functions: list[Function]
    skipped: Counter[str]


def first_sentence(docstring: str) -> str:
    """The first sentence of a cleaned docstring's first paragraph, whitespace collapsed ("" when none).

    The paragraph ends at the first blank line; the sentence at the first ``.``, ``!`` or ``?`` followed by
    whitespace (so ``os.path`` and ``3.14`` do not end it) that does not close an abbreviation such as "e.g.".
    """
    paragraph = re.split(r"\n[ \t]*\n", docstring.strip(), maxsplit=1)[0]
    text = " ".join(paragraph.split())
    for match in _SENTENCE_END.finditer(text):
        word = text[: match.start()].rsplit(" ", 1)[-1].lower()
        if word not in _ABBREVIATIONS:
            return text[: match.end()]
    return text


def is_query(sentence: str) -> bool:
    """Whether a first sentence makes a query: at least ``MIN_QUERY_WORDS`` words with letters, not a doctest."""
    return not sentence.startswith(">>>") and len(_WORD.findall(sentence)) >= MIN_QUERY_WORDS


def source_lines(source: str) -> list[str]:
    """The lines of ``source`` with their line ends, numbered the way ``ast`` numbers them (index = line - 1)."""
    return _LINE.findall(source)


def _docstring_node(node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.Expr | None:
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first
    return None


def _char_col(line: str, byte_col: int) -> int:
    """``ast`` column offsets count UTF-8 bytes; the character index of one in ``line``."""
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="replace"))


def function_code(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[str, int, int] | None:
    """(code without the docstring, first line, last line) of ``node``; None when its docstring shares a line
    with other code, or nothing but a docstring (and ``pass``/``...``) is in its body.

    The lines are the file's own from the first decorator to the end of the body, minus exactly the docstring's
    lines (a comment after the closing quotes goes with them); the ``def`` line's indentation is removed from
    every line when all non-blank lines start with it (otherwise, say a multi-line string less indented than the
    ``def``, nothing is removed: the code stays exactly as written).
    """
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    end = node.end_lineno or node.lineno
    drop: range = range(0)
    doc = _docstring_node(node)
    if doc is not None:
        rest = node.body[1:]
        if all(isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                           and s.value.value is Ellipsis) for s in rest):
            return None
        first, last = lines[doc.lineno - 1], lines[(doc.end_lineno or doc.lineno) - 1]
        before = first[: _char_col(first, doc.col_offset)]
        after = last[_char_col(last, doc.end_col_offset or 0):].strip()
        if before.strip() or (after and not after.startswith("#")):
            return None
        drop = range(doc.lineno, (doc.end_lineno or doc.lineno) + 1)
    kept = [lines[i - 1] for i in range(start, end + 1) if i not in drop]
    def_line = lines[node.lineno - 1]
    indent = def_line[: len(def_line) - len(def_line.lstrip(" \t"))]
    if indent and all(line.startswith(indent) for line in kept if line.strip()):
        kept = [line[len(indent):] if line.strip() else line.lstrip(" \t") for line in kept]
    return "".join(kept).rstrip("\r\n"), start, end


def _sub_blocks(node: ast.stmt) -> list[list[ast.stmt]]:
    """The statement lists inside a module- or class-level ``if``/``try``/``with`` (functions defined there)."""
    if isinstance(node, ast.If):
        return [node.body, node.orelse]
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return [node.body]
    if isinstance(node, ast.Try) or type(node).__name__ == "TryStar":  # TryStar: Python 3.11+
        handlers = getattr(node, "handlers", [])
        return [getattr(node, "body", []), *(h.body for h in handlers), getattr(node, "orelse", []),
                getattr(node, "finalbody", [])]
    return []


def _walk(body: list[ast.stmt], prefix: str) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for node in body:
        if isinstance(node, _FUNCTIONS):
            yield prefix + node.name, node  # not descended into: nested functions belong to this document
        elif isinstance(node, ast.ClassDef):
            yield from _walk(node.body, f"{prefix}{node.name}.")
        else:
            for block in _sub_blocks(node):
                yield from _walk(block, prefix)


def extract_functions(source: str, filename: str = "<source>") -> FileFunctions:
    """Every function and method of one file's source (raises SyntaxError/ValueError when it does not parse)."""
    tree = ast.parse(source, filename=filename)
    lines = source_lines(source)
    functions: list[Function] = []
    skipped: Counter[str] = Counter()
    for qualname, node in _walk(tree.body, ""):
        code = function_code(lines, node)
        doc = ast.get_docstring(node, clean=True)
        if code is None:
            skipped["docstring only or sharing a line"] += 1
            continue
        sentence = first_sentence(doc) if doc else ""
        functions.append(Function(qualname, code[1], code[2], code[0], bool(doc),
                                  sentence if is_query(sentence) else None))
    return FileFunctions(functions, skipped)


def read_source(path: Path) -> str:
    """A Python file's text in its declared encoding (PEP 263; a UTF-8 BOM is dropped)."""
    data = path.read_bytes()
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return data.decode(encoding)


def source_files(root: Path) -> list[tuple[Path, str]]:
    """``(path, path relative to root)`` of every ``.py`` file, sorted, skipping the folders the stdlib corpus
    skips (tests, idlelib, lib2to3, site-packages ...), hidden entries and folders that are not packages' names."""
    out: list[tuple[Path, str]] = []

    def walk(folder: Path, rel: tuple[str, ...]) -> None:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            name = entry.name
            if name.startswith(".") or name in SKIP_DIRS:
                continue
            if entry.is_dir(follow_symlinks=False):
                if name.isidentifier():  # skips config-3.11-x86_64-linux-gnu, lib-dynload
                    walk(Path(entry.path), (*rel, name))
            elif name.endswith(".py") and entry.is_file(follow_symlinks=False):
                out.append((Path(entry.path), "/".join((*rel, name))))

    walk(root, ())
    return out


def split_of(rel_path: str, seed: int, test_fraction: float) -> str:
    """"test" or "train" for a file: a hash of the seed and path, so a file's split never depends on the others."""
    digest = hashlib.sha256(f"{seed}\0{rel_path}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


def _sentence_key(sentence: str) -> str:
    return " ".join(sentence.casefold().split()).rstrip(".!?:; ")


def build(root: Path, out: Path, *, seed: int = 0, test_fraction: float = 0.2,
          min_queries: int = DEFAULT_MIN_QUERIES) -> dict[str, int]:
    """Write the benchmark folder ``out`` from the ``.py`` files under ``root``; returns the counts."""
    if not root.is_dir():
        raise SystemExit(f"--source {root}: not a folder")
    if not 0.0 < test_fraction < 1.0:
        raise SystemExit(f"--test-fraction {test_fraction}: must be between 0 and 1")
    counts: Counter[str] = Counter()
    rows: list[tuple[str, str, Function]] = []  # (relative path, split, function)
    seen_ids: set[str] = set()
    for path, rel in source_files(root):
        if any(ch.isspace() for ch in rel):
            logger.warning("skipping %s: whitespace in the path would break run files' ids", rel)
            counts["files skipped"] += 1
            continue
        try:
            found = extract_functions(read_source(path), str(path))
        except (SyntaxError, ValueError, UnicodeDecodeError, OSError) as exc:
            logger.warning("skipping %s: %s", path, exc)
            counts["files skipped"] += 1
            continue
        counts["files"] += 1
        counts.update(found.skipped)
        counts["functions with a docstring"] += sum(fn.has_docstring for fn in found.functions)
        split = split_of(rel, seed, test_fraction)
        counts[f"{split} files"] += 1
        for fn in found.functions:
            rows.append((rel, split, fn))
    counts["functions"] = len(rows)

    # Exact-duplicate code is kept once: the first copy in path order that has a query, else the first copy.
    keep: dict[str, int] = {}
    for i, (_, _, fn) in enumerate(rows):
        if fn.code not in keep or (fn.query and not rows[keep[fn.code]][2].query):
            keep[fn.code] = i
    unique = [rows[i] for i in sorted(keep.values())]
    counts["duplicate code dropped"] = len(rows) - len(unique)
    sentence_uses = Counter(_sentence_key(fn.query) for _, _, fn in unique if fn.query)

    corpus_lines, query_lines = [], []
    qrels: dict[str, list[str]] = {"train": [], "test": []}
    for rel, split, fn in unique:
        doc_id = f"{rel}:{fn.qualname}"
        n = 2
        while doc_id in seen_ids:  # the same name defined twice in a file (per platform, say)
            doc_id = f"{rel}:{fn.qualname}#{n}"
            n += 1
        seen_ids.add(doc_id)
        corpus_lines.append(json.dumps({
            "_id": doc_id, "title": fn.qualname, "text": fn.code, "path": rel, "language": "python",
            "start_line": fn.start_line, "end_line": fn.end_line}, ensure_ascii=False))
        if fn.query is None:
            counts["distractors"] += 1
            continue
        counts["with a query sentence"] += 1
        if sentence_uses[_sentence_key(fn.query)] > 1:
            counts["ambiguous queries dropped"] += 1
            counts["distractors"] += 1
            continue
        query_id = f"q:{doc_id}"
        query_lines.append(json.dumps({"_id": query_id, "text": fn.query}, ensure_ascii=False))
        qrels[split].append(f"{query_id}\t{doc_id}\t1")
        counts[f"{split} queries"] += 1
    counts["documents"] = len(corpus_lines)
    counts["queries"] = len(query_lines)
    if counts["queries"] < min_queries:
        raise SystemExit(f"only {counts['queries']} queries from {root} (at least {min_queries} wanted; "
                         "see --min-queries)")

    order = ["files", "train files", "test files", "files skipped", "functions", "functions with a docstring",
             "docstring only or sharing a line", "duplicate code dropped", "documents", "with a query sentence",
             "ambiguous queries dropped", "distractors", "queries", "train queries", "test queries"]
    result = {key: counts[key] for key in order}
    manifest = {
        "builder": BUILDER, "format_version": FORMAT_VERSION, "source": str(root),
        "python": platform.python_version(), "implementation": sys.implementation.name,
        "seed": seed, "test_fraction": test_fraction, "min_query_words": MIN_QUERY_WORDS,
        "skipped_folders": sorted(SKIP_DIRS), "counts": result,
    }
    _write_folder(out, {
        "corpus.jsonl": "".join(line + "\n" for line in corpus_lines),
        "queries.jsonl": "".join(line + "\n" for line in query_lines),
        "qrels/train.tsv": "query-id\tcorpus-id\tscore\n" + "".join(r + "\n" for r in qrels["train"]),
        "qrels/test.tsv": "query-id\tcorpus-id\tscore\n" + "".join(r + "\n" for r in qrels["test"]),
        "manifest.json": json.dumps(manifest, indent=2) + "\n",
    })
    return result


def _write_folder(out: Path, files: dict[str, str]) -> None:
    """Write ``files`` into a fresh folder beside ``out``, then swap it in: readers see the old or the new set.
    An existing ``out`` is replaced only when this script wrote it (its manifest names the builder)."""
    if out.exists():
        try:
            ours = json.loads((out / "manifest.json").read_text("utf-8")).get("builder") == BUILDER
        except (OSError, ValueError, AttributeError):
            ours = False
        if not ours:
            raise SystemExit(f"--out {out}: exists and was not written by {BUILDER}; choose another folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    try:
        for name, text in files.items():
            path = temp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        if out.exists():
            out.rename(old)
        temp.rename(out)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--source", type=Path, default=None,
                        help="folder of .py files (default: the standard library, sysconfig's 'stdlib' path)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the file split (default: 0)")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="share of files in test (default: 0.2)")
    parser.add_argument("--min-queries", type=int, default=DEFAULT_MIN_QUERIES,
                        help=f"fail with fewer queries than this (default: {DEFAULT_MIN_QUERIES})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    root = (args.source or stdlib_root()).resolve()
    counts = build(root, args.out, seed=args.seed, test_fraction=args.test_fraction, min_queries=args.min_queries)
    print(f"{root} -> {args.out}")
    for key, value in counts.items():
        print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
