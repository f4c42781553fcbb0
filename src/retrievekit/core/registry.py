"""One registry type and one spec grammar for every named component (analyzers, encoders, tiers, ANN indexes,
chunkers, selectors, compressors, rerankers, generators, scorers, fusion methods).

Spec grammar, shared by all of them::

    spec  := stage ("+" stage)*          e.g. "pca:192+int8", "gap:0.3+budget:512"
    stage := name (":" arg)*             e.g. "tokens:256:32", "onnx-int8:minilm"
    arg   := value | key "=" value       e.g. "gap:1.0:20:ratio=0.3"

A component whose argument may itself hold ':' (a model path or an URL: "openai:MODEL@http://host:8000/v1") reads
``Spec.rest``, everything after the first ':'. Names are case-insensitive. Backends that need an optional library are
registered lazily ("module:attribute"), so listing or parsing never imports torch; using one that is not installed
raises ``MissingExtraError`` naming the extra to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from retrievekit.core.errors import MissingExtraError, RetrievekitError

T = TypeVar("T")


class SpecError(RetrievekitError, ValueError):
    """A component spec that does not parse or names nothing registered."""


@dataclass(frozen=True)
class Spec:
    """One parsed stage: ``name``, positional ``args``, ``key=value`` ``options`` and ``rest`` (the raw text after the
    first ':', for arguments that may contain ':' themselves)."""

    name: str
    args: tuple[str, ...] = ()
    options: dict[str, str] = field(default_factory=dict)
    rest: str = ""
    text: str = ""

    def arg(self, i: int, default: str | None = None) -> str | None:
        return self.args[i] if i < len(self.args) and self.args[i] != "" else default


def parse_stage(text: str) -> Spec:
    """``name[:arg...]`` -> Spec (``key=value`` args become options)."""
    text = text.strip()
    name, _, rest = text.partition(":")
    args: list[str] = []
    options: dict[str, str] = {}
    if rest:
        for part in rest.split(":"):
            part = part.strip()
            key, eq, value = part.partition("=")
            if eq and key.strip().isidentifier():
                options[key.strip().lower()] = value.strip()
            else:
                args.append(part)
    return Spec(name.strip().lower(), tuple(args), options, rest.strip(), text)


def parse_spec(text: str, *, what: str = "component", stages: bool = True) -> list[Spec]:
    """Parse a spec into its '+'-joined stages (one stage when ``stages`` is False)."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"a {what} spec must be a non-empty string, got {text!r}")
    parts = text.split("+") if stages else [text]
    specs = [parse_stage(p) for p in parts]
    for spec in specs:
        if not spec.name:
            raise SpecError(f"{what} spec {text!r} has an empty stage name")
    return specs


def _importable(module: str) -> bool:
    """Whether ``module`` can be imported, found without importing it (a dotted name imports its parents)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@dataclass
class Entry(Generic[T]):
    """A registered name: its factory (or "module:attribute" to import on first use), the syntax users write, the
    extra that installs what it needs and the import names it needs (checked without importing)."""

    name: str
    target: Callable[..., T] | str
    usage: str = ""
    extra: str | None = None
    requires: tuple[str, ...] = ()
    description: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def installed(self) -> bool:
        return all(_importable(module) for module in self.requires)

    @property
    def missing(self) -> list[str]:
        """The ``requires`` import names that cannot be found."""
        return [module for module in self.requires if not _importable(module)]

    def load(self) -> Callable[..., T]:
        if isinstance(self.target, str):
            module, _, attr = self.target.partition(":")
            try:
                self.target = getattr(importlib.import_module(module), attr)
            except ImportError as exc:
                hint = f"; install it with: pip install 'retrievekit[{self.extra}]'" if self.extra else ""
                raise MissingExtraError(f"{self.name!r} needs {exc.name or 'a missing library'}{hint}") from exc
        assert not isinstance(self.target, str)
        return self.target


class Registry(Generic[T]):
    """Names -> factories for one kind of component. ``loader`` imports the modules whose built-ins register
    themselves here (run once, on first lookup), so a base module never imports its backends at import time."""

    def __init__(self, kind: str, *, error: type[Exception] = SpecError,
                 loader: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self.error = error
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}
        self._loader = loader

    def register(self, name: str, target: Callable[..., T] | str, *, usage: str = "", extra: str | None = None,
                 requires: Sequence[str] = (), aliases: Sequence[str] = (), description: str = "") -> None:
        """Register ``target`` (a factory or "module:attribute") under ``name``; a later registration replaces it."""
        key = name.lower()
        self._entries[key] = Entry(key, target, usage or name, extra, tuple(requires), description,
                                   tuple(a.lower() for a in aliases))
        for alias in aliases:
            self._aliases[alias.lower()] = key

    def unregister(self, name: str) -> None:
        """Remove ``name`` and its aliases (for plugins and tests); unknown names are ignored."""
        key = name.lower()
        self._entries.pop(key, None)
        for alias in [a for a, target in self._aliases.items() if target == key]:
            del self._aliases[alias]

    def _load_builtins(self) -> None:
        loader, self._loader = self._loader, None
        if loader is not None:
            loader()

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return isinstance(name, str) and (name.lower() in self._entries or name.lower() in self._aliases)

    def __iter__(self) -> Iterator[Entry[T]]:
        self._load_builtins()
        return iter(list(self._entries.values()))

    def names(self) -> list[str]:
        self._load_builtins()
        return list(self._entries)

    def usages(self) -> str:
        """The accepted forms, for error messages."""
        return ", ".join(e.usage for e in self)

    def entry(self, name: str) -> Entry[T]:
        self._load_builtins()
        key = name.strip().lower() if isinstance(name, str) else name
        key = self._aliases.get(key, key)
        entry = self._entries.get(key)
        if entry is None:
            raise self.error(f"unknown {self.kind} {name!r}; choose one of: {self.usages()}")
        return entry

    def factory(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name`` (imported now if it was registered lazily)."""
        return self.entry(name).load()

    def parse(self, text: str, *, stages: bool = True) -> list[tuple[Spec, Entry[T]]]:
        """Parse ``text`` and look up every stage; an unknown name fails listing the valid choices. Errors are
        raised as this registry's ``error`` class."""
        try:
            specs = parse_spec(text, what=self.kind, stages=stages)
        except SpecError as exc:
            if self.error is SpecError:
                raise
            raise self.error(f"{exc}; choose one of: {self.usages()}") from None
        return [(spec, self.entry(spec.name)) for spec in specs]


REGISTRIES: dict[str, Registry[Any]] = {}


def registry(kind: str, **options: Any) -> Registry[Any]:
    """The registry of ``kind``, created on first use (so ``retrievekit components`` can list every kind)."""
    if kind not in REGISTRIES:
        REGISTRIES[kind] = Registry(kind, **options)
    return REGISTRIES[kind]
