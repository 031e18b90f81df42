"""Dependency floors that carry security fixes: pyproject.toml admits no version without
them, and the installed version meets them."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent

# Package -> the last version with a known hole datamill's use of it reaches.
UNSAFE = {
    # Sandbox escapes: CVE-2024-56201 and CVE-2024-56326 (fixed in 3.1.5), CVE-2025-27516
    # (`|attr` reaching str.format, fixed in 3.1.6). Generation specs are untrusted templates.
    "jinja2": "3.1.5",
}


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {r.name.lower(): r for r in map(Requirement, project["dependencies"])}


@pytest.mark.parametrize(("name", "unsafe"), UNSAFE.items())
def test_no_version_with_a_known_hole_is_admitted(name: str, unsafe: str):
    requirement = _requirements()[name]
    assert not requirement.specifier.contains(unsafe), f"{requirement} admits {unsafe}"
    assert requirement.specifier.contains(version(name)), f"installed {name} {version(name)}"
