"""Path globs for metadata filters (``{"path": {"glob": "src/**/*.py"}}``), matched in bounded time.

Rules (git's pathspec/.gitignore conventions, the ones programmers already know):

* ``/`` separates folders; ``*`` matches any run of characters but ``/``, ``?`` one character but ``/``, ``[abc]``,
  ``[a-z]``, ``[!abc]`` (or ``[^abc]``) one character of (not of) the set; ``\\`` makes the next character literal;
  an unclosed ``[`` is literal.
* ``**`` as a whole segment matches any number of folders, none included: ``src/**/*.py`` matches ``src/a.py`` and
  ``src/x/y/a.py``; elsewhere ``**`` is ``*``.
* A pattern without a ``/`` (a trailing one aside) matches a name at any depth (``*.py``, ``tests``); one with a
  ``/`` is anchored at the start of the path (``src/*.py``; a leading ``/`` anchors a plain name: ``/setup.py``).
* A pattern that matches a folder matches everything under it: ``src``, ``src/`` and ``src/**`` all select
  ``src/a/b.py``.

Matching never backtracks more than the classic two-pointer wildcard algorithm (at most pattern length x path length
steps, on segments then characters), so no pattern can take exponential time the way a translated regular expression
can (``*a*a*a*a*b``); patterns are limited to ``MAX_GLOB_CHARS`` and a value longer than ``MAX_SUBJECT_CHARS`` (far
beyond any real path) matches nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

MAX_GLOB_CHARS = 1024
MAX_SUBJECT_CHARS = 4096
_CACHE_LIMIT = 65_536  # distinct values remembered per compiled glob (documents of one file share their path)


class GlobError(ValueError):
    pass


@dataclass(frozen=True)
class _Class:
    negated: bool
    chars: frozenset[str]
    ranges: tuple[tuple[str, str], ...]

    def matches(self, c: str) -> bool:
        inside = c in self.chars or any(lo <= c <= hi for lo, hi in self.ranges)
        return inside != self.negated


_STAR = object()  # within a segment: any run of characters
_ANY = object()  # within a segment: one character
_GLOBSTAR = object()  # as a segment: any run of segments

Token = object  # a literal character (str), _STAR, _ANY or a _Class
Segment = object  # a literal segment (str), a tuple of tokens, or _GLOBSTAR


def _class(pattern: str, start: int) -> tuple[_Class, int] | None:
    """The bracket expression opening at ``pattern[start]`` and the index after it, or None when it is unclosed."""
    i = start + 1
    negated = i < len(pattern) and pattern[i] in "!^"
    if negated:
        i += 1
    chars: set[str] = set()
    ranges: list[tuple[str, str]] = []
    first = True
    while i < len(pattern):
        c = pattern[i]
        if c == "]" and not first:
            return _Class(negated, frozenset(chars), tuple(ranges)), i + 1
        if c == "\\" and i + 1 < len(pattern):
            i += 1
            c = pattern[i]
        if i + 2 < len(pattern) and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            ranges.append((c, pattern[i + 2]))
            i += 3
        else:
            chars.add(c)
            i += 1
        first = False
    return None


def _segment(text: str) -> Segment:
    if text == "**":
        return _GLOBSTAR
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "*":
            if not tokens or tokens[-1] is not _STAR:
                tokens.append(_STAR)
            i += 1
        elif c == "?":
            tokens.append(_ANY)
            i += 1
        elif c == "[" and (parsed := _class(text, i)) is not None:
            tokens.append(parsed[0])
            i = parsed[1]
        elif c == "\\" and i + 1 < len(text):
            tokens.append(text[i + 1])
            i += 2
        else:
            tokens.append(c)
            i += 1
    if all(isinstance(t, str) for t in tokens):
        return "".join(tokens)  # type: ignore[arg-type]
    return tuple(tokens)


def _wildcard(tokens: Sequence[object], items: Sequence[object], star: object,
              one: Callable[[object, object], bool]) -> bool:
    """Whether ``tokens`` match all of ``items``: ``star`` tokens match any run of items, any other token exactly one
    item for which ``one(token, item)`` holds. Greedy with one resume point (the last star): O(len(tokens) x
    len(items)) steps, never exponential."""
    t = i = 0
    resume_t, resume_i = -1, 0
    n, m = len(items), len(tokens)
    while i < n:
        if t < m and tokens[t] is star:
            resume_t, resume_i = t, i
            t += 1
        elif t < m and one(tokens[t], items[i]):
            t += 1
            i += 1
        elif resume_t >= 0:
            resume_i += 1
            t, i = resume_t + 1, resume_i
        else:
            return False
    while t < m and tokens[t] is star:
        t += 1
    return t == m


def _char(token: object, c: object) -> bool:
    if isinstance(token, str):
        return token == c
    if token is _ANY:
        return c != "/"
    return isinstance(token, _Class) and token.matches(c)  # type: ignore[arg-type]


def _segment_matches(pattern: object, name: object) -> bool:
    if isinstance(pattern, str):
        return pattern == name
    return _wildcard(pattern, name, _STAR, _char)  # type: ignore[arg-type]


def compile_glob(pattern: str) -> Callable[[str], bool]:
    """A predicate for path strings that match ``pattern`` (see the module docstring); GlobError for a pattern that
    is empty or too long."""
    if not isinstance(pattern, str) or not pattern.strip("/"):
        raise GlobError(f"a glob must be a non-empty path pattern such as 'src/**/*.py', got {pattern!r}")
    if len(pattern) > MAX_GLOB_CHARS:
        raise GlobError(f"the glob is {len(pattern):,} characters; the limit is {MAX_GLOB_CHARS:,}")
    body = pattern.lstrip("/")
    anchored = pattern.startswith("/") or "/" in body.rstrip("/")
    segments: list[Segment] = [_segment(part) for part in body.split("/") if part]
    if not anchored:
        segments.insert(0, _GLOBSTAR)
    if segments[-1] is not _GLOBSTAR:
        segments.append(_GLOBSTAR)  # a matching folder selects what it holds
    # a run of ** is one **
    compact = [s for i, s in enumerate(segments) if not (s is _GLOBSTAR and i and segments[i - 1] is _GLOBSTAR)]
    cache: dict[str, bool] = {}

    def match(path: str) -> bool:
        known = cache.get(path)
        if known is not None:
            return known
        result = len(path) <= MAX_SUBJECT_CHARS and _wildcard(compact, path.split("/"), _GLOBSTAR,
                                                               _segment_matches)
        if len(cache) < _CACHE_LIMIT:
            cache[path] = result
        return result

    return match
