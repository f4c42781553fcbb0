"""benchmarks/code_search_data.py: the first-sentence and docstring-removal rules, and a build on a tiny folder."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
from paths import REPO


def load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("code_search_data", REPO / "benchmarks" / "code_search_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


builder = load_builder()


def test_first_sentence_and_query_rules() -> None:
    first = builder.first_sentence
    assert first("Return the value, e.g. the first one. Then more.") == "Return the value, e.g. the first one."
    assert first("Join with os.path.join and\n    round to 3.14 digits\n\nSecond paragraph.") == (
        "Join with os.path.join and round to 3.14 digits")
    assert first("Is it done? Yes.") == "Is it done?"
    assert builder.is_query("Open the file.") and not builder.is_query("Return self.")
    assert not builder.is_query(">>> import io >>> s = 'abc'")


SOURCE = '''\
class Box:
    @property
    @cache(size=2)
    def größe(self):
        """Größe of the box, in ünits."""  # a comment goes with it
        # the body starts here
        return self._size

    def stub(self):
        """Only a docstring is here."""
        ...

def one_line(): "Docstring sharing a line."; return 1

def multi(x):
    """Double the value.

    More about it.
    """
    text = """
not indented"""
    return 2 * x
'''


def test_docstring_removal_keeps_every_other_line_exactly() -> None:
    found = builder.extract_functions(SOURCE)
    assert found.skipped == {"docstring only or sharing a line": 2}  # stub and one_line
    size, multi = found.functions
    assert (size.qualname, size.start_line, size.end_line) == ("Box.größe", 2, 7)
    assert size.query == "Größe of the box, in ünits."
    assert size.code == ("@property\n@cache(size=2)\ndef größe(self):\n    # the body starts here\n"
                         "    return self._size")
    # a line less indented than the def (inside a string) keeps every line exactly as written
    assert multi.query == "Double the value."
    assert multi.code == 'def multi(x):\n    text = """\nnot indented"""\n    return 2 * x'
    for fn in (size, multi):
        tree = ast.parse(textwrap.dedent(fn.code))
        assert ast.get_docstring(tree.body[0]) is None  # type: ignore[arg-type]


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text), "utf-8")


def test_build_splits_by_file_dedupes_and_is_deterministic(tmp_path: Path) -> None:
    source = tmp_path / "src"
    files = {f"pkg/mod{i}.py": f'''
        def load_{i}(path):
            """Load the table number {i} from a file."""
            return open(path).read() + "{i}"

        def helper_{i}(x):
            return x + {i}

        def first_{i}(items):
            """Return the first item of a list."""
            return items[{i}]
        ''' for i in range(8)}
    files["pkg/tests/test_x.py"] = 'def test_x():\n    """Test function in a skipped folder."""\n    pass\n'
    files["pkg/zcopy.py"] = 'def helper_0(x):\n    return x + 0\n'
    write(source, files)
    out = tmp_path / "out"
    assert builder.main(["--source", str(source), "--out", str(out), "--min-queries", "1"]) == 0

    corpus = [json.loads(line) for line in (out / "corpus.jsonl").read_text("utf-8").splitlines()]
    queries = {q["_id"]: q["text"] for q in map(json.loads, (out / "queries.jsonl").read_text("utf-8").splitlines())}
    # 8 loads, 8 helpers, 8 firsts; the test folder skipped, the copied helper dropped as a duplicate
    assert len(corpus) == 24 and not any("tests" in d["path"] for d in corpus)
    assert corpus[0] == {"_id": "pkg/mod0.py:load_0", "title": "load_0",
                         "text": 'def load_0(path):\n    return open(path).read() + "0"', "path": "pkg/mod0.py",
                         "language": "python", "start_line": 2, "end_line": 4}
    # "Return the first item of a list." is shared by eight functions: ambiguous, no query
    assert sorted(queries.values()) == [f"Load the table number {i} from a file." for i in range(8)]
    split_of = {}
    for split in ("train", "test"):
        rows = (out / "qrels" / f"{split}.tsv").read_text("utf-8").splitlines()
        assert rows[0] == "query-id\tcorpus-id\tscore"
        for row in rows[1:]:
            qid, doc_id, score = row.split("\t")
            assert qid == f"q:{doc_id}" and score == "1" and qid in queries
            split_of[doc_id.split(":")[0]] = split
    assert len(split_of) == 8 and set(split_of.values()) == {"train", "test"}
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    assert manifest["counts"]["queries"] == 8 and manifest["counts"]["ambiguous queries dropped"] == 8
    assert manifest["counts"]["duplicate code dropped"] == 1 and manifest["counts"]["distractors"] == 16

    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    builder.main(["--source", str(source), "--out", str(out), "--min-queries", "1"])
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

    with pytest.raises(SystemExit, match="only 8 queries"):
        builder.main(["--source", str(source), "--out", str(out), "--min-queries", "9"])
    with pytest.raises(SystemExit, match="not written by"):
        builder.main(["--source", str(source), "--out", str(source), "--min-queries", "1"])
