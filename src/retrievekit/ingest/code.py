"""Code repositories as documents: which files to read, their text, and their symbols as ``Document``s.

**Which files.** Inside a git work tree, the files ``git ls-files --cached --others --exclude-standard`` lists
(tracked files plus untracked ones that ``.gitignore``, ``.git/info/exclude`` and the global excludes do not
ignore: git's own rules). Outside one, a walk of the folder that honours every ``.gitignore`` in it (nested ones
too, relative to their folder, later patterns and deeper files winning, as git does) through ``pathspec``'s
``GitIgnoreSpec``. Either way a file is then skipped, with its reason counted in the ``WalkSummary``, when it is:

* ``vendored``: under a dependency, build-output or cache folder (``VENDORED_DIRS``: node_modules, vendor,
  third_party, site-packages, dist, build, __pycache__, ...) or a virtual environment (a folder holding
  pyvenv.cfg, whatever its name); counted once per such folder;
* ``generated``: a lockfile, ``*_pb2.py`` / ``*.pb.go`` / ``*.min.js`` / source maps, a file with a comment among
  its first ten lines that says "@generated" or "DO NOT EDIT", or minified JavaScript/CSS (lines averaging over
  300 characters);
* ``too-large``: over ``max_bytes`` (default 1 MB); ``binary``: a NUL byte in its first 8 KB, or undecodable;
* ``symlink`` (a link to a file or folder inside the root, read at its real path instead), ``symlink-outside-root``,
  ``symlink-loop``, ``broken-symlink``; ``not-a-file`` (sockets, submodules), ``unreadable``,
  ``unsupported-name`` (a file name with a line break or not valid UTF-8, which cannot be an id), ``empty``.

Symlinks are never followed, so neither a loop nor a link out of the root can make the walk run away.
Text: UTF-8 (a BOM removed), UTF-16/32 with a BOM, else what ``charset-normalizer`` detects (when installed), else
Latin-1; anything but UTF-8 is reported in ``WalkSummary.warnings``. One bad file never stops the walk.

**Documents.** Each chunk of ``chunking.code.chunk_code`` becomes one document:

* ``id`` = ``PATH#KEY``: the file's path relative to the root (POSIX) and the chunk's key, its qualified name
  (``src/retry.py#Retry.backoff``); a second definition of the same name in the file gets ``~2``, part k >= 2 of a
  split symbol ``[k]``, windows are ``<module>``, ``Class.<block>`` or ``<lines>`` numbered the same way. A
  symbol's id therefore survives edits elsewhere in its file and in other files, and line shifts.
* ``title`` = the qualified name for symbols, "" for windows; ``text`` = the chunk's text (for parts >= 2 the
  symbol's header, then the part). The path is in neither, so a renamed file's texts are unchanged and their dense
  vectors come back from the embedding cache (which is keyed by text).
* ``metadata``: ``path``, ``language``, ``kind``, ``symbol``, ``qualname``, ``signature``, ``docstring``,
  ``decorators`` (list), ``start_line``/``end_line`` (1-based, inclusive), ``start``/``end`` (character offsets in
  the decoded file: ``text[start:end]`` is the span; ``doc.text[header_chars:]`` is exactly that span),
  ``start_byte``/``end_byte`` (the same span in the UTF-8 encoding of the decoded text: the file's own bytes for a
  UTF-8 file without BOM), ``part``/``parts``, ``header_chars``, ``file_hash`` (BLAKE2b-128 of the file's bytes)
  and ``chunker`` (chunker version and settings; incremental indexing re-chunks a file when it changes).
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import logging
import os
import re
import stat
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrievekit.chunking.code import CHUNKER_VERSION, DEFAULT_MAX_CHARS, DEFAULT_MAX_LINES, CodeChunks, chunk_code
from retrievekit.core.document import Document
from retrievekit.core.errors import InputFormatError, MissingExtraError
from retrievekit.ingest.base import check_exists

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 1_000_000
GIT_TIMEOUT = 120.0  # seconds for `git ls-files`; a repository of a million files lists in a few seconds

VENDORED_DIRS = frozenset({
    "node_modules", "bower_components", "jspm_packages", "vendor", "third_party", "third-party", "thirdparty",
    "external", "site-packages", "dist-packages", "dist", "build", "__pycache__", ".eggs",
    ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis", ".gradle", ".idea", ".vscode",
    ".next", ".nuxt", ".svelte-kit", ".parcel-cache", ".terraform", "Pods", "Carthage", ".bundle",
})
_VCS_DIRS = frozenset({".git", ".hg", ".svn"})  # never read, not counted
# A Python virtual environment is recognised by its pyvenv.cfg, not by a name such as "venv": the standard
# library itself has a package called venv, and a project may have one too.
VIRTUALENV_MARKER = "pyvenv.cfg"
GENERATED_NAMES = frozenset({
    "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb", "cargo.lock",
    "poetry.lock", "pipfile.lock", "uv.lock", "pdm.lock", "gemfile.lock", "composer.lock", "go.sum", "mix.lock",
    "podfile.lock", "packages.lock.json", "flake.lock",
})
GENERATED_SUFFIXES = (
    "_pb2.py", "_pb2.pyi", "_pb2_grpc.py", ".pb.go", ".pb.cc", ".pb.h", ".pb.swift", ".min.js", ".min.mjs",
    ".min.css", ".bundle.js", ".js.map", ".css.map", ".designer.cs",
)
GENERATED_MARKERS = (b"@generated", b"DO NOT EDIT")
# a comment line among the first ten that carries a marker (a docstring that mentions one does not count)
_MARKER_LINE = re.compile(rb"\s*(?://|#|/\*|\*|<!--|--|;).*(?:" + b"|".join(map(re.escape, GENERATED_MARKERS)) + rb")")
_MINIFIABLE = (".js", ".mjs", ".cjs", ".css")
_SNIFF_BYTES = 8192
_MAX_EXAMPLES = 5


@dataclass
class WalkSummary:
    """What a walk saw: files read, files skipped by reason (with a few example paths each), warnings."""

    files: int = 0  # files yielded
    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def skip(self, reason: str, path: str) -> None:
        self.skipped[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < _MAX_EXAMPLES:
            examples.append(path)
        logger.debug("skipping %s (%s)", path, reason)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        logger.warning("%s", message)


@dataclass(frozen=True)
class CodeFile:
    """One readable source file: ``path`` relative to the root (POSIX), its decoded text and content hash."""

    path: str
    full_path: Path
    text: str
    file_hash: str
    encoding: str
    size: int


def file_hash(data: bytes) -> str:
    """The content hash stored with every chunk of a file (BLAKE2b, 128 bits, hex)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def check_root(root: str | Path) -> Path:
    """``root`` as a Path, or a clear error when it does not exist or is not a folder."""
    path = Path(root)
    check_exists(path)
    if not path.is_dir():
        raise InputFormatError("code indexing reads a folder or repository, but this is a file", path=path)
    return path


def walk_code(
    root: str | Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    use_git: bool | None = None,
    vendored: Iterable[str] = VENDORED_DIRS,
    summary: WalkSummary | None = None,
) -> Iterator[CodeFile]:
    """The readable source files under ``root``, in path order (see the module docstring for the rules).
    ``use_git``: None = git's file list inside a git work tree, else the .gitignore-aware walk; True insists on
    git; False always walks. Skips and warnings go to ``summary``. Raises for a missing root, a root that is not
    a folder, and (inside a git work tree) a missing or failing git."""
    top = check_root(root)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise InputFormatError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    summary = summary if summary is not None else WalkSummary()
    skip_dirs = frozenset(vendored)
    git = _git_work_tree(top) if use_git is None else use_git
    return _walk(top, git, max_bytes, skip_dirs, summary)


def _walk(top: Path, git: bool, max_bytes: int, skip_dirs: frozenset[str], summary: WalkSummary) -> Iterator[CodeFile]:
    real_root = os.path.realpath(top)
    entries = _git_files(top) if git else _ignore_walk(top, skip_dirs)
    counted: set[str] = set()
    virtualenvs: dict[str, bool] = {}

    def virtualenv(parts: list[str], i: int) -> bool:
        folder = "/".join(parts[: i + 1])
        if folder not in virtualenvs:
            virtualenvs[folder] = (top / folder / VIRTUALENV_MARKER).is_file()
        return virtualenvs[folder]

    for rel in entries:
        parts = rel.split("/")
        folder = next((i for i, part in enumerate(parts[:-1]) if part in skip_dirs or part in _VCS_DIRS
                       or part.endswith(".egg-info") or virtualenv(parts, i)), None)
        if folder is not None:
            if parts[folder] not in _VCS_DIRS:
                name = "/".join(parts[: folder + 1]) + "/"
                if name not in counted:
                    counted.add(name)
                    summary.skip("vendored", name)
            continue
        found = _read(top, rel, real_root, max_bytes, summary)
        if found is not None:
            summary.files += 1
            yield found


def _git_work_tree(root: Path) -> bool:
    """Whether ``root`` lies in a git work tree (a ``.git`` folder or file in it or a parent)."""
    path = Path(os.path.realpath(root))
    return any((folder / ".git").exists() for folder in (path, *path.parents))


def _git_files(root: Path) -> list[str]:
    command = ["git", "-c", "core.quotepath=off", "ls-files", "--cached", "--others", "--exclude-standard", "-z"]
    try:
        proc = subprocess.run(command, cwd=root, capture_output=True, timeout=GIT_TIMEOUT, check=False,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise InputFormatError("this folder is inside a git work tree, but the git command is not installed (it "
                               "lists the files .gitignore does not exclude); install git, or pass use_git=False "
                               "(--no-git) to walk the folder with its .gitignore files read by pathspec",
                               path=root) from None
    except subprocess.TimeoutExpired:
        raise InputFormatError(f"`git ls-files` did not finish in {GIT_TIMEOUT:.0f} s", path=root) from None
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip()[-500:]
        raise InputFormatError(f"`git ls-files` failed (exit {proc.returncode}): {message or 'no message'}; pass "
                               "use_git=False (--no-git) to walk the folder instead", path=root)
    names = {os.fsdecode(name) for name in proc.stdout.split(b"\0") if name}
    return sorted(name.replace(os.sep, "/") for name in names)


def _ignore_walk(root: Path, skip_dirs: frozenset[str]) -> Iterator[str]:
    """Relative paths of the entries under ``root`` that no .gitignore excludes, without entering VCS, vendored
    (yielded as ``folder/.`` for the caller to count) or symlinked folders (yielded as entries: links are classified,
    never followed)."""
    spec_type = _gitignore_spec_type()

    def ignored(specs: list[tuple[str, Any]], rel: str) -> bool:
        decision = False
        for base, spec in specs:  # root first: a deeper .gitignore overrides, the last matching pattern wins
            result = spec.check_file(rel[len(base):]).include
            if result is not None:
                decision = result
        return decision

    def walk(folder: str, rel: str, specs: list[tuple[str, Any]]) -> Iterator[str]:
        gitignore = os.path.join(folder, ".gitignore")
        if os.path.isfile(gitignore):
            try:
                with open(gitignore, encoding="utf-8", errors="replace") as f:
                    specs = [*specs, (rel, spec_type.from_lines(f.read().splitlines()))]
            except OSError as exc:
                logger.warning("cannot read %s: %s", gitignore, exc)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            logger.warning("skipping unreadable folder %s: %s", folder, exc)
            return
        for entry in entries:
            child = rel + entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                if entry.name in _VCS_DIRS or ignored(specs, child + "/"):
                    continue
                if (entry.name in skip_dirs or entry.name.endswith(".egg-info")
                        or os.path.isfile(os.path.join(entry.path, VIRTUALENV_MARKER))):
                    yield child + "/."  # counted by the caller as one vendored folder, not entered
                else:
                    yield from walk(entry.path, child + "/", specs)
            elif not ignored(specs, child):
                yield child

    return walk(os.fspath(root), "", [])


def _gitignore_spec_type() -> Any:
    try:
        from pathspec import GitIgnoreSpec
    except ImportError as exc:
        raise MissingExtraError("reading .gitignore files outside a git work tree needs pathspec; install it with: "
                                "pip install 'retrievekit[code]'") from exc
    return GitIgnoreSpec


def _read(top: Path, rel: str, real_root: str, max_bytes: int, summary: WalkSummary) -> CodeFile | None:
    """The file ``rel`` if it is one to index, else None (its reason counted in ``summary``)."""
    if any(c in rel for c in "\n\r\x00") or _not_utf8(rel):
        summary.skip("unsupported-name", rel.encode("utf-8", "backslashreplace").decode("utf-8"))
        return None
    full = top / rel
    try:
        info = os.lstat(full)
    except FileNotFoundError:  # listed by git but deleted from the work tree
        return None
    except OSError as exc:
        summary.skip("unreadable", rel)
        summary.warn(f"{rel}: cannot read: {exc.strerror or exc}")
        return None
    if stat.S_ISLNK(info.st_mode):
        summary.skip(_symlink_reason(full, real_root), rel)
        return None
    if not stat.S_ISREG(info.st_mode):
        summary.skip("not-a-file", rel)
        return None
    if info.st_size > max_bytes:
        summary.skip("too-large", rel)
        return None
    name = rel.rsplit("/", 1)[-1].lower()
    if name in GENERATED_NAMES or name.endswith(GENERATED_SUFFIXES):
        summary.skip("generated", rel)
        return None
    try:
        data = full.read_bytes()
    except OSError as exc:
        summary.skip("unreadable", rel)
        summary.warn(f"{rel}: cannot read: {exc.strerror or exc}")
        return None
    if not data.strip():
        summary.skip("empty", rel)
        return None
    encoding = _bom_encoding(data)
    if encoding is None and b"\0" in data[:_SNIFF_BYTES]:
        summary.skip("binary", rel)
        return None
    if _generated(data, name):
        summary.skip("generated", rel)
        return None
    decoded = decode_source(data, encoding)
    if decoded is None:
        summary.skip("binary", rel)
        return None
    text, encoding = decoded
    if encoding != "utf-8":
        summary.warn(f"{rel}: not UTF-8; decoded as {encoding}")
    return CodeFile(rel, full, text, file_hash(data), encoding, len(data))


def _not_utf8(rel: str) -> bool:
    try:
        rel.encode("utf-8")
        return False
    except UnicodeEncodeError:  # os.fsdecode kept undecodable bytes as lone surrogates
        return True


def _symlink_reason(path: Path, real_root: str) -> str:
    try:
        target = os.stat(path)  # follows the link
    except OSError as exc:
        return "symlink-loop" if exc.errno == errno.ELOOP else "broken-symlink"
    real = os.path.realpath(path)
    if os.path.commonpath([real, real_root]) != real_root:
        return "symlink-outside-root"
    if stat.S_ISDIR(target.st_mode):
        parent = os.path.realpath(path.parent)
        if os.path.commonpath([real, parent]) == real:  # a link to one of its own ancestors
            return "symlink-loop"
    return "symlink"


def _bom_encoding(data: bytes) -> str | None:
    for bom, name in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                      (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                      (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return name
    return None


def _generated(data: bytes, name: str) -> bool:
    if any(_MARKER_LINE.match(line) for line in data[:2048].split(b"\n")[:10]):
        return True
    if name.endswith(_MINIFIABLE) and len(data) > 2000:
        return len(data) / (data.count(b"\n") + 1) > 300
    return False


def decode_source(data: bytes, bom_encoding: str | None = None) -> tuple[str, str] | None:
    """``(text, encoding)`` of a source file: UTF-8 (BOM removed), UTF-16/32 with a BOM, else the encoding that
    charset-normalizer detects, else Latin-1 (which decodes anything). None when the detector finds no text."""
    if bom_encoding is not None:
        try:
            return data.decode(bom_encoding), "utf-8" if bom_encoding == "utf-8-sig" else bom_encoding
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        from charset_normalizer import from_bytes
    except ImportError:
        return data.decode("latin-1"), "latin-1 (charset-normalizer is not installed to detect the encoding)"
    best = from_bytes(data).best()
    if best is None:
        return None
    return str(best), best.encoding


# -- documents -------------------------------------------------------------------------------------------------------
def chunker_spec(max_lines: int = DEFAULT_MAX_LINES, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The ``chunker`` metadata value: the chunker's version and settings."""
    return f"code-v{CHUNKER_VERSION}:{max_lines}:{max_chars}"


def file_documents(file: CodeFile, *, max_lines: int = DEFAULT_MAX_LINES,
                   max_chars: int = DEFAULT_MAX_CHARS) -> tuple[list[Document], CodeChunks]:
    """The documents of one file (see the module docstring) and the chunking result they came from."""
    result = chunk_code(file.text, file.path, max_lines=max_lines, max_chars=max_chars)
    spec = chunker_spec(max_lines, max_chars)
    windows = ("module", "block", "lines")
    docs = [Document(
        id=f"{file.path}#{c.key}",
        title="" if c.kind in windows else c.qualname,
        text=c.text,
        metadata={"path": file.path, "language": result.language, "kind": c.kind, "symbol": c.symbol,
                  "qualname": c.qualname, "signature": c.signature, "docstring": c.docstring,
                  "decorators": list(c.decorators), "start_line": c.start_line, "end_line": c.end_line,
                  "start": c.start, "end": c.end, "start_byte": c.start_byte, "end_byte": c.end_byte,
                  "part": c.part, "parts": c.parts, "header_chars": c.header_chars, "file_hash": file.file_hash,
                  "chunker": spec},
    ) for c in result.chunks]
    return docs, result


def code_documents(
    root: str | Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_lines: int = DEFAULT_MAX_LINES,
    max_chars: int = DEFAULT_MAX_CHARS,
    use_git: bool | None = None,
    summary: WalkSummary | None = None,
) -> Iterator[Document]:
    """Every chunk of every readable source file under ``root`` as a ``Document``, file by file in path order.
    Skipped files and chunking warnings (syntax errors, missing grammars) go to ``summary``."""
    summary = summary if summary is not None else WalkSummary()
    files = walk_code(root, max_bytes=max_bytes, use_git=use_git, summary=summary)

    def documents() -> Iterator[Document]:
        for file in files:
            docs, result = file_documents(file, max_lines=max_lines, max_chars=max_chars)
            if result.warning:
                summary.warn(result.warning)
            yield from docs

    return documents()
