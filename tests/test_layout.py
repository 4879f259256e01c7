"""The package's shape: no import cycles, library code never imports a command-line entry point,
and the data-set registry knows exactly the names the config accepts.

The import graph is read from the sources (AST), so the test needs no jax and sees deferred
imports inside functions as well as module-level ones. A fresh interpreter then imports every
module in dependency order, each one finding all of its package imports already loaded.
"""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "neuraleq_jax"
# the command-line entry points; only they may import one another
ENTRY_POINTS = {"neuraleq_jax.cli", "neuraleq_jax.train", "neuraleq_jax.evaluate"}
# a deferred import that closes a cycle, left as it is: curves reads an Audealize document
# through audealize, which builds on curves' fitting
DEFERRED_CYCLES_LEFT = [{"neuraleq_jax.data.curves", "neuraleq_jax.data.audealize"}]


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__main__":  # ``python -m`` scripts run on import; not library code
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


MODULES = _module_names()


def _imports(name: str, path: Path, *, deferred: bool) -> set[str]:
    """The package modules that ``name`` imports: at module level, or anywhere."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = ast.walk(tree) if deferred else tree.body
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                stem = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(stem + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    # a submodule imports its package's __init__ first, which is no dependency of its own
    return {m for m in found if m in MODULES and m != name and m != "neuraleq_jax"}


def _graph(*, deferred: bool) -> dict[str, set[str]]:
    return {name: _imports(name, path, deferred=deferred) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
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


def _dependency_order(graph: dict[str, set[str]]) -> list[str]:
    order, done = [], set()

    def visit(node):
        if node in done:
            return
        done.add(node)
        for target in sorted(graph[node]):
            visit(target)
        order.append(node)

    for node in sorted(graph):
        visit(node)
    return order


def test_the_graph_reader_sees_known_edges():
    graph = _graph(deferred=False)
    assert {"neuraleq_jax.config", "neuraleq_jax.model.networks"} <= graph[
        "neuraleq_jax.training.checkpoints"
    ]
    assert "neuraleq_jax.fileio" in graph["neuraleq_jax.config"]
    assert (
        "neuraleq_jax.training.trainer" in _graph(deferred=True)["neuraleq_jax.training.experiment"]
    )
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_module_level_import_cycle():
    assert _cycles(_graph(deferred=False)) == []


def test_deferred_imports_close_no_cycle_but_the_one_left():
    cycles = _cycles(_graph(deferred=True))
    assert sorted(map(sorted, cycles)) == sorted(map(sorted, DEFERRED_CYCLES_LEFT))


def test_library_modules_do_not_import_the_command_line_entry_points():
    graph = _graph(deferred=True)
    importers = {
        name: sorted(targets & ENTRY_POINTS)
        for name, targets in graph.items()
        if name not in ENTRY_POINTS
        and not name.startswith("neuraleq_jax.cli.")  # the command line's own modules
        and targets & ENTRY_POINTS
    }
    assert importers == {}


def test_every_module_imports_in_dependency_order_in_a_fresh_interpreter():
    """Each module, imported after its dependencies, finds every package module it imports at
    module level already loaded, and no module is loaded before its turn. Packages start as
    bare stand-ins (Python runs a package's ``__init__`` before any of its submodules) and
    are imported for real in their own turn."""
    graph = _graph(deferred=False)
    order = _dependency_order(graph)
    packages = sorted(name for name, path in MODULES.items() if path.name == "__init__.py")
    script = f"""
import importlib, sys, types
graph = { ({name: sorted(graph[name]) for name in order})!r}
for name in {packages!r}:
    stand_in = types.ModuleType(name)
    stand_in.__path__ = [str(__import__("pathlib").Path({str(PACKAGE.parent)!r}, *name.split(".")))]
    sys.modules[name] = stand_in
for name in {order!r}:
    missing = [m for m in graph[name] if m not in sys.modules]
    assert not missing, (name, "imported before", missing)
    if name in {packages!r}:
        del sys.modules[name]
    else:
        assert name not in sys.modules, (name, "was loaded before its turn")
    importlib.import_module(name)
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_the_dataset_registry_holds_the_names_the_config_accepts():
    from neuraleq_jax import config
    from neuraleq_jax.data import registry as datasets

    assert tuple(datasets.DATASETS) == config.DATASET_NAMES
