"""SQL stays in `datamill/storage/`: no other module of the package imports SQLAlchemy or a
database driver, takes a storage helper that works on a connection (a name starting with
``_``), or opens a transaction itself. Read from the source with `ast`."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import datamill

PACKAGE = Path(datamill.__file__).parent
STORAGE = PACKAGE / "storage"
# SQLAlchemy, and the drivers under it.
FOREIGN = {"sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "psycopg", "psycopg2"}
# `Database`'s ways into a transaction.
TRANSACTIONS = {"read", "write", "write_sqlite"}


def outside_storage() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if STORAGE not in path.parents:
            yield str(path.relative_to(PACKAGE.parent)), ast.parse(path.read_text(), str(path))


def nodes_outside_storage() -> Iterator[tuple[str, ast.AST]]:
    for name, tree in outside_storage():
        yield from ((f"{name}:{getattr(node, 'lineno', 0)}", node) for node in ast.walk(tree))


def test_the_walk_sees_the_package():
    modules = dict(outside_storage())
    assert "datamill/curation/service.py" in modules
    assert not any(name.startswith("datamill/storage/") for name in modules)


def test_no_module_outside_storage_imports_sqlalchemy_or_a_driver():
    found = []
    for where, node in nodes_outside_storage():
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [node.module]
        else:
            continue
        found += [f"{where} imports {m}" for m in modules if m.split(".")[0] in FOREIGN]
    assert found == []


def test_no_module_outside_storage_takes_a_private_storage_helper():
    found = []
    for where, node in nodes_outside_storage():
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("datamill.storage"):
            found += [f"{where} imports {a.name}" for a in node.names if a.name.startswith("_")]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr.startswith("_")
            and ast.unparse(node.func.value).endswith("repo")
        ):
            found.append(f"{where} calls {ast.unparse(node.func)}")
    assert found == []


def test_no_module_outside_storage_opens_a_transaction():
    """Services call repository functions, each of which owns its transaction."""
    found = [
        f"{where} {ast.unparse(item.context_expr)}"
        for where, node in nodes_outside_storage()
        if isinstance(node, ast.AsyncWith)
        for item in node.items
        if isinstance(item.context_expr, ast.Call)
        and isinstance(item.context_expr.func, ast.Attribute)
        and item.context_expr.func.attr in TRANSACTIONS
    ]
    assert found == []
