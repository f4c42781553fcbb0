"""Server paths out of error messages: remote clients learn what went wrong, not where the server keeps its files.
The full message goes to the server log."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

# An absolute path of at least three parts (/a/b/c): shorter ones are too often ids or URL paths in a message.
_ABSOLUTE = re.compile(r"(?<![\w.:/~>-])/(?:[^\s/'\"`<>|]+/){2,}([^\s/'\"`<>|,;:)\]]*)")


def _known_roots(named: Iterable[tuple[str | Path, str]]) -> list[tuple[str, str]]:
    roots: list[tuple[str, str]] = []
    for path, name in [*named, (Path.home(), "~"), (tempfile.gettempdir(), "<tmp>"), (os.getcwd(), "<cwd>")]:
        for form in {str(path), str(Path(path).resolve())}:
            if len(form) > 1:
                roots.append((form.rstrip("/"), name))
    return sorted(roots, key=lambda root: -len(root[0]))  # the longest (most specific) first


def redact_paths(message: str, named: Iterable[tuple[str | Path, str]] = ()) -> str:
    """``message`` with each known folder (``named``: (path, placeholder) pairs, then home, temp and working
    folders) replaced by its placeholder, and any other absolute path by ``…/`` and its last part."""
    for root, name in _known_roots(named):
        message = message.replace(root, name)
    return _ABSOLUTE.sub(lambda m: "…/" + m.group(1), message)
