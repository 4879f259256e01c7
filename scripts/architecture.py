"""The package's import graph, read from the sources, and the picture of its layers.

    python scripts/architecture.py            # print the folder-level picture (Mermaid + table)
    python scripts/architecture.py --write    # rewrite it in docs/architecture.md
    python scripts/architecture.py --check    # exit 1 if docs/architecture.md is out of date

The graph is read with ``ast`` (no import of the package, so no JAX), and sees imports inside
functions ("deferred") as well as module-level ones. A *part* is a folder of ``neuraleq_jax``
(``model``, ``data``, …) or a module that sits at the top (``config``, ``system``, …). The
picture draws each part on its layer (a part imports only parts on layers below it) and keeps
only the edges that no longer path implies, so it stays readable. tests/test_layout.py checks
the same graph (no cycles; deferred imports only where named) and that the doc is up to date.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "neuraleq_jax"
DOC = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- architecture:begin -->", "<!-- architecture:end -->"


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name → source path, for every module of the package (``__main__`` left
    out: ``python -m`` scripts run on import and are no library code)."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _imported(node, package: str, modules: dict) -> set[str]:
    """The package modules one import statement names (``from a import b`` names ``a.b`` when
    that is a module, else ``a``)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = node.module or ""
    if node.level:
        stem = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(stem + ([base] if base else []))
    found = set()
    for alias in node.names:
        full = f"{base}.{alias.name}"
        found.add(full if full in modules else base)
    return found


def module_imports(name: str, path: Path, modules: dict) -> tuple[set[str], set[str]]:
    """``(module-level, deferred)`` package modules that ``name`` imports. A submodule imports
    its package's ``__init__`` first, which is no dependency of its own, so the package root
    and the module itself are left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top_level = {id(node) for node in tree.body}
    eager, deferred = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            found = {
                m
                for m in _imported(node, package, modules)
                if m in modules and m not in (name, "neuraleq_jax")
            }
            (eager if id(node) in top_level else deferred).update(found)
    return eager, deferred - eager


def import_graph(*, deferred: bool) -> dict[str, set[str]]:
    """Module → the package modules it imports (at module level, or anywhere)."""
    modules = module_names()
    graph = {}
    for name, path in modules.items():
        eager, later = module_imports(name, path, modules)
        graph[name] = eager | later if deferred else eager
    return graph


def part_of(module: str) -> str:
    """The folder (or top-level module) a module belongs to: ``neuraleq_jax.data.safedb`` →
    ``data``, ``neuraleq_jax.config`` → ``config``; the package root is ``neuraleq_jax``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def part_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph collapsed onto parts, without edges inside one part."""
    parts: dict[str, set[str]] = {}
    for module, targets in graph.items():
        source = part_of(module)
        parts.setdefault(source, set()).update(part_of(t) for t in targets if part_of(t) != source)
    return parts


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def dependency_order(graph: dict[str, set[str]]) -> list[str]:
    """Every node after all the nodes it depends on (the graph must be acyclic)."""
    order, done = [], set()

    def visit(node):
        if node in done:
            return
        done.add(node)
        for target in sorted(graph.get(node, ())):
            visit(target)
        order.append(node)

    for node in sorted(graph):
        visit(node)
    return order


def layers(graph: dict[str, set[str]]) -> dict[str, int]:
    """Each node's layer: 0 for a node that imports nothing, else one above its highest import."""
    level: dict[str, int] = {}
    for node in dependency_order(graph):
        level[node] = 1 + max((level[t] for t in graph.get(node, ())), default=-1)
    return level


def reduced_edges(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """The edges of an acyclic graph that no longer path implies (its transitive reduction)."""

    def reachable(start, skip_edge):
        seen, todo = set(), [t for t in graph.get(start, ()) if (start, t) != skip_edge]
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, ()))
        return seen

    return sorted(
        (source, target)
        for source, targets in graph.items()
        for target in targets
        if target not in reachable(source, (source, target))
    )


def picture() -> str:
    """The Markdown block of docs/architecture.md between its markers: a Mermaid drawing of the
    parts' reduced import graph and a table of the layers, highest first."""
    parts = part_graph(import_graph(deferred=True))
    level = layers(parts)
    lines = [BEGIN, "```mermaid", "graph TD"]
    lines += [f"    {source} --> {target}" for source, target in reduced_edges(parts)]
    lines += ["```", "", "| layer | parts (each imports only parts on lower layers) |"]
    lines += ["| --- | --- |"]
    for layer in range(max(level.values()), -1, -1):
        names = sorted(name for name, at in level.items() if at == layer)
        lines.append(f"| {layer} | {', '.join(f'`{name}`' for name in names)} |")
    return "\n".join(lines + [END])


def _with_picture(text: str) -> str:
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + picture() + text[stop:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the picture in the doc")
    mode.add_argument("--check", action="store_true", help="exit 1 if the doc is out of date")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        print(picture())
        return 0
    text = DOC.read_text(encoding="utf-8")
    fresh = _with_picture(text)
    if args.check:
        if fresh != text:
            print(f"{DOC} is out of date: run python scripts/architecture.py --write")
            return 1
        return 0
    DOC.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
