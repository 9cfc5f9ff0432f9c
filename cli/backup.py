"""`newsflash backup --out DIR` and `newsflash restore DIR`: the audience (the database) and the
keys it is bound to (the VAPID key above all: lose it and every reader must subscribe again),
with a manifest of digests that a restore checks before it changes anything."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from cli.command import CliError
from config.settings import Settings, declarations

FORMAT = "newsflash-backup/1"
MANIFEST = "manifest.json"
DATABASE_FILES = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
FROM_ENVIRONMENT = "from environment, not copied"
# Files `newsflash init` writes under var/ that are no setting's *_FILE but belong to the key.
VAR_FILES = ("vapid_subject", "vapid_public.txt")


@dataclass(frozen=True)
class KeyFile:
    """One key or secret file: its name in the backup and the variable that says where it
    lives ("NEWSFLASH_VAPID_PRIVATE_KEY_FILE", or "var/vapid_subject" for init's own files)."""

    name: str
    restore_to: str


def _key_files(settings: Settings) -> Iterator[tuple[KeyFile, Path | None, str | None]]:
    """Each key file the settings point at: (entry, its path now or None, the inline variable
    giving the secret instead, when that is set)."""
    declared = declarations()
    by_env = {d.env: d for d in declared}
    for d in declared:
        if d.file_of is None:
            continue
        inline = by_env[d.file_of]
        path: Path | None = getattr(settings, d.name)
        given_inline = path is None and bool(getattr(settings, inline.name))
        name = "keys/" + d.env.removeprefix("NEWSFLASH_").lower()
        yield KeyFile(name, d.env), path, inline.env if given_inline else None
    for var_name in VAR_FILES:
        yield KeyFile(f"keys/{var_name}", f"var/{var_name}"), settings.var_dir / var_name, None


def _destination(entry: KeyFile, settings: Settings) -> Path | None:
    if entry.restore_to.startswith("var/"):
        return settings.var_dir / entry.restore_to.removeprefix("var/")
    field = next(d.name for d in declarations() if d.env == entry.restore_to)
    path: Path | None = getattr(settings, field)
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _private_copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, source.open("rb") as f:
        shutil.copyfileobj(f, out)
        out.flush()
        os.fsync(out.fileno())


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


def _vapid_public_key(settings: Settings) -> str | None:
    if not settings.vapid_private_key_pem:
        return None
    from core.adapters.push_crypto import VapidSigner

    try:
        return VapidSigner(settings.vapid_private_key_pem, "mailto:x@x.invalid").public_key_b64
    except Exception:
        return None


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from core.adapters import dumps
    from core.adapters.migrate import head_revision

    out: Path = args.out
    started = time.monotonic()
    made = _new_out_dir(out)
    try:
        engine = dumps.engine_of(settings.database_url)
        db_name = DATABASE_FILES[engine]
        copy = dumps.backup_sqlite if engine == "sqlite" else dumps.backup_postgres
        try:
            snap = copy(settings.database_url, out / db_name)
        except dumps.DumpError as exc:
            raise CliError(str(exc)) from None
        files: dict[str, dict[str, Any]] = {db_name: {"role": "database"}}
        not_copied: dict[str, str] = {}
        for entry, path, inline in _key_files(settings):
            if inline is not None:
                not_copied[inline] = FROM_ENVIRONMENT
            elif path is not None and path.is_file():
                _private_copy(path, out / entry.name)
                files[entry.name] = {"role": "key", "restore_to": entry.restore_to}
        for name, about in files.items():
            about["bytes"] = (out / name).stat().st_size
            about["sha256"] = _sha256(out / name)
        manifest = _manifest(settings, snap, head_revision(), files, not_copied)
        fd = os.open(out / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
            f.write("\n")
    except BaseException:
        if made:
            shutil.rmtree(out, ignore_errors=True)
        raise
    size_mb = sum(a["bytes"] for a in files.values()) / 1e6
    print(
        f"backup written to {out}: {snap.subscriptions} subscriptions, {snap.alerts} alerts, "
        f"{engine} at revision {snap.revision}, {size_mb:.1f} MB in {time.monotonic() - started:.1f} s"
    )
    for name in sorted(files):
        print(f"  {name}")
    for variable in sorted(not_copied):
        print(f"  {variable}: {FROM_ENVIRONMENT} (keep it in your secret store)")
    return 0


def _manifest(
    settings: Settings,
    snap: Any,
    head: str | None,
    files: dict[str, dict[str, Any]],
    not_copied: dict[str, str],
) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        newsflash_version = version("newsflash")
    except PackageNotFoundError:
        newsflash_version = "unknown"
    return {
        "format": FORMAT,
        "newsflash_version": newsflash_version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": {
            "engine": snap.engine,
            "migration_revision": snap.revision,
            "migration_head_of_this_version": head,
            "subscriptions": snap.subscriptions,
            "alerts": snap.alerts,
        },
        # The public half only: which key the readers in this backup are bound to.
        "vapid_public_key": _vapid_public_key(settings),
        "files": files,
        "not_copied": not_copied,
    }


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
