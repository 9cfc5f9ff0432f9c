"""`newsflash db upgrade`: apply the migrations and bring the topics table up to the settings."""

from __future__ import annotations

import argparse
from typing import Any

from cli.command import CliError
from config.settings import Settings


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from cli.failures import brief, safe_url
    from core.adapters import migrate
    from core.adapters.sql import make_engine, sync_topics

    engine = make_engine(settings.database_url)
    try:
        migrate.upgrade(engine)
        sync_topics(engine, settings.topics)
    except Exception as exc:
        raise CliError(
            f"NEWSFLASH_DATABASE_URL: could not migrate the database ({brief(exc)})"
        ) from None
    print(
        f"database at revision {migrate.current_revision(engine)} ({safe_url(settings.database_url)})"
    )
    return 0


def register(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True, metavar="ACTION"
    )
    p = db.add_parser("upgrade", help="apply migrations")
    p.set_defaults(func=cmd_db_upgrade, needs_keys=False)
