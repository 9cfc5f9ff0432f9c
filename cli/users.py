"""`newsflash user ...`: newsroom accounts; every change that affects access ends the user's sessions."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from cli.args import roles
from cli.command import CliError, container
from config.settings import Settings


def cmd_user_create(args: argparse.Namespace, settings: Settings) -> int:
    from core.accounts import check_email, parse_role

    # A wrong role or address is refused before the password is asked for.
    parse_role(args.role)
    check_email(args.email)
    password = _read_password(args.password_stdin)
    user_id, role = container(settings).access.create_user(args.email, password, args.role)
    print(f"created user {args.email} ({role.value}), id {user_id}")
    return 0


def _read_password(from_stdin: bool) -> str:
    password = from_stdin and sys.stdin.readline().rstrip("\n")
    if not password:
        try:
            password = getpass.getpass("Password (12+ characters): ")
            if getpass.getpass("Repeat: ") != password:
                raise CliError("passwords do not match")
        except EOFError:  # no terminal, and nothing on standard input
            raise CliError(
                "password: nothing to read; type it at a terminal or pipe it with --password-stdin"
            ) from None
    return password


def cmd_user_disable(args: argparse.Namespace, settings: Settings) -> int:

    disable = args.user_command == "disable"
    ended = container(settings).access.set_disabled(args.email, disable)
    state = "disabled (cannot log in)" if disable else "enabled"
    print(f"{args.email} {state}; {ended} session(s) ended")
    return 0


def cmd_user_role(args: argparse.Namespace, settings: Settings) -> int:
    role, ended = container(settings).access.set_role(args.email, args.role)
    print(f"{args.email} is now {role.value}; {ended} session(s) ended")
    return 0


def cmd_user_password(args: argparse.Namespace, settings: Settings) -> int:

    password = _read_password(args.password_stdin)
    ended = container(settings).access.set_password(args.email, password)
    print(f"password of {args.email} changed; {ended} session(s) ended")
    return 0


def cmd_user_list(args: argparse.Namespace, settings: Settings) -> int:
    """Every account: email, role, whether it may log in, last login, devices signed in."""
    import json
    import time

    from cli.tables import print_table, when
    from core.ops import iso

    people = container(settings).accounts.list_users(
        time.time(), settings.session_lifetime_s, settings.session_idle_s
    )
    if args.json:
        found = [
            {k: p[k] for k in ("id", "email", "role", "disabled", "sessions")}
            | {"created_at": iso(p["created_at"]), "last_login_at": iso(p["last_login_at"])}
            for p in people
        ]
        print(json.dumps({"users": found}, indent=2))
        return 0
    columns = [("EMAIL", "<"), ("ROLE", "<"), ("STATE", "<"), ("LAST LOGIN", "<")]
    columns += [("SIGNED IN", ">")]
    rows = [
        (
            p["email"],
            p["role"],
            "disabled" if p["disabled"] else "active",
            when(p["last_login_at"], settings.timezone) if p["last_login_at"] else "never",
            p["sessions"],
        )
        for p in people
    ]
    print_table(columns, rows, "no users: add one with newsflash user create")
    return 0


def register(subparsers: Any) -> None:
    user = subparsers.add_parser("user", help="newsroom accounts").add_subparsers(
        dest="user_command", required=True, metavar="ACTION"
    )
    p = user.add_parser("create", help="create a newsroom account (prompts for the password)")
    p.add_argument("--email", required=True)
    p.add_argument("--role", required=True, choices=roles())
    _add_password_stdin(p)
    p.set_defaults(func=cmd_user_create, needs_keys=False)
    p = user.add_parser("list", help="every account: role, state, last login, devices signed in")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_user_list, needs_keys=False)
    for action, text in (
        ("disable", "stop an account from logging in and end all its sessions"),
        ("enable", "let a disabled account log in again"),
    ):
        p = user.add_parser(action, help=text)
        p.add_argument("email", metavar="EMAIL")
        p.set_defaults(func=cmd_user_disable, needs_keys=False)
    p = user.add_parser("role", help="change an account's role (ends its sessions)")
    p.add_argument("email", metavar="EMAIL")
    p.add_argument("--role", required=True, choices=roles())
    p.set_defaults(func=cmd_user_role, needs_keys=False)
    p = user.add_parser("password", help="set an account's password (ends its sessions)")
    p.add_argument("email", metavar="EMAIL")
    _add_password_stdin(p)
    p.set_defaults(func=cmd_user_password, needs_keys=False)


def _add_password_stdin(parser: argparse.ArgumentParser) -> None:
    """The option of every command that reads a password (see _read_password)."""
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
