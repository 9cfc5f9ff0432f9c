"""Test modules never import from one another (issue 13, point 6): what tests share lives in
tests/support/, so running, moving or deleting one test module never breaks another."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _is_test_module(dotted: str) -> bool:
    name = dotted.rsplit(".", 1)[-1]
    return name.startswith("test_") or name.endswith("_test")


def _imported(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every module this file imports, relative imports resolved."""
    package = list(path.relative_to(root).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append((node.lineno, module))
            # `from tests.unit import test_x` imports the module test_x itself.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def cross_imports(root: Path) -> list[str]:
    """Every import of a test module (a test_*.py file under root/tests) by a module there."""
    offenders = []
    for path in sorted((root / "tests").rglob("*.py")):
        for line, module in _imported(path, root):
            target = root.joinpath(*module.split(".")).with_suffix(".py")
            if module.startswith("tests.") and _is_test_module(module) and target.is_file():
                offenders.append(f"{path.relative_to(root)}:{line} imports {module}")
    return offenders


def test_no_test_module_imports_another() -> None:
    found = cross_imports(ROOT)
    assert not found, "move what is shared into tests/support/:\n" + "\n".join(found)


def test_every_way_of_importing_a_test_module_is_caught(tmp_path: Path) -> None:
    unit = tmp_path / "tests" / "unit"
    unit.mkdir(parents=True)
    (unit / "test_a.py").write_text(
        "from tests.unit.test_b import B\n"
        "from tests.unit import test_c\n"
        "import tests.unit.test_d\n"
        "from .test_e import E\n"
        "from . import test_f\n"
        "from tests.support.fakes import FakeClock\n"
        "from tests.unit import helpers\n"
        "import pytest\n"
    )
    for name in ("test_b", "test_c", "test_d", "test_e", "test_f", "helpers"):
        (unit / f"{name}.py").write_text("B = E = 1\n")
    found = cross_imports(tmp_path)
    assert [f.split(" imports ")[1] for f in found] == [
        "tests.unit.test_b",
        "tests.unit.test_c",
        "tests.unit.test_d",
        "tests.unit.test_e",
        "tests.unit.test_f",
    ]
    assert found[0] == "tests/unit/test_a.py:1 imports tests.unit.test_b"
