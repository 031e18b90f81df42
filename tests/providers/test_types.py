"""The values a provider call shares live below their users: `providers/types.py` imports
nothing of the providers package, the HTTP client never reaches back into the provider
contract (`base.py` imports it, not the other way), and the scheduler takes its provider
types from `types.py`."""

from __future__ import annotations

import ast
from pathlib import Path

import datamill

PACKAGE = Path(datamill.__file__).parent


def _runtime_imports(module: str) -> set[str]:
    """The datamill modules ``module`` imports when it runs (not those imported only for
    type checking)."""
    path = PACKAGE.joinpath(*module.split(".")[1:])
    source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.ImportFrom) and (child.module or "").startswith("datamill"):
                found.add(str(child.module))
            visit(child)

    visit(ast.parse(source.read_text()))
    return found


def _reachable(module: str) -> set[str]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        for imported in _runtime_imports(current):
            exists = PACKAGE.joinpath(*imported.split(".")[1:])
            if imported not in seen and (exists.is_dir() or exists.with_suffix(".py").exists()):
                seen.add(imported)
                todo.append(imported)
    return seen


def test_the_shared_values_import_nothing_of_the_providers():
    assert not {m for m in _runtime_imports("datamill.providers.types") if ".providers" in m}


def test_the_http_client_never_reaches_the_provider_contract():
    assert "datamill.providers.base" not in _reachable("datamill.providers.http")


def test_the_scheduler_takes_its_provider_types_from_types_py():
    for path in sorted((PACKAGE / "scheduler").glob("*.py")):
        imported = _runtime_imports(f"datamill.scheduler.{path.stem}")
        assert "datamill.providers.base" not in imported, path.name
