"""`newsflash restore DIR`: every check first (digests, engine, revision, an audience or keys it
would replace), then the database, then the key files; it never migrates on its own."""

from __future__ import annotations

import argparse
import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cli.backup import backup_path
from cli.command import CliError
from config.settings import Settings, declarations
from core.adapters import db_holders, dumps, pg_tools
from core.adapters.backups import MANIFEST, KeyFile, destination, sha256


@dataclass(frozen=True)
class KeyMove:
    """One key file to put back: from the backup to `dest`; `aside` set when --force replaces
    a different file, which is kept there."""

    source: Path
    dest: Path
    aside: Path | None


def verified_manifest(base: Path) -> dict[str, Any]:
    """The manifest, once every file it lists is there with its size and SHA-256."""
    try:
        manifest: dict[str, Any] = json.loads((base / MANIFEST).read_text(encoding="utf-8"))
        files: dict[str, dict[str, Any]] = manifest["files"]
        database = manifest["database"]
        database["engine"], database["subscriptions"], database["alerts"]
    except (OSError, ValueError, KeyError, TypeError):
        raise CliError(
            f"{base}: no readable {MANIFEST}; not a backup made by `newsflash backup`"
        ) from None
    for name, about in files.items():
        path = backup_path(base, name)
        if not path.is_file():
            raise CliError(f"backup {base} is damaged: {name} is missing; nothing restored")
        if path.stat().st_size != about.get("bytes") or sha256(path) != about.get("sha256"):
            raise CliError(
                f"backup {base} is damaged: {name} does not match its SHA-256 in {MANIFEST} "
                "(changed or truncated); nothing restored"
            )
    return manifest


def _check_revision(revision: str | None, force: bool) -> None:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from core.adapters.migrate import alembic_config

    if revision is None or force:
        return
    try:
        ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except CommandError:
        raise CliError(
            f"the backup's database is at migration {revision}, unknown to this version: it "
            "was made by a newer Newsflash; restore it with that version (or pass --force)"
        ) from None


def _same(source: Path, dest: Path | None, inline: str) -> bool:
    if dest is None:
        return source.read_text(encoding="utf-8").strip() == inline.strip()
    return dest.exists() and dest.read_bytes() == source.read_bytes()


def _inline_value(variable: str, settings: Settings) -> str:
    field = next(d.file_of for d in declarations() if d.env == variable)
    name = next(d.name for d in declarations() if d.env == field)
    return str(getattr(settings, name) or "")


def key_moves(
    manifest: dict[str, Any], base: Path, settings: Settings, force: bool
) -> list[KeyMove]:
    """Where each key file goes; refused (nothing changed) when one would replace a different
    key without --force: readers subscribed with the current VAPID key would be orphaned."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    moves: list[KeyMove] = []
    # The VAPID key first: its refusal is the one that matters most.
    for name, about in sorted(manifest["files"].items(), key=lambda f: "VAPID" not in str(f[1])):
        if about.get("role") != "key":
            continue
        entry = KeyFile(name, str(about["restore_to"]))
        source = backup_path(base, name)
        dest = destination(entry, settings)
        inline = _inline_value(entry.restore_to, settings) if dest is None else ""
        if _same(source, dest, inline):
            continue  # already the same key: nothing to do
        if dest is not None and not dest.exists():
            moves.append(KeyMove(source, dest, None))
            continue
        where = entry.restore_to if dest is None else f"{entry.restore_to} ({dest})"
        if not force:
            why = (
                "the readers subscribed with it would have to subscribe again"
                if "VAPID" in entry.restore_to
                else "what uses the current one would stop working"
            )
            raise CliError(
                f"{where} holds a different key than the backup's {name}; replacing it, {why}: "
                "pass --force to replace it; nothing restored"
            )
        if dest is None:
            variable = next(d.file_of for d in declarations() if d.env == entry.restore_to)
            print(
                f"newsflash: warning: {variable} is set in the environment and stays in effect; "
                f"the backup's copy is {source}"
            )
            continue
        aside = dest.with_name(f"{dest.name}.before-restore-{stamp}") if dest.exists() else None
        moves.append(KeyMove(source, dest, aside))
    return moves


# How long restore waits for workers' answers to its ping (and to reach the broker at all).
PING_TIMEOUT_S = 1.0


def workers_answering(settings: Settings) -> list[str]:
    """The Newsflash workers that answer a ping on the configured broker. A worker left running
    under a restore would carry on with batches whose ledger rows the restore takes back, and
    send their readers the alert again. A broker that does not answer: none known (a restore
    is often made with everything stopped, the broker too)."""
    from core.adapters.celery_queue import make_producer
    from core.adapters.ops_probes import CeleryWorkerProbe

    try:
        return CeleryWorkerProbe(make_producer(settings), PING_TIMEOUT_S).names()
    except Exception:
        return []


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    base: Path = args.dir
    manifest = verified_manifest(base)
    db = manifest["database"]
    here = dumps.engine_of(settings.database_url)
    if db["engine"] != here:
        raise CliError(
            f"the backup holds a {db['engine']} database and NEWSFLASH_DATABASE_URL names "
            f"{here}; restore into the same engine; nothing restored"
        )
    _check_revision(db.get("migration_revision"), args.force)
    running = workers_answering(settings)
    if running:
        raise CliError(
            f"{len(running)} worker(s) answer on the broker ({', '.join(running[:3])}"
            f"{', ...' if len(running) > 3 else ''}): {db_holders.STOP_FIRST}; nothing restored"
        )
    # Stopped from outside (SIGTERM, SIGHUP: cli.main unwinds every one-shot command),
    # pg_restore stops with it and its single transaction rolls back.
    with contextlib.ExitStack() as holding:
        try:
            holding.enter_context(db_holders.alone(settings.database_url))
        except dumps.DumpError as exc:
            raise CliError(f"{exc}; nothing restored") from None
        return _restore(args, settings, manifest, base)


def _restore(
    args: argparse.Namespace, settings: Settings, manifest: dict[str, Any], base: Path
) -> int:
    """Under db_holders.alone: no web app, worker or beat has the database."""
    db = manifest["database"]
    here = dumps.engine_of(settings.database_url)
    target = dumps.live_snapshot(settings.database_url)
    if (target.subscriptions or target.alerts) and not args.force:
        raise CliError(
            f"the configured database already has {target.subscriptions} subscriptions and "
            f"{target.alerts} alerts; restoring replaces them: pass --force; nothing restored"
        )
    moves = key_moves(manifest, base, settings, args.force)
    copy = backup_path(
        base, next(n for n, a in manifest["files"].items() if a["role"] == "database")
    )
    try:
        if here == "sqlite":
            dumps.restore_sqlite(copy, settings.database_url)
        else:
            pg_tools.pg_tool("pg_restore")
            dumps.restore_postgres(copy, settings.database_url)
    except dumps.DumpError as exc:
        raise CliError(f"{exc}; nothing restored") from None
    for move in moves:
        dumps.put_in_place(move.source, move.dest, move.aside)  # a replaced key kept aside
        kept = f" (the one it replaced kept as {move.aside})" if move.aside else ""
        print(f"restored {move.dest}{kept}")
    return _report(db, dumps.live_snapshot(settings.database_url))


def _report(db: dict[str, Any], restored: Any) -> int:
    from cli.args import command_name
    from core.adapters.migrate import head_revision

    print(
        f"restored the database: {restored.subscriptions} subscriptions, {restored.alerts} "
        f"alerts, revision {restored.revision}"
    )
    if (restored.subscriptions, restored.alerts) != (db["subscriptions"], db["alerts"]):
        print(
            f"newsflash: the restored database does not hold what the backup's manifest says "
            f"({db['subscriptions']} subscriptions, {db['alerts']} alerts)"
        )
        return 1
    head = head_revision()
    if restored.revision != head:
        # Not run here: the restore stays the backup as it was, checked against its manifest,
        # and the upgrade runs as every upgrade does, all processes stopped (docs/deployment.md).
        print(
            f"the backup is at migration {restored.revision}, this version's is {head}: run "
            f"`{command_name()} db upgrade` before starting the web app and workers"
        )
    return 0
