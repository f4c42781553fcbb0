"""Indexing a code repository into a collection, incrementally: only changed files are parsed and written, exactly
the changed symbols are added, updated or deleted, renames are cheap."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("tree_sitter", reason="needs retrievekit[code]")

from toy_encoder import ToyEncoder

from retrievekit.code_index import CodeIngestReport, ingest_code
from retrievekit.collection import Collection
from retrievekit.core.errors import CollectionError, CollectionLockedError, InputFormatError

RETRY = '''"""Retries."""
import time


def backoff(attempt):
    """Delay before the next attempt."""
    return 0.5 * 2 ** attempt


class RetryPolicy:
    """How often to retry."""

    def should_retry(self, attempt):
        return attempt < 5

    def sleep(self, attempt):
        time.sleep(backoff(attempt))
'''

SERVER = '''package server

// Server serves.
type Server struct {
	addr string
}

// Start starts serving.
func (s *Server) Start() error {
	return nil
}
'''

CACHE = '''// An LRU cache.
export class Cache {
  constructor(size) {
    this.size = size;
  }

  get(key) {
    return this.map.get(key);
  }
}
'''


def make_repo(root: Path) -> Path:
    files = {"pkg/retry.py": RETRY, "server/server.go": SERVER, "web/cache.js": CACHE, "README.md": "# Demo\n"}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def ids(col: Collection) -> set[str]:
    return {d.id for d in col.iter_documents()}


def counts(report: CodeIngestReport) -> dict[str, int]:
    return {k: v for k, v in report.to_json().items() if k.startswith(("files_", "symbols")) and v}


def test_second_run_rewrites_only_what_changed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    col = Collection.create(tmp_path / "col", analyzer="identifier")
    first = col.ingest_code(repo, use_git=False)
    assert counts(first) == {"files_seen": 4, "files_added": 4, "symbols": 12, "symbols_added": 12}
    assert len(col) == 12 and first.documents == 12
    assert {"pkg/retry.py#backoff", "pkg/retry.py#RetryPolicy.should_retry", "server/server.go#Server.Start",
            "web/cache.js#Cache.get", "README.md#<lines>", "pkg/retry.py#<module>"} <= ids(col)
    hits = col.hit_documents(col.search("should retry", k=1))
    assert hits[0][0].id == "pkg/retry.py#RetryPolicy.should_retry"

    generation = col.snapshot().generation
    again = col.ingest_code(repo, use_git=False)
    assert counts(again) == {"files_seen": 4, "files_unchanged": 4, "symbols": 12}
    assert col.snapshot().generation == generation  # nothing to do, no commit
    assert col.snapshot().live_docs == 12

    # one function body edited in place: exactly that symbol updated, its file's others rewritten unchanged
    retry = repo / "pkg/retry.py"
    retry.write_text(RETRY.replace("attempt < 5", "attempt < 7"))
    edit = col.ingest_code(repo, use_git=False)
    assert counts(edit) == {"files_seen": 4, "files_updated": 1, "files_unchanged": 3, "symbols": 12,
                            "symbols_updated": 1, "symbols_unchanged": 4}
    assert "attempt < 7" in col.get("pkg/retry.py#RetryPolicy.should_retry").text  # type: ignore[union-attr]

    # a function added at the end and one removed: one added, one deleted
    retry.write_text(RETRY.replace("attempt < 5", "attempt < 7").replace(
        "    def sleep(self, attempt):\n        time.sleep(backoff(attempt))\n",
        "    def reset(self):\n        return 0\n"))
    change = col.ingest_code(repo, use_git=False)
    assert counts(change) == {"files_seen": 4, "files_updated": 1, "files_unchanged": 3, "symbols": 12,
                              "symbols_added": 1, "symbols_deleted": 1, "symbols_unchanged": 4}
    assert "pkg/retry.py#RetryPolicy.reset" in ids(col) and "pkg/retry.py#RetryPolicy.sleep" not in ids(col)

    # a file deleted: all its chunks go
    (repo / "web/cache.js").unlink()
    deleted = col.ingest_code(repo, use_git=False)
    assert counts(deleted) == {"files_seen": 3, "files_unchanged": 3, "files_deleted": 1, "symbols": 9,
                               "symbols_deleted": 3}
    assert not any(i.startswith("web/") for i in ids(col)) and len(col) == 9


def test_lines_shifted_by_an_edit_above_update_the_symbols_below(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    col = Collection.create(tmp_path / "col", analyzer="identifier")
    col.ingest_code(repo, use_git=False)
    (repo / "pkg/retry.py").write_text(RETRY.replace("import time\n", "import time\nimport random\n"))
    report = col.ingest_code(repo, use_git=False)
    # the module chunk changed; the four symbols below kept their ids and text but moved one line down
    assert (report.symbols_added, report.symbols_updated, report.symbols_deleted) == (0, 5, 0)
    assert col.get("pkg/retry.py#backoff").metadata["start_line"] == 6  # type: ignore[union-attr]


def test_a_rename_reuses_the_documents_and_their_vectors(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    col = Collection.create(tmp_path / "col", analyzer="identifier", dense=ToyEncoder("code-test"))
    col.ingest_code(repo, use_git=False)
    before = {d.id: d for d in col.iter_documents()}
    encoded = ToyEncoder.calls
    (repo / "pkg/retry.py").rename(repo / "pkg/retrying.py")
    report = col.ingest_code(repo, use_git=False)
    assert counts(report) == {"files_seen": 4, "files_renamed": 1, "files_unchanged": 3, "symbols": 12,
                              "symbols_moved": 5}
    assert ToyEncoder.calls == encoded  # every vector came from the embedding cache
    moved = col.get("pkg/retrying.py#RetryPolicy.sleep")
    old = before["pkg/retry.py#RetryPolicy.sleep"]
    assert moved is not None and moved.text == old.text and moved.metadata == {**old.metadata,
                                                                              "path": "pkg/retrying.py"}
    assert not any(i.startswith("pkg/retry.py#") for i in ids(col)) and len(col) == 12
    hits = col.hit_documents(col.search("sleep backoff attempt", k=1, mode="dense"))
    assert hits[0][0].id.startswith("pkg/retrying.py#")
    # a rename that changes the language is parsed again
    (repo / "README.md").rename(repo / "README.py")
    report = col.ingest_code(repo, use_git=False)
    assert (report.files_renamed, report.files_added, report.files_deleted) == (0, 1, 1)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_git_repository_honours_gitignore_and_skips_with_reasons(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / ".gitignore").write_text("secrets/\n*.bak\n")
    (repo / "secrets").mkdir()
    (repo / "secrets/key.py").write_text("KEY = 'hunter2'\n")
    (repo / "old.py.bak").write_text("def old(): pass\n")
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x00")
    (repo / "data.json").write_text('{"rows": [' + ",".join(["1"] * 3000) + "]}\n")
    (repo / "node_modules/dep").mkdir(parents=True)
    (repo / "node_modules/dep/index.js").write_text("module.exports = 1;\n")
    (repo / "loop").symlink_to(repo)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    col = Collection.create(tmp_path / "col", analyzer="identifier")
    report = ingest_code(col, repo, max_bytes=5000)
    assert report.skipped == {"binary": 1, "too-large": 1, "vendored": 1, "symlink-loop": 1}
    assert report.skipped_examples == {"binary": ["logo.png"], "too-large": ["data.json"],
                                       "vendored": ["node_modules/"], "symlink-loop": ["loop"]}
    paths = {i.split("#")[0] for i in ids(col)}
    assert paths == {".gitignore", "README.md", "pkg/retry.py", "server/server.go", "web/cache.js"}


def test_syntax_errors_are_indexed_by_windows_with_a_warning(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "broken.py").write_text("def ok():\n    return 1\n\ndef broken(:\n    return unique_marker_name\n")
    col = Collection.create(tmp_path / "col", analyzer="identifier")
    report = col.ingest_code(repo, use_git=False)
    assert report.warnings == ["broken.py:4: syntax error; the definitions that hold an error (or lie in one) are "
                               "indexed as line windows"]
    hits = col.hit_documents(col.search("unique_marker_name", k=1))
    assert hits[0][0].metadata["kind"] == "module" and "def broken(:" in hits[0][0].text


def test_bad_input_and_a_busy_collection_are_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    col = Collection.create(tmp_path / "col", analyzer="identifier")
    with pytest.raises(InputFormatError, match="code indexing reads a folder or repository, but this is a file"):
        col.ingest_code(repo / "README.md")
    with pytest.raises(InputFormatError, match="no such file or folder"):
        col.ingest_code(tmp_path / "missing")
    passages = Collection.create(tmp_path / "passages", passages="sentences")
    with pytest.raises(CollectionError, match="is a passage collection"):
        passages.ingest_code(repo)
    with col.writer(), pytest.raises(CollectionLockedError):  # another writer holds the lock: refused at once
        col.ingest_code(repo, use_git=False)
    assert len(col) == 0


def test_repositories_under_prefixes_share_a_collection(tmp_path: Path) -> None:
    one = make_repo(tmp_path / "one")
    two = make_repo(tmp_path / "two")
    col = Collection.create(tmp_path / "col", analyzer="identifier")
    col.ingest_code(one, prefix="one", use_git=False)
    col.ingest_code(two, prefix="two/", use_git=False)
    assert len(col) == 24
    (two / "web/cache.js").unlink()
    report = col.ingest_code(two, prefix="two", use_git=False)
    assert report.files_deleted == 1 and len(col) == 21
    assert "one/web/cache.js#Cache.get" in ids(col)
    assert col.get("one/pkg/retry.py#backoff").metadata["path"] == "one/pkg/retry.py"  # type: ignore[union-attr]


def test_file_names_that_json_escapes_are_tracked_too(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / 'we"ird\\name.py').write_text("def f():\n    return 1\n")
    col = Collection.create(tmp_path / "col", analyzer="identifier")
    assert col.ingest_code(repo, use_git=False).files_added == 1
    again = col.ingest_code(repo, use_git=False)
    assert (again.files_unchanged, again.files_added, again.files_deleted) == (1, 0, 0)
    assert ids(col) == {'we"ird\\name.py#f'}
