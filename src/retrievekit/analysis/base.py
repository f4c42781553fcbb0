"""The analyzer interface: text -> list of index terms, plus a JSON config stored in each index."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

from retrievekit.core.errors import RetrievekitError
from retrievekit.core.registry import Registry, registry


class Analyzer(ABC):
    """Turns text into index terms. Index and query text must go through the same analyzer, so every index
    stores ``config()`` and rebuilds its analyzer with ``analyzer_from_config``."""

    name: str = ""

    @abstractmethod
    def tokenize(self, text: str) -> list[str]:
        """Raw tokens, before ``normalize``."""

    @abstractmethod
    def normalize(self, token: str) -> str:
        """One raw token -> its index term, or ``""`` to drop it (stop word)."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-serialisable settings; ``analyzer_from_config(a.config())`` rebuilds an equal analyzer."""

    def normalize_many(self, tokens: list[str]) -> list[str]:
        """``normalize`` over a batch (analyzers may batch their stemmer calls)."""
        return [self.normalize(t) for t in tokens]

    def analyze(self, text: str) -> list[str]:
        normalize = self.normalize
        return [term for term in map(normalize, self.tokenize(text)) if term]

    def term_spans(self, text: str) -> list[tuple[int, int, list[str]]]:
        """(start, end, index terms) per word of ``text``. The default cannot locate words and returns none."""
        return []

    def analyze_batch(self, texts: Iterable[str]) -> list[list[str]]:
        return [self.analyze(text) for text in texts]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Analyzer) and self.config() == other.config()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.config().items())))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config()})"


class UnknownAnalyzerError(RetrievekitError, ValueError):
    pass


def _load_presets() -> None:
    from retrievekit.analysis import standard  # noqa: F401  (registers the built-in presets)


ANALYZERS: Registry[Analyzer] = registry("analyzer", error=UnknownAnalyzerError, loader=_load_presets)


def register_analyzer(name: str, factory: Callable[[], Analyzer], *, description: str = "") -> None:
    """Make ``get_analyzer(name)`` return ``factory()``."""
    ANALYZERS.register(name, factory, description=description)


def available_analyzers() -> list[str]:
    return sorted(ANALYZERS.names())


def get_analyzer(spec: str | dict[str, Any] | Analyzer | None = None) -> Analyzer:
    """An analyzer from a preset name (see ``available_analyzers()``), a config dict, or an instance.
    ``None`` gives the default, ``"lucene-english"``."""
    if isinstance(spec, Analyzer):
        return spec
    if spec is None:
        spec = "lucene-english"
    if isinstance(spec, dict):
        from retrievekit.analysis.standard import analyzer_from_config

        return analyzer_from_config(spec)
    if not isinstance(spec, str):
        raise UnknownAnalyzerError(f"unknown analyzer {spec!r}; choose one of: {ANALYZERS.usages()}")
    return ANALYZERS.factory(spec)()
