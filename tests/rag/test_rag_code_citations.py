"""Asking a code collection: citations and contexts carry ``path:start-end`` locations that resolve to the file's
actual lines (checked by reading the files), through the pipeline, compression, the CLI and any collection whose
documents carry path/start_line/end_line metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from http_helpers import ScriptedGenerator

from retrievekit import Collection
from retrievekit.cli.main import main
from retrievekit.core.document import Document
from retrievekit.rag.locations import document_lines, locate
from retrievekit.rag.pipeline import RAG
from retrievekit.rag.types import Passage, SourceLocation

RETRY = '''"""Retry helpers."""
import time


def backoff(attempt):
    """Delay in seconds before the next attempt: exponential backoff."""
    return 0.5 * 2 ** attempt


class RetryPolicy:
    """How often to retry a failed request."""

    def __init__(self, limit=5):
        self.limit = limit

    def should_retry(self, attempt):
        # give up once the attempt limit is reached
        return attempt < self.limit

    def sleep(self, attempt):
        time.sleep(backoff(attempt))
'''

SERVER = '''package server

import "net/http"

// Serve listens on the address and answers health checks.
func Serve(addr string) error {
\tmux := http.NewServeMux()
\tmux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
\t\tw.WriteHeader(http.StatusOK)
\t})
\treturn http.ListenAndServe(addr, mux)
}
'''


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "retry.py").write_text(RETRY)
    (root / "server.go").write_text(SERVER)
    return root


def code_collection(repo: Path, path: Path, **options: object) -> Collection:
    pytest.importorskip("tree_sitter", reason="needs retrievekit[code]")
    col = Collection.create(path, analyzer="code")  # the code analyzer preset
    col.ingest_code(repo, use_git=False, **options)
    return col


def stored(col: Collection, doc_id: str) -> Document:
    doc = col.get(doc_id)
    assert doc is not None, doc_id
    return doc


def file_lines(repo: Path, location: SourceLocation | dict[str, object]) -> str:
    """The file's lines start..end (inclusive), read from disk."""
    loc = location if isinstance(location, dict) else location.to_json()
    lines = (repo / str(loc["path"])).read_text().splitlines()
    return "\n".join(lines[int(str(loc["start_line"])) - 1:int(str(loc["end_line"]))])


def test_citations_resolve_to_the_files_lines(repo: Path, tmp_path: Path) -> None:
    col = code_collection(repo, tmp_path / "col")
    gen = ScriptedGenerator("It stops at the attempt limit [1]; the delay grows exponentially [2].")
    answer = RAG(col, generator=gen, selector="top:3", mode="bm25").ask("when does the retry policy give up")
    assert [c.number for c in answer.citations] == [1, 2]
    for cited in answer.citations:
        loc = cited.location
        assert loc is not None and loc.line_spans is None
        doc = stored(col, cited.doc_id)
        assert (loc.path, loc.start_line, loc.end_line) == (doc.metadata["path"], doc.metadata["start_line"],
                                                            doc.metadata["end_line"])
        assert file_lines(repo, loc) == doc.text  # the cited lines are exactly the symbol's text
    first = answer.citations[0].location
    assert first is not None and str(first) == "pkg/retry.py:16-18"  # should_retry
    assert "give up once" in file_lines(repo, first)
    # The prompt heads each source with its location, so a model can quote it.
    assert "pkg/retry.py:16-18 RetryPolicy.should_retry" in gen.prompts[0][1]["content"]
    out = answer.to_json()
    assert out["citations"][0]["location"] == {"path": "pkg/retry.py", "start_line": 16, "end_line": 18,
                                               "line_spans": None, "page": None, "page_end": None,
                                               "ref": "pkg/retry.py:16-18"}
    assert [c["location"]["ref"] for c in out["contexts"]] == [str(p.location) for p in answer.contexts]


def test_split_symbols_cite_their_own_part(repo: Path, tmp_path: Path) -> None:
    col = code_collection(repo, tmp_path / "col", max_lines=4)  # Serve splits into parts with a repeated header
    answer = col.ask("WriteHeader StatusOK", generator=None, selector="top:1", mode="bm25")
    top = answer.contexts[0]
    header = top.metadata["header_chars"]
    assert top.id == "server.go#Serve[2]" and header > 0 and top.location is not None
    assert str(top.location) == "server.go:8-10"
    assert file_lines(repo, top.location) == top.text[header:]  # the header is not part of the cited lines


def test_compressed_passages_cite_the_lines_they_kept(repo: Path, tmp_path: Path) -> None:
    col = code_collection(repo, tmp_path / "col")
    answer = col.ask("give up once the attempt limit is reached", generator=None, selector="top:3", mode="bm25",
                     compress="lexical:1")
    assert answer.contexts
    for p in answer.contexts:
        loc = p.location
        assert loc is not None and loc.line_spans is not None and p.spans is not None
        doc = stored(col, p.doc_id)
        assert doc.metadata["start_line"] <= loc.start_line <= loc.end_line <= doc.metadata["end_line"]
        for (a, b), (s, e) in zip(loc.line_spans, p.spans):
            piece = doc.text[s:e].strip()
            assert piece in file_lines(repo, {"path": loc.path, "start_line": a, "end_line": b})
    top = answer.contexts[0]
    assert top.id == "pkg/retry.py#RetryPolicy.should_retry" and str(top.location) == "pkg/retry.py:17-17"


def test_any_collection_with_location_metadata(tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("title\n\nalpha line\nbeta line about lemons\ngamma line\n")
    col = Collection.create(tmp_path / "col")
    col.add([{"id": "n1", "text": "beta line about lemons\ngamma line",
              "metadata": {"path": "notes.txt", "start_line": 4, "end_line": 5}},
             {"id": "bad", "text": "lemons without a usable location",
              "metadata": {"path": "notes.txt", "start_line": "4", "end_line": 5}},
             {"id": "plain", "text": "lemons and nothing else"}])
    gen = ScriptedGenerator("Lemons [1][2][3].")
    answer = RAG(col, generator=gen, selector="top:3", mode="bm25").ask("lemons")
    by_id = {c.doc_id: c.location for c in answer.citations}
    assert set(by_id) == {"n1", "bad", "plain"}
    assert by_id["bad"] is None and by_id["plain"] is None  # no (valid) location: no location, no error
    n1 = by_id["n1"]
    assert n1 is not None and str(n1) == "notes.txt:4-5"
    assert file_lines(tmp_path, n1) == "beta line about lemons\ngamma line"


def test_locate_counts_lines_and_stays_in_range() -> None:
    text = "def f():\n    a = 1\n\n    return a\n"
    meta = {"path": "m.py", "start_line": 10, "end_line": 13}
    whole = Passage("d", "d", text, 1.0, 0, len(text), metadata=meta)
    assert locate(whole, text) == SourceLocation("m.py", 10, 13)
    ret = text.index("return")
    pieces = Passage("d", "d", "a = 1 return a", 1.0, spans=[(13, 18), (ret, ret + 8)], metadata=meta)
    assert locate(pieces, text) == SourceLocation("m.py", 11, 13, ((11, 11), (13, 13)))
    # metadata that claims fewer lines than the text has never yields lines past end_line
    short = Passage("d", "d", text, 1.0, 0, len(text), metadata={**meta, "end_line": 11})
    assert locate(short, text) == SourceLocation("m.py", 10, 11)
    for bad in ({"path": "", "start_line": 1, "end_line": 2}, {"path": "x", "start_line": 3, "end_line": 2},
                {"path": "x", "start_line": True, "end_line": 2}, {"path": "x", "start_line": 0, "end_line": 2},
                {"start_line": 1, "end_line": 2}):
        assert document_lines(bad) is None


def test_passage_collections_cite_the_documents_range(tmp_path: Path) -> None:
    col = Collection.create(tmp_path / "p", passages="sentences:8")
    col.add([{"id": "doc", "text": "First sentence about apples. Second sentence about pears. Third about plums.",
              "metadata": {"path": "fruit.md", "start_line": 3, "end_line": 3}}])
    answer = col.ask("pears", generator=None, selector="top:1", mode="bm25")
    top = answer.contexts[0]
    assert top.id != top.doc_id and top.location == SourceLocation("fruit.md", 3, 3)


def test_cli_ask_prints_locations(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    col = code_collection(repo, tmp_path / "col")
    assert main(["ask", str(col.path), "when does the retry policy give up", "--generator", "none",
                 "--selector", "top:2"]) == 0
    out = capsys.readouterr().out
    assert "[1] pkg/retry.py:16-18 RetryPolicy.should_retry" in out
    assert main(["ask", str(col.path), "when does the retry policy give up", "--generator", "none", "--json",
                 "--selector", "top:2"]) == 0
    contexts = json.loads(capsys.readouterr().out)["contexts"]
    assert contexts[0]["location"]["ref"] == "pkg/retry.py:16-18"
    assert file_lines(repo, contexts[0]["location"]) == contexts[0]["text"]
