"""docs/architecture.md against the tree: every package and module is on the map, every import
between datamill's packages goes down the layers the doc lists, and each job named in "One
place for each job" is done in that place and nowhere else."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from tests.test_docs import read, section, table_rows

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "datamill"
DOC = read("docs/architecture.md")


def top_level_units() -> set[str]:
    """datamill's top-level packages and modules, as the map names them (``storage/``,
    ``errors.py``)."""
    units = set()
    for path in PACKAGE.iterdir():
        if path.is_dir() and (path / "__init__.py").exists():
            units.add(f"{path.name}/")
        elif path.suffix == ".py" and path.name != "__init__.py":
            units.add(path.name)
    return units


def tree_map() -> dict[str, str]:
    """The map's entries: a top-level unit and the text that describes it."""
    block = section(DOC, "## Where things live").split("```")[1]
    entries: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        match = re.match(r"^  (\S+)\s*(.*)$", line)
        if match:
            current = match.group(1)
            entries[current] = match.group(2)
        elif current and line.startswith("    "):
            entries[current] += " " + line.strip()
    return entries


def test_the_map_names_every_package_and_nothing_that_is_gone() -> None:
    entries = set(tree_map())
    assert entries == top_level_units(), (
        f"missing from the map: {sorted(top_level_units() - entries)}; "
        f"on the map but gone: {sorted(entries - top_level_units())}"
    )


def test_the_map_names_every_module_of_each_package() -> None:
    missing = []
    for unit, text in tree_map().items():
        if not unit.endswith("/"):
            continue
        folder = PACKAGE / unit.rstrip("/")
        for path in folder.iterdir():
            if path.name in {"__init__.py", "__pycache__", "py.typed"}:
                continue
            if path.is_dir() and not (path / "__init__.py").exists():
                continue  # data, templates, static files, migrations' versions
            name = f"{path.name}/" if path.is_dir() else path.name
            if not re.search(rf"(?<![\w/]){re.escape(name)}", text):
                missing.append(f"{unit}{name}")
    assert not missing, f"modules the map does not name: {missing}"


def layers() -> list[set[str]]:
    """The import layers, top first: each row's packages may import only rows below."""
    rows = table_rows(section(DOC, "## Import direction"))
    result = []
    for key, cells in rows.items():
        if not key.isdigit():
            continue
        result.append({name.strip(" `") for name in cells[1].split(",")})
    return result


def imports_of(path: Path) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno


def unit_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "datamill" or len(parts) < 2:
        return None
    return parts[1]


def test_every_package_has_a_layer() -> None:
    named = set().union(*layers())
    units = {unit.removesuffix("/").removesuffix(".py") for unit in top_level_units()}
    assert named == units, (
        f"without a layer: {sorted(units - named)}; a layer names what is gone: "
        f"{sorted(named - units)}"
    )


def test_imports_go_down_the_layers() -> None:
    rank = {name: index for index, row in enumerate(layers()) for name in row}
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        here = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for module, line in imports_of(path):
            there = unit_of(module)
            if there is None or there == here:
                continue
            if rank[there] <= rank[here]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not wrong, "imports against the layers of docs/architecture.md:\n" + "\n".join(wrong)


def test_datamill_does_not_import_its_test_aids() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in PACKAGE.rglob("*.py")
        for module, line in imports_of(path)
        if module.split(".")[0] in {"datamill_testing", "aiohttp", "tests"}
    ]
    assert not wrong, f"the runtime package imports test aids: {wrong}"


def sources(folder: Path = PACKAGE) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(folder.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def within(path: Path, *places: str) -> bool:
    """Whether ``path`` is one of ``places`` (files or folders, relative to the package)."""
    relative = path.relative_to(PACKAGE).as_posix()
    return any(
        relative == place or relative.startswith(place.rstrip("/") + "/") for place in places
    )


def one_place_rows() -> dict[str, list[str]]:
    return table_rows(section(DOC, "## One place for each job"))


def test_the_one_place_table_names_modules_that_exist() -> None:
    for job, cells in one_place_rows().items():
        if job == "job":
            continue
        named = re.findall(r"`([\w/.]+\.py|[\w]+/)`", cells[1])
        assert named, f"the row {job!r} names no module"
        for place in named:
            assert (PACKAGE / place).exists(), f"{job}: {place} is not in datamill/"


# What `render/` builds: the wire objects of stored records.
RENDERED = {
    "BatchObject",
    "FileObject",
    "DatasetObject",
    "SampleObject",
    "GenerationJobObject",
    "GenerationCellObject",
    "GenerationRunObject",
}


def test_stored_records_are_rendered_only_in_render() -> None:
    wrong = []
    for path, tree in sources():
        if within(path, "render/", "protocol/"):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr.startswith("model_"):
                func = func.value  # BatchObject.model_validate(...)
            if isinstance(func, ast.Name) and func.id in RENDERED:
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} builds {func.id}")
    assert not wrong, "render/ is the one place for wire objects:\n" + "\n".join(wrong)


def test_row_locks_are_taken_only_in_leasing() -> None:
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        if within(path, "storage/leasing.py"):
            continue
        text = path.read_text(encoding="utf-8")
        for needle in ("SKIP LOCKED", "FOR UPDATE", "with_for_update"):
            if needle in text:
                wrong.append(f"{path.relative_to(ROOT)} says {needle}")
    assert not wrong, "claims go through storage/leasing.py:\n" + "\n".join(wrong)


def test_only_dispatch_calls_an_adapter() -> None:
    wrong = []
    for path, tree in sources():
        if within(path, "providers/", "scheduler/dispatch.py"):
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in {"complete", "stream", "embed"}:
                continue
            receiver = node.func.value
            name = receiver.id if isinstance(receiver, ast.Name) else getattr(receiver, "attr", "")
            if name == "provider":
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} calls an adapter")
    assert not wrong, "calls go to deployments through scheduler/dispatch.py:\n" + "\n".join(wrong)


# The entry points wire side tasks through the runtime's supervisor; they start no
# long-lived task of their own (what they await is their command's own work).
ENTRY_POINTS = ("runtime.py", "api/app.py", "cli/server.py")


def test_entry_points_start_side_tasks_through_the_supervisor() -> None:
    wrong = []
    for path, tree in sources():
        if not within(path, *ENTRY_POINTS):
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr in {"create_task", "ensure_future"}:
                argument = ast.unparse(node.args[0]) if node.args else ""
                if not argument.startswith(("runtime.side_tasks.", "stopping.wait")):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} {argument}")
    assert not wrong, "a side task starts under supervisor.py:\n" + "\n".join(wrong)


# Sleeps that are not waiting for time: a yield to the loop, and the WAL switch's retry
# while the store opens, before any clock is handed to it.
UNTIMED_SLEEPS = {"storage/database.py"}


def test_sleeps_go_through_the_clock() -> None:
    wrong = []
    for path, tree in sources():
        if within(path, "clock.py", *UNTIMED_SLEEPS):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) == "asyncio.sleep"
                and not (node.args and ast.unparse(node.args[0]) == "0")
            ):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not wrong, "sleep through the clock (clock.py):\n" + "\n".join(wrong)
