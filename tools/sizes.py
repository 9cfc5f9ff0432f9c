"""Size limits: no module over ~500 lines, no function over ~60 (issue 13, point 7).

    python tools/sizes.py          # prints every offender, exit 1 if any is not allowed
    python tools/sizes.py --all    # the largest modules and functions, offenders or not

Counted: physical lines of each .py file under the packages below, and each function's span
from its `def` (decorators excluded) to its last line, docstring included. Data literals are
left out: migrations and the OpenAPI document are declarations, not code.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "service", "workers", "config", "cli")
MODULE_MAX = 500
FUNCTION_MAX = 60
EXEMPT = ("core/adapters/migrations/", "service/openapi.py")
# Modules another helper is shrinking right now (issue 14.2: the sender; 15.2: the editor's split).
ALLOWED = {
    "service/editor.py": "the reports work splits it",
}


@dataclass(frozen=True)
class Offender:
    path: str
    name: str  # "" for the module itself
    lines: int
    limit: int

    def __str__(self) -> str:
        what = self.path if not self.name else f"{self.path}:{self.name}"
        return f"{self.lines:5d} lines (limit {self.limit})  {what}"


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = prefix + node.name
            found.append((name, (node.end_lineno or node.lineno) - node.lineno + 1))
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
