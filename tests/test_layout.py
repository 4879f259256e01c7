"""The package's shape: folders that name the architecture and import downhill, no import
cycles, deferred imports only where a reason is named, library code that never imports a
command line, tests that mirror the folders, and docs/architecture.md drawn from the imports.

The import graph is read from the sources by scripts/architecture.py (AST), so the test needs
no jax and sees deferred imports inside functions as well as module-level ones. A fresh
interpreter then imports every module in dependency order, each one finding all of its package
imports already loaded.
"""

import fnmatch
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


def _load_architecture():
    spec = importlib.util.spec_from_file_location(
        "architecture", ROOT / "scripts" / "architecture.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


architecture = _load_architecture()
MODULES = architecture.module_names()
PACKAGE = architecture.PACKAGE
# the command lines; library code never imports them
COMMAND_LINES = (
    "neuraleq_jax.cli",
    "neuraleq_jax.cli.*",
    "neuraleq_jax.train",
    "neuraleq_jax.evaluate",
)
# where an import inside a function is the design, each with its reason; (importer, imported)
DEFERRED_IMPORTS_ALLOWED = {
    ("neuraleq_jax.cli", "neuraleq_jax.*"): (
        "the command line builds every subcommand's parser at start-up and imports what a "
        "subcommand runs only when it runs, so `neuraleq --help` and a mistyped argument answer "
        "without loading a model's libraries"
    ),
    ("neuraleq_jax.cli.*", "neuraleq_jax.*"): "the same rule, inside each subcommand's module",
    ("neuraleq_jax.system", "neuraleq_jax.training.*"): (
        "the facade imports training, Orbax and optax only when a system trains, saves or "
        "loads: `import neuraleq_jax` and the serving path stay light"
    ),
    ("neuraleq_jax.system", "neuraleq_jax.config"): "the same: the config pulls in the checkpoints",
    ("neuraleq_jax.presets.mapping", "neuraleq_jax.data.curves"): (
        "the 5-band fit (optax) only when a foreign preset must be fitted: reading and "
        "writing presets, on the command line and in the server, stay free of it"
    ),
}


def _deferred_imports() -> set[tuple[str, str]]:
    found = set()
    for name, path in MODULES.items():
        _, deferred = architecture.module_imports(name, path, MODULES)
        found.update((name, target) for target in deferred)
    return found


def _matches(rule: tuple[str, str], importer: str, imported: str) -> bool:
    who, what = rule
    return fnmatch.fnmatchcase(importer, who) and fnmatch.fnmatchcase(imported, what)


def test_the_graph_reader_sees_known_edges():
    graph = architecture.import_graph(deferred=False)
    assert {"neuraleq_jax.config", "neuraleq_jax.model.networks"} <= graph[
        "neuraleq_jax.training.checkpoints"
    ]
    assert "neuraleq_jax.fileio" in graph["neuraleq_jax.config"]
    deferred = architecture.import_graph(deferred=True)
    assert "neuraleq_jax.training.trainer" in deferred["neuraleq_jax.system"]
    assert "neuraleq_jax.training.trainer" not in graph["neuraleq_jax.system"]
    cyclic = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert architecture.cycles(cyclic) == [{"a", "b", "c"}]
    assert architecture.part_of("neuraleq_jax.data.safedb") == "data"
    assert architecture.part_of("neuraleq_jax.config") == "config"


def test_the_package_is_folders_by_concern():
    folders = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert folders >= {
        "model", "data", "training", "metrics", "evaluation", "generation",
        "presets", "explore", "cli", "server", "plots",
    }  # fmt: skip
    top_level = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    # the facade, the config, the entry points and the small shared utilities only
    assert top_level <= {"system", "config", "train", "evaluate", "checks", "fileio", "sharding"}


def test_no_import_cycle_between_modules():
    assert architecture.cycles(architecture.import_graph(deferred=False)) == []
    assert architecture.cycles(architecture.import_graph(deferred=True)) == []


def test_folders_import_downhill():
    """With every import counted, deferred ones too, the folders (and top-level modules) form
    layers: no folder imports one that imports it back, however indirectly."""
    parts = architecture.part_graph(architecture.import_graph(deferred=True))
    assert architecture.cycles(parts) == []
    assert parts["model"] <= {"checks", "fileio"}  # the bottom: the equaliser and the network
    assert "generation" not in parts["metrics"] | parts["data"] | parts["model"]


def test_deferred_imports_only_where_a_reason_is_named():
    deferred = _deferred_imports()
    unexplained = sorted(
        pair for pair in deferred if not any(_matches(r, *pair) for r in DEFERRED_IMPORTS_ALLOWED)
    )
    assert unexplained == [], (
        "import these at module level, or name the reason in DEFERRED_IMPORTS_ALLOWED"
    )
    used = {r for r in DEFERRED_IMPORTS_ALLOWED if any(_matches(r, *pair) for pair in deferred)}
    assert used == set(DEFERRED_IMPORTS_ALLOWED), "a named reason no import needs any more"


def test_library_modules_do_not_import_the_command_lines():
    graph = architecture.import_graph(deferred=True)

    def is_command_line(name):
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in COMMAND_LINES)

    importers = {
        name: sorted(t for t in targets if is_command_line(t))
        for name, targets in graph.items()
        if not is_command_line(name) and any(is_command_line(t) for t in targets)
    }
    assert importers == {}


def test_every_module_imports_in_dependency_order_in_a_fresh_interpreter():
    """Each module, imported after its dependencies, finds every package module it imports at
    module level already loaded, and no module is loaded before its turn. Packages start as
    bare stand-ins (Python runs a package's ``__init__`` before any of its submodules) and
    are imported for real in their own turn."""
    graph = architecture.import_graph(deferred=False)
    order = architecture.dependency_order(graph)
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


def test_tests_mirror_the_folders():
    """Each folder of the package has its tests in the folder of the same name under tests/,
    and each test module there is named for a module of that folder or for the folder itself
    (``test_<name>.py`` or ``test_<name>_<aspect>.py``)."""
    misnamed, missing = [], []
    for folder in sorted(p.parent for p in PACKAGE.glob("*/__init__.py")):
        names = {p.stem for p in folder.glob("*.py")} - {"__init__", "__main__"} | {folder.name}
        tests = sorted((TESTS / folder.name).glob("test_*.py"))
        if not tests:
            missing.append(folder.name)
        for test in tests:
            stem = test.stem.removeprefix("test_")
            if not any(stem == name or stem.startswith(f"{name}_") for name in names):
                misnamed.append(test.relative_to(ROOT).as_posix())
    assert missing == [] and misnamed == []
    # pytest imports test modules by file name: one name per file, whatever its folder
    stems = [p.name for p in TESTS.rglob("test_*.py")]
    assert sorted({s for s in stems if stems.count(s) > 1}) == []


def test_the_architecture_picture_is_drawn_from_the_imports():
    text = architecture.DOC.read_text(encoding="utf-8")
    assert architecture.picture() in text, "run python scripts/architecture.py --write"


def test_the_dataset_registry_holds_the_names_the_config_accepts():
    from neuraleq_jax import config
    from neuraleq_jax.data import registry

    assert tuple(registry.DATASETS) == config.DATASET_NAMES
