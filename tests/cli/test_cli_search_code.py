"""``retrievekit search`` on a code collection: hits as ``path:start-end``, the symbol and its highlighted lines;
the --language / --kind / --path shorthands; a code snippet as the query (argument, --query-file FILE or -), with
its size bounded; --field-weights at index and search time."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tree_sitter", reason="needs retrievekit[code]")

from retrievekit import Collection
from retrievekit.cli.commands import CLI_MAX_QUERY_CHARS
from retrievekit.cli.main import main
from retrievekit.code_index import CODE_FIELD_WEIGHTS

FILES = {
    "src/net/retry.py": (
        "import time\n"
        "\n"
        "\n"
        "class RetryPolicy:\n"
        '    """How often to retry a failed request."""\n'
        "\n"
        "    def backoff(self, attempt: int) -> float:\n"
        '        """Seconds to wait before retry number ``attempt``."""\n'
        "        return self.base_delay * 2 ** attempt\n"
        "\n"
        "\n"
        "def parse_timeout(text):\n"
        '    """Read a timeout such as 30s."""\n'
        "    return float(text.rstrip('s'))\n"
    ),
    "src/net/client.go": (
        "package net\n"
        "\n"
        "// RetryRequest sends a request again after a backoff delay.\n"
        "func RetryRequest(attempt int) int {\n"
        "\treturn attempt * 2\n"
        "}\n"
    ),
    "tests/test_retry.py": (
        "def test_backoff_doubles():\n"
        "    assert RetryPolicy().backoff(2) == 4 * RetryPolicy().base_delay\n"
    ),
}


@pytest.fixture(scope="module")
def code_col(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("code")
    for rel, text in FILES.items():
        (root / "repo" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "repo" / rel).write_text(text)
    col = root / "col"
    assert main(["index", "--code", str(root / "repo"), str(col), "--no-progress", "--no-git",
                 "--field-weights", "title=2,signature=2,text=1"]) == 0
    return col


def search(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["search", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def hit_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if re.match(r"^\s+\d+\. ", line)]


def test_code_hits_print_location_symbol_and_numbered_lines(code_col: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code, out, err = search(capsys, str(code_col), "seconds to wait before retry", "-k", "2")
    assert code == 0 and err == ""
    first = hit_lines(out)[0]
    assert first.startswith("  1. src/net/retry.py:7-9  RetryPolicy.backoff (method)  score ")
    # the body follows, numbered as in the file, query terms marked ([..] when not a terminal)
    assert "     7 │     def backoff(self, attempt: int) -> float:" in out
    assert '     8 │         """[Seconds] to [wait] [before] [retry] number ``attempt``."""' in out
    info = Collection(code_col).info()
    assert info["analyzer"]["name"] == "code" and set(info["bm25_fields"]) == {"title", "signature", "text"}


def test_language_kind_and_path_shorthands(code_col: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def found(*flags: str) -> list[str]:
        code, out, err = search(capsys, str(code_col), "retry backoff", "--json", *flags)
        assert code == 0, err
        return [h["location"] for h in json.loads(out)["results"][0]["hits"]]

    everything = found()
    assert {"src/net/retry.py:7-9", "src/net/client.go:3-6", "tests/test_retry.py:1-2"} <= set(everything)
    assert found("--language", "go") == ["src/net/client.go:3-6"]
    assert set(found("--language", "go", "--language", "python")) == set(everything)
    assert found("--kind", "class") == ["src/net/retry.py:4-5"]  # the class's own lines; methods are chunks
    assert "tests/test_retry.py:1-2" not in found("--path", "src/**")
    assert found("--path", "tests", "--kind", "function") == ["tests/test_retry.py:1-2"]
    assert set(found("--path", "*.go", "--path", "tests/*.py")) == {"src/net/client.go:3-6", "tests/test_retry.py:1-2"}
    assert found("--path", "lib/**") == []

    code, _, err = search(capsys, str(code_col), "x", "--language", "go", "--filter", '{"language": "go"}')
    assert code == 2 and "--filter and --language both filter 'language'" in err
    code, _, err = search(capsys, str(code_col), "x", "--path", "/")
    assert code == 2 and "--path" in err and "non-empty path pattern" in err


def test_a_snippet_as_the_query(code_col: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    snippet = "    def backoff(self, attempt: int) -> float:\n        return self.base_delay * 2 ** attempt\n"
    code, out, _ = search(capsys, str(code_col), snippet, "-k", "1")
    assert code == 0 and hit_lines(out)[0].startswith("  1. src/net/retry.py:7-9")
    assert "» def backoff(self, attempt: int) -> float: return self.base_delay * 2 ** attempt (2 lines, " in out

    file = tmp_path / "snippet.py"
    file.write_bytes(b"\xef\xbb\xbf" + snippet.encode())  # a BOM is dropped
    code, out, _ = search(capsys, str(code_col), "--query-file", str(file), "-k", "1", "--json")
    result = json.loads(out)["results"][0]
    assert code == 0 and result["query"] == snippet
    assert result["hits"][0]["id"] == "src/net/retry.py#RetryPolicy.backoff"

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"func RetryRequest(attempt int) int {")))
    code, out, _ = search(capsys, str(code_col), "--query-file", "-", "-k", "1", "--json")
    assert code == 0 and json.loads(out)["results"][0]["hits"][0]["location"] == "src/net/client.go:3-6"

    code, out, _ = search(capsys, str(code_col), "retry", "--query-file", str(file), "-k", "1")
    assert code == 0 and out.count("» ") == 2 and "2 queries in" in out


def test_query_errors_are_clear(code_col: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.py"
    big.write_text("x = 1\n" * (CLI_MAX_QUERY_CHARS // 6 + 1))
    empty = tmp_path / "empty.py"
    empty.write_text("\n  \n")
    latin = tmp_path / "latin.py"
    latin.write_bytes(b"caf\xe9 = 1\n")
    for args, message in [
        (["--query-file", str(big)], f"big.py: the query is over {CLI_MAX_QUERY_CHARS:,} characters (the limit)"),
        (["--query-file", str(empty)], "empty.py: the file is empty"),
        (["--query-file", str(latin)], "latin.py: not UTF-8 text (invalid byte at offset 3)"),
        (["--query-file", str(tmp_path / "missing.py")], "missing.py: cannot read it (No such file or directory)"),
        ([], "give a query: QUERY text, or --query-file FILE"),
        (["x" * (CLI_MAX_QUERY_CHARS + 1)], f"query is {CLI_MAX_QUERY_CHARS + 1} characters; the limit is "
                                             f"{CLI_MAX_QUERY_CHARS}"),
        (["x", "--field-weights", "title=2,body"], "--field-weights: expected FIELD=WEIGHT"),
        (["x", "--field-weights", "body=1"], "'body', which this collection does not index on its own"),
        (["x", "--field-weights", "title=1", "--mode", "dense"], "applies to bm25 and hybrid"),
    ]:
        code, _, err = search(capsys, str(code_col), *args)
        assert code == 2 and message in err and "Traceback" not in err, (args, err)


def test_field_weights_per_search(code_col: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def scores(*flags: str) -> list[float]:
        code, out, _ = search(capsys, str(code_col), "retry", "--json", *flags)
        assert code == 0
        return [h["score"] for h in json.loads(out)["results"][0]["hits"]]

    default, joined, title = scores(), scores("--field-weights", "none"), scores("--field-weights", "title=1")
    assert default != joined and default != title and len(title) <= len(default)


def test_plain_documents_keep_the_plain_listing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    col = Collection.create(tmp_path / "col")
    col.add([{"id": "d1", "title": "Retry", "text": "How to retry requests.", "metadata": {"path": "a.md"}}])
    code, out, _ = search(capsys, str(col.path), "retry")
    assert code == 0 and "  1. d1  (score " in out and "│" not in out


def test_index_code_defaults_and_field_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "a.py").write_text("def retry():\n    pass\n")
    args = ["index", "--code", str(tmp_path / "repo"), "--no-progress", "--no-git"]
    assert main([*args, str(tmp_path / "default")]) == 0
    assert Collection(tmp_path / "default").settings.bm25.field_weights == CODE_FIELD_WEIGHTS
    assert main([*args, str(tmp_path / "joined"), "--field-weights", "none"]) == 0
    assert Collection(tmp_path / "joined").settings.bm25.field_weights is None
    capsys.readouterr()
    assert main([*args, str(tmp_path / "joined"), "--field-weights", "title=2,text=1"]) == 2
    assert "--field-weights is set when a collection is created" in capsys.readouterr().err
    assert main([*args, str(tmp_path / "default")]) == 0  # re-indexing keeps the collection's weights


def test_index_help_names_the_code_analyzer() -> None:
    out = subprocess.run([sys.executable, "-m", "retrievekit", "index", "--help"], capture_output=True, text=True,
                         timeout=120).stdout
    text = " ".join(out.split())
    assert "with --code: code = identifiers split on" in text and "with --code: title=1,docstring=1,text=1" in text
