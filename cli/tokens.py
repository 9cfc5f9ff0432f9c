"""`newsflash token create|list|revoke`: API tokens for the CMS, scripts and Prometheus; a token
is shown once, and a listing shows only the prefix it starts with."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli.args import roles
from cli.command import container
from config.settings import Settings


def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    token, role = container(settings).access.create_token(args.name, args.role)
    print(f"API token {args.name!r} ({role.value}). It is shown once; store it now:")
    print(token)
    return 0


def cmd_token_list(args: argparse.Namespace, settings: Settings) -> int:
    """Each token's id, the prefix it starts with (never the token), role, state and name."""
    from cli.tables import print_table, when

    tokens = container(settings).accounts.list_tokens()
    if args.json:
        print(json.dumps({"tokens": [token_json(row) for row in tokens]}, indent=2))
        return 0
    columns = [("ID", ">"), ("STARTS WITH", "<"), ("ROLE", "<"), ("STATE", "<")]
    columns += [("CREATED", "<"), ("NAME", "<")]
    rows = [
        (
            row["id"],
            f"{row['prefix']}…",
            row["role"],
            "revoked" if row["revoked_at"] else "active",
            when(row["created_at"], settings.timezone),
            row["name"],
        )
        for row in tokens
    ]
    print_table(columns, rows, "no tokens")
    return 0


def token_json(row: dict[str, Any]) -> dict[str, Any]:
    from core.ops import iso

    found = {k: row[k] for k in ("id", "name", "prefix", "role", "created_by")}
    return found | {"created_at": iso(row["created_at"]), "revoked_at": iso(row["revoked_at"])}


def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    container(settings).access.revoke_token(args.id)
    print(f"revoked token {args.id}")
    return 0


def register(subparsers: Any) -> None:
    token = subparsers.add_parser(
        "token", help="API tokens for the CMS, scripts and Prometheus"
    ).add_subparsers(dest="token_command", required=True, metavar="ACTION")
    p = token.add_parser(
        "create", help="create a token; it is printed once, alone on the last line"
    )
    p.add_argument("--name", required=True)
    p.add_argument("--role", required=True, choices=roles())
    p.set_defaults(func=cmd_token_create, needs_keys=False)
    p = token.add_parser("list", help="list tokens (never their values)")
    p.add_argument("--json", action="store_true", help="the same, for machines")
    p.set_defaults(func=cmd_token_list, needs_keys=False)
    p = token.add_parser("revoke", help="revoke a token by id")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_token_revoke, needs_keys=False)
