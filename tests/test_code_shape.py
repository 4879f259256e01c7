"""Functions stay short: no function (or method) over 60 lines in neuraleq_jax/. Counted from
the sources with ast, so a change that grows one past the limit fails here with its name, not
in a reviewer's eye. Modules have no line limit: a module holds one concern whole, however
long that is (docs/architecture.md says which concern lives where)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "neuraleq_jax"
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_scan_sees_the_package():
    names = {path.relative_to(PACKAGE).as_posix() for path in _modules()}
    assert {"__init__.py", "model/paramspace.py", "system.py"} <= names


def test_no_function_over_the_limit():
    long = {}
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(PACKAGE).as_posix()}:{node.lineno} {node.name}"] = (
                        lines
                    )
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (make named steps): {long}"
