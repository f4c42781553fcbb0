"""The package's import graph: cycles that span packages, the largest modules, the registries.

    python benchmarks/import_graph.py [SRC_DIR]      (default: src)

Counts every import of a retrievekit module, at module level or inside a function (a lazy import is still a
dependency); imports under ``if TYPE_CHECKING:`` are reported separately, since they never run. Used for the
before/after numbers of the architecture change (issue 11).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path


def modules(src: Path) -> dict[str, Path]:
    out = {}
    for path in sorted((src / "retrievekit").rglob("*.py")):
        name = ".".join(path.relative_to(src).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> tuple[set[str], set[str]]:
    """(runtime imports, TYPE_CHECKING-only imports) of one module, resolved to known module names."""
    tree = ast.parse(path.read_text("utf-8"))
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded.update(id(n) for n in ast.walk(node))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    runtime, typing_only = set(), set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                (typing_only if id(node) in guarded else runtime).add(target)
    return runtime, typing_only


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(root)"


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def report(src: Path) -> None:
    found = modules(src)
    known = set(found)
    runtime: dict[str, set[str]] = {}
    typing_only: dict[str, set[str]] = {}
    for name, path in found.items():
        runtime[name], typing_only[name] = imports(name, path, known)
    # The root package re-exports the façade: an import of "retrievekit" itself is an import of everything it
    # imports, so it is kept as a node like any other.
    for label, graph in (("runtime imports", runtime),
                         ("runtime + TYPE_CHECKING imports", {m: runtime[m] | typing_only[m] for m in found})):
        cycles = [c for c in strongly_connected(graph) if len({package_of(m) for m in c}) > 1]
        print(f"{label}: {len(cycles)} cycle(s) spanning packages")
        for c in cycles:
            print(f"  {len(c)} modules in {sorted({package_of(m) for m in c})}: {', '.join(c)}")
    edges: dict[tuple[str, str], int] = defaultdict(int)
    for name, targets in runtime.items():
        for t in targets:
            if package_of(name) != package_of(t):
                edges[(package_of(name), package_of(t))] += 1
    mutual = sorted({tuple(sorted(e)) for e in edges if (e[1], e[0]) in edges})
    print(f"package pairs importing each other (runtime): {len(mutual)} {mutual}")
    sizes = sorted(((len(p.read_text('utf-8').splitlines()), n) for n, p in found.items()), reverse=True)
    print("largest modules:", ", ".join(f"{n} {lines}" for lines, n in sizes[:6]))
    print(f"modules over 600 lines: {sum(1 for lines, _ in sizes if lines > 600)}")
    print(f"modules: {len(found)}, lines: {sum(lines for lines, _ in sizes)}")


if __name__ == "__main__":
    report(Path(sys.argv[1] if len(sys.argv) > 1 else "src"))
