"""`newsflash backup --out DIR` and `newsflash restore DIR`: the audience (the database) and the
keys it is bound to (the VAPID key above all: lose it and every reader must subscribe again),
with a manifest of digests that a restore checks before it changes anything."""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path, PurePosixPath
from typing import Any

from cli.command import CliError
from config.settings import Settings


def _new_out_dir(out: Path) -> bool:
    """Make (or take, when empty) the backup directory, 0700; True when made here."""
    if out.exists():
        if not out.is_dir() or any(out.iterdir()):
            raise CliError(f"--out {out}: exists and is not empty; name a new directory")
        os.chmod(out, 0o700)
        return False
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.mkdir(mode=0o700)
    except OSError as exc:
        raise CliError(f"--out {out}: cannot create it ({exc.strerror})") from None
    os.chmod(out, 0o700)  # whatever the umask
    return True


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from core.adapters.backups import FROM_ENVIRONMENT, BackupError, write_backup

    out: Path = args.out
    started = time.monotonic()
    made = _new_out_dir(out)
    try:
        # Stopped from outside (SIGTERM, SIGHUP: cli.main unwinds every one-shot command),
        # pg_dump stops with it and the half-written directory goes.
        written = write_backup(settings, out, time.time())
    except BackupError as exc:
        if made:
            shutil.rmtree(out, ignore_errors=True)
        raise CliError(str(exc)) from None
    except BaseException:
        if made:
            shutil.rmtree(out, ignore_errors=True)
        raise
    snap = written.snapshot
    print(
        f"backup written to {out}: {snap.subscriptions} subscriptions, {snap.alerts} alerts, "
        f"{snap.engine} at revision {snap.revision}, {written.size_bytes / 1e6:.1f} MB in "
        f"{time.monotonic() - started:.1f} s"
    )
    for name in sorted(written.files):
        print(f"  {name}")
    for variable in sorted(written.not_copied):
        print(f"  {variable}: {FROM_ENVIRONMENT} (keep it in your secret store)")
    return 0


def register(subparsers: Any) -> None:
    from cli.restore import cmd_restore

    p = subparsers.add_parser(
        "backup", help="copy the database and the key files into a new directory"
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="a new directory")
    p.set_defaults(func=cmd_backup, needs_keys=False)
    r = subparsers.add_parser("restore", help="put a backup made by `backup` back in place")
    r.add_argument("dir", type=Path, metavar="DIR", help="the backup's directory")
    r.add_argument(
        "--force",
        action="store_true",
        help="restore over a database that has subscriptions or alerts, and over different keys "
        "(the old key files are kept beside as *.before-restore-TIME)",
    )
    r.set_defaults(func=cmd_restore, needs_keys=False, missing_files_ok=True)


def backup_path(base: Path, name: str) -> Path:
    """A manifest's file name inside the backup, refusing one that climbs out of it."""
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or ".." in parts:
        raise CliError(f"backup {base}: the manifest names a file outside it ({name!r})")
    return base.joinpath(*parts)
