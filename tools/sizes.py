"""Size limits: no module over ~500 lines, no function over ~60 (issue 13, point 7).

    python tools/sizes.py          # prints every offender, exit 1 if any is not allowed
    python tools/sizes.py --all    # the largest modules and functions, offenders or not

Counted: physical lines of each .py file in core/, service/, workers/ and config/, and each
function's span from its `def` (decorators excluded) to its last line, docstring included, in
those and cli/. Data literals are left out: migrations and the OpenAPI document, and inside a
function a mapping literal of named options (a `{"key": value, ...}` of ten lines or more, such
as the Celery configuration) counts as one line.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULE_PACKAGES = ("core", "service", "workers", "config")
PACKAGES = (*MODULE_PACKAGES, "cli")  # functions
LITERAL_MIN = 10
MODULE_MAX = 500
FUNCTION_MAX = 60
EXEMPT = ("core/adapters/migrations/", "service/openapi.py")
# Modules another helper is shrinking right now (none: the editor's split is done).
ALLOWED: dict[str, str] = {}


@dataclass(frozen=True)
class Offender:
    path: str
    name: str  # "" for the module itself
    lines: int
    limit: int

    def __str__(self) -> str:
        what = self.path if not self.name else f"{self.path}:{self.name}"
        return f"{self.lines:5d} lines (limit {self.limit})  {what}"


def _span(node: ast.AST) -> int:
    return (getattr(node, "end_lineno", None) or node.lineno) - node.lineno + 1  # type: ignore[attr-defined]


def _literal_lines(function: ast.AST) -> int:
    """Lines inside the outermost mapping literals with string keys (ten lines or more)."""
    saved = 0
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue  # measured on its own
        named = isinstance(node, ast.Dict) and all(
            isinstance(k, ast.Constant) and isinstance(k.value, str) for k in node.keys
        )
        if named and _span(node) >= LITERAL_MIN:
            saved += _span(node) - 1
            continue
        stack.extend(ast.iter_child_nodes(node))
    return saved


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = prefix + node.name
            found.append((name, _span(node) - _literal_lines(node)))
            found.extend(_functions(node, name + "."))
        elif isinstance(node, ast.ClassDef):
            found.extend(_functions(node, prefix + node.name + "."))
    return found


def measure(root: Path = ROOT) -> tuple[list[Offender], list[Offender]]:
    """(modules, functions) with their sizes, largest first."""
    modules: list[Offender] = []
    functions: list[Offender] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith(EXEMPT):
                continue
            text = path.read_text(encoding="utf-8")
            if package in MODULE_PACKAGES:
                modules.append(Offender(rel, "", len(text.splitlines()), MODULE_MAX))
            for name, n in _functions(ast.parse(text)):
                functions.append(Offender(rel, name, n, FUNCTION_MAX))
    return (
        sorted(modules, key=lambda o: -o.lines),
        sorted(functions, key=lambda o: -o.lines),
    )


def offenders(root: Path = ROOT) -> list[Offender]:
    """What is over a limit and not in a module on the allow-list."""
    modules, functions = measure(root)
    return [o for o in modules + functions if o.lines > o.limit and o.path not in ALLOWED]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--all", action="store_true", help="the 15 largest of each, offenders or not"
    )
    args = parser.parse_args(argv)
    if args.all:
        modules, functions = measure()
        for o in modules[:15] + functions[:15]:
            print(o)
        return 0
    found = offenders()
    for o in found:
        print(o)
    for path, why in sorted(ALLOWED.items()):
        print(f"allowed for now: {path} ({why})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
