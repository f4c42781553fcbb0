"""A demo corpus built from the docstrings of the installed Python standard library.

Pure-Python modules are read by parsing their source with ``ast`` -- they are never imported, since
importing arbitrary stdlib modules can have side effects (``antigravity`` opens a browser, ``this``
prints). Only C modules (built into the interpreter, or a short list of well-known extension modules)
are imported, because their docstrings exist nowhere else; importing those is side-effect free.

Ids are dotted qualified names (``json.dumps``, ``collections.OrderedDict.move_to_end``). The module
behind ``os.path`` (``posixpath`` or ``ntpath``) is published as ``os.path``, and C modules that a
public module re-exports are published under that module (``posix`` -> ``os``, ``_struct`` ->
``struct``), because those are the names people search for.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import itertools
import logging
import os
import sys
import sysconfig
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retrievekit.core.document import Document
from retrievekit.core.files import AST_LOCK

logger = logging.getLogger(__name__)

#: Folder names never descended into: third-party code, test suites, tools and bundled wheels.
SKIP_DIRS = frozenset({
    "site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3", "turtledemo",
    "__pycache__", "ensurepip", "__phello__",
})

#: C extension modules (shared libraries in lib-dynload) worth documenting besides the built-in ones.
EXTRA_C_MODULES = (
    "_bisect", "_csv", "_heapq", "_json", "_socket", "_struct", "array", "binascii", "cmath", "fcntl",
    "grp", "math", "mmap", "resource", "select", "termios", "unicodedata", "zlib",
)

# C modules whose contents a public module re-exports wholesale, so their members carry its name.
_C_ALIASES = {"posix": "os", "nt": "os", "_struct": "struct", "_socket": "socket", "_io": "io",
              "_csv": "csv"}

_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)


#: Modules deprecated for removal (PEP 594, distutils, imp) or made of generated boilerplate (the codecs under
#: ``encodings``): left out of the public-only corpus, which shows what people search for today.
DEPRECATED_OR_BOILERPLATE = frozenset({
    "aifc", "asynchat", "asyncore", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr", "mailcap", "msilib",
    "nis", "nntplib", "ossaudiodev", "pipes", "smtpd", "sndhdr", "spwd", "sunau", "telnetlib", "uu", "xdrlib",
    "distutils", "imp", "encodings",
})


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def iter_stdlib_documents(limit: int | None = None, *, public_only: bool = False) -> Iterator[Document]:
    """Yield one document per documented module, class, function and method of the standard library.

    The order is deterministic for a given Python installation: source files in sorted path order,
    then C modules by name. ``limit`` stops after that many documents. ``public_only`` leaves out private
    names (a dotted part starting with ``_``, dunders such as ``__init__`` kept) and the modules of
    ``DEPRECATED_OR_BOILERPLATE``: about 6,000 documents instead of about 9,000, with 2/3 of the text.
    """
    if limit is not None and limit <= 0:
        return
    documents = _Builder(stdlib_root()).documents()
    if public_only:
        documents = (doc for doc in documents if is_public(doc.id))
    yield from itertools.islice(documents, limit)


def is_public(doc_id: str) -> bool:
    """True for the id of a public, current name (``json.dumps``, ``dict.__init__``), False for a private one
    (``_pydecimal.Decimal``, ``json.decoder._decode_uXXXX``) or one in a deprecated or boilerplate module."""
    parts = doc_id.split("#")[0].split(".")
    if parts[0] in DEPRECATED_OR_BOILERPLATE:
        return False
    return not any(part.startswith("_") and not (part.startswith("__") and part.endswith("__")) for part in parts)


class _Builder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ids: set[str] = set()
        self.source_modules: set[str] = set()
        # The module object behind os.path was imported at interpreter start-up; we only read its name.
        self.path_module = os.path.__name__

    def documents(self) -> Iterator[Document]:
        files = list(self._source_files())
        self.source_modules = {self._public_module(name) for _, _, name in files}
        for path, rel, module in files:
            yield from self._source_documents(path, rel, module)
        yield from self._c_documents()

    # ------------------------------------------------------------------------------ pure-Python sources

    def _source_files(self) -> Iterator[tuple[Path, str, str]]:
        """``(path, relative_posix_path, module_name)`` of every stdlib ``.py`` file, in sorted order."""

        def walk(folder: Path, rel_parts: tuple[str, ...]) -> Iterator[tuple[Path, str, str]]:
            try:
                entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
            except OSError as exc:
                logger.warning("skipping unreadable folder %s: %s", folder, exc)
                return
            for entry in entries:
                name = entry.name
                if name.startswith(".") or name in SKIP_DIRS:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if name.isidentifier():  # skips e.g. config-3.11-x86_64-linux-gnu, lib-dynload
                        yield from walk(Path(entry.path), rel_parts + (name,))
                elif name.endswith(".py") and name[:-3].isidentifier():
                    stem = name[:-3]
                    parts = rel_parts if stem == "__init__" else rel_parts + (stem,)
                    if parts:
                        yield Path(entry.path), "/".join(rel_parts + (name,)), ".".join(parts)

        yield from walk(self.root, ())

    def _public_module(self, module: str) -> str:
        return "os.path" if module == self.path_module else module

    def _source_documents(self, path: Path, rel: str, module: str) -> Iterator[Document]:
        try:
            source = path.read_bytes()
            with AST_LOCK:
                tree = ast.parse(source, filename=str(path))
        except (SyntaxError, ValueError, OSError) as exc:
            logger.warning("skipping %s: %s", path, exc)
            return
        public = self._public_module(module)
        doc = _clean(ast.get_docstring(tree, clean=False))
        if doc:
            lineno = tree.body[0].lineno if tree.body else 1
            yield self._make(public, public, doc, public, "module", rel, lineno)
        yield from self._visit(tree.body, public, public, rel, in_class=False)

    def _visit(self, body: list[ast.stmt], prefix: str, module: str, rel: str,
               in_class: bool) -> Iterator[Document]:
        for node in body:
            if isinstance(node, _FUNCTION_NODES):
                doc = _clean(ast.get_docstring(node, clean=False))
                if doc:
                    qualname = f"{prefix}.{node.name}"
                    title = qualname + _signature(node, in_class)
                    kind = "method" if in_class else "function"
                    yield self._make(qualname, title, doc, module, kind, rel, node.lineno)
                # Nested functions are implementation details: not descended into.
            elif isinstance(node, ast.ClassDef):
                qualname = f"{prefix}.{node.name}"
                doc = _clean(ast.get_docstring(node, clean=False))
                if doc:
                    yield self._make(qualname, qualname, doc, module, "class", rel, node.lineno)
                yield from self._visit(node.body, qualname, module, rel, in_class=True)
            else:
                # Definitions under ``if sys.platform ...:`` / ``try: ... except ImportError:`` count too.
                for block in _sub_blocks(node):
                    yield from self._visit(block, prefix, module, rel, in_class)

    # ------------------------------------------------------------------------------------- C modules

    def _c_module_names(self) -> list[str]:
        builtin = (name for name in sys.builtin_module_names if not name.startswith(("_test", "xx")))
        return sorted(set(builtin) | set(EXTRA_C_MODULES))

    def _c_documents(self) -> Iterator[Document]:
        seen_objects: set[int] = set()
        for name in self._c_module_names():
            try:
                module = importlib.import_module(name)
            except ImportError:
                logger.debug("C module %s is not available here", name)
                continue
            public = _C_ALIASES.get(name, name)
            rel = self._relative_file(module)
            doc = _clean(module.__doc__)
            if doc and public not in self.ids:
                yield self._make(public, public, doc, public, "module", rel, None)
            for attr, obj in sorted(vars(module).items()):
                if attr.startswith("__") or id(obj) in seen_objects:
                    continue
                owner = getattr(obj, "__module__", None)
                owner = owner if isinstance(owner, str) else name
                owner_public = _C_ALIASES.get(owner, owner)
                # Members re-exported from another C module are documented there; a member whose
                # __module__ names a pure-Python module (collections.deque) is published under it.
                if owner_public != public and owner not in self.source_modules:
                    continue
                qualname = f"{owner_public}.{getattr(obj, '__qualname__', attr)}"
                if self._documented_in_source(qualname):
                    continue
                if isinstance(obj, types.BuiltinFunctionType):
                    seen_objects.add(id(obj))
                    doc = _clean(obj.__doc__)
                    if doc:
                        yield self._make(qualname, qualname + _c_signature(obj), doc, owner_public,
                                         "function", rel, None)
                elif isinstance(obj, type):
                    seen_objects.add(id(obj))
                    yield from self._c_class(obj, qualname, owner_public, rel)

    def _c_class(self, cls: type, qualname: str, module: str, rel: str) -> Iterator[Document]:
        doc = _clean(cls.__doc__)
        if doc:
            yield self._make(qualname, qualname, doc, module, "class", rel, None)
        for attr, member in sorted(cls.__dict__.items()):
            # Dunder slots of C types carry generic texts ("Return self[key].") that would only add noise.
            if attr.startswith("__"):
                continue
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if not isinstance(member, (types.MethodDescriptorType, types.ClassMethodDescriptorType,
                                       types.BuiltinFunctionType)):
                continue
            doc = _clean(member.__doc__)
            if doc:
                method = f"{qualname}.{attr}"
                yield self._make(method, method + _c_signature(member, method=True), doc, module, "method", rel, None)

    def _documented_in_source(self, qualname: str) -> bool:
        """True when the same object is documented from Python source (``_heapq.heappush`` vs
        ``heapq.heappush``): the accelerated C copy would only duplicate it."""
        if qualname in self.ids:
            return True
        module, _, rest = qualname.partition(".")
        return module.startswith("_") and f"{module[1:]}.{rest}" in self.ids

    def _relative_file(self, module: types.ModuleType) -> str:
        file = getattr(module, "__file__", None)
        if not file:
            return "<built-in>"
        try:
            return Path(file).resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return Path(file).name

    # ----------------------------------------------------------------------------------------- common

    def _make(self, qualname: str, title: str, text: str, module: str, kind: str, rel: str,
              lineno: int | None) -> Document:
        doc_id = qualname
        n = 2
        while doc_id in self.ids:  # the same name defined twice, e.g. per platform
            doc_id = f"{qualname}#{n}"
            n += 1
        self.ids.add(doc_id)
        return Document(id=doc_id, text=text, title=title,
                        metadata={"module": module, "kind": kind, "path": rel, "lineno": lineno})


def _sub_blocks(node: ast.stmt) -> list[list[ast.stmt]]:
    if isinstance(node, ast.If):
        return [node.body, node.orelse]
    if isinstance(node, ast.Try) or type(node).__name__ == "TryStar":  # TryStar: Python 3.11+
        node_any: Any = node
        return [node_any.body, *(h.body for h in node_any.handlers), node_any.orelse, node_any.finalbody]
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return [node.body]
    return []


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef, in_class: bool) -> str:
    """``(a, b=1, *args, **kw) -> int`` from the ast, without ``self``/``cls`` for methods."""
    args = node.args
    is_static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)
    if in_class and not is_static:
        # Drop the bound first parameter: a shallow copy keeps the parsed tree intact.
        args = ast.arguments(posonlyargs=list(args.posonlyargs), args=list(args.args),
                             vararg=args.vararg, kwonlyargs=args.kwonlyargs, kw_defaults=args.kw_defaults,
                             kwarg=args.kwarg, defaults=args.defaults)
        if args.posonlyargs:
            args.posonlyargs.pop(0)
        elif args.args:
            args.args.pop(0)
    try:
        text = f"({ast.unparse(args)})"
        if node.returns is not None:
            text += f" -> {ast.unparse(node.returns)}"
    except Exception:
        return "(...)"
    return text


def _c_signature(obj: Any, method: bool = False) -> str:
    """The signature of a C callable from its ``__text_signature__`` ("" when it has none)."""
    text_signature = getattr(obj, "__text_signature__", None)
    if text_signature is None:
        return ""
    try:
        signature = inspect.signature(obj)
    except (ValueError, TypeError):
        return ""
    params = list(signature.parameters.values())
    # "($self, ...)" / "($type, ...)" mark the bound first parameter, which a reader never passes.
    if method and params and text_signature.startswith("($"):
        signature = signature.replace(parameters=params[1:])
    return str(signature)


def _clean(doc: Any) -> str:
    """``inspect.cleandoc`` plus a final strip: cleandoc keeps a trailing whitespace-only line when
    no other line sets the indentation margin (a docstring of one line plus indented closing quotes)."""
    return inspect.cleandoc(doc).strip() if isinstance(doc, str) and doc.strip() else ""
