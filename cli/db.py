"""`newsflash db upgrade`: apply the migrations and bring the topics table up to the settings."""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from typing import Any

from cli.args import number
from cli.command import CliError
from cli.failures import brief, safe_url
from config.settings import Settings

# A migration that alters a table queues for its lock behind every transaction reading it, and
# every new read of that table queues behind the migration: the app stalls while it waits. So
# each attempt waits at most LOCK_TIMEOUT_S (readers queued behind it wait that long, then go on)
# and the upgrade tries again, with pauses, until RETRY_FOR_S has passed.
LOCK_TIMEOUT_S = 2.0
RETRY_FOR_S = 60.0
PAUSES_S = (1.0, 2.0, 4.0, 8.0, 15.0)


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from core.adapters import migrate
    from core.adapters.sql import make_engine, sync_topics

    engine = make_engine(settings.database_url)
    try:
        _upgrade_when_granted(engine, args.lock_timeout, args.retry_for)
        sync_topics(engine, settings.topics)
    except CliError:
        raise
    except Exception as exc:
        raise CliError(
            f"NEWSFLASH_DATABASE_URL: could not migrate the database ({brief(exc)})"
        ) from None
    print(
        f"database at revision {migrate.current_revision(engine)} ({safe_url(settings.database_url)})"
    )
    return 0


def _upgrade_when_granted(engine: Any, lock_timeout_s: float, retry_for_s: float) -> None:
    from core.adapters import migrate

    deadline = time.monotonic() + retry_for_s
    for attempt in itertools.count():
        try:
            migrate.upgrade(engine, lock_timeout_s=lock_timeout_s)
            return
        except Exception as exc:
            if not migrate.lock_refused(exc):
                raise
            holders = "; ".join(migrate.oldest_transactions(engine)) or "none open now"
            pause = PAUSES_S[min(attempt, len(PAUSES_S) - 1)]
            if time.monotonic() + pause >= deadline:
                raise CliError(
                    f"could not migrate: a table's lock was not granted within {lock_timeout_s:g} s "
                    f"in {attempt + 1} tries over {retry_for_s:g} s; nothing applied. Oldest open "
                    f"transactions: {holders}. Try again once they end (--retry-for to wait longer)"
                ) from None
            print(
                f"a table's lock was not granted within {lock_timeout_s:g} s (oldest open "
                f"transactions: {holders}); trying again in {pause:g} s",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(pause)


def register(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True, metavar="ACTION"
    )
    p = db.add_parser("upgrade", help="apply migrations")
    p.add_argument(
        "--lock-timeout",
        type=number(0, 3600),
        default=LOCK_TIMEOUT_S,
        metavar="S",
        help="PostgreSQL: give up a try after waiting this long for a table's lock, so the app "
        f"never waits longer behind it (0: wait as long as it takes; default {LOCK_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--retry-for",
        type=number(0, 86400),
        default=RETRY_FOR_S,
        metavar="S",
        help=f"keep trying for this long before giving up (default {RETRY_FOR_S:g})",
    )
    p.set_defaults(func=cmd_db_upgrade, needs_keys=False)
