"""`newsflash settings`: the effective settings (secrets masked), or the docs table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from config.listing import effective_lines, markdown_table, with_table
from config.loading import read_environment
from config.settings import Settings


def cmd_settings(args: argparse.Namespace, settings: Settings) -> int:
    if args.write:
        for path in map(Path, args.write):
            try:
                path.write_text(with_table(path.read_text(encoding="utf-8")), encoding="utf-8")
            except (OSError, ValueError) as exc:
                print(f"newsflash: {path}: {exc}", file=sys.stderr)
                return 2
            print(f"updated the settings table in {path}")
    elif args.markdown:
        print(markdown_table(), end="")
    else:
        print("\n".join(effective_lines(settings, read_environment())))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "settings", help="print the effective settings (secrets masked), or the docs table"
    )
    p.add_argument(
        "--markdown", action="store_true", help="the settings table for docs/settings.md"
    )
    p.add_argument(
        "--write",
        nargs="+",
        metavar="FILE",
        help="replace the generated settings table in these files (docs/settings.md)",
    )
    p.set_defaults(func=cmd_settings, needs_keys=False)
