"""Which package may import which: smtp/ and mailferry/ never import Flask or app/, bench/ and harness/ never
import tests/ (what the bench and the tests share lives in harness/)."""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORBIDDEN = {"bench": ("tests",), "harness": ("tests", "bench"), "smtp": ("flask", "app"), "mailferry": ("flask", "app")}


def _imports(path: str) -> set[str]:
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_in_their_layer(package):
    found = []
    for folder, _dirs, files in os.walk(os.path.join(ROOT, package)):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                found += [(os.path.relpath(path, ROOT), imported) for imported in _imports(path)
                          if imported.split(".")[0] in FORBIDDEN[package]]
    assert not found, found
