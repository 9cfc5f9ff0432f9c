"""What `newsflash backup` writes, in one place for the CLI and for beat's scheduled backups:
the database copy (core/adapters/dumps.py), the key files the settings point at and a manifest
of SHA-256 digests; and the scheduled side: which directories in NEWSFLASH_BACKUP_DIR are
scheduled backups (only those are ever rotated away) and one run of the schedule, which writes
into `<name>.partial` and renames it to `<name>` only once complete."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from config.settings import Settings, declarations
from core.adapters import dumps

FORMAT = "newsflash-backup/1"
MANIFEST = "manifest.json"
DATABASE_FILES = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
FROM_ENVIRONMENT = "from environment, not copied"
# Files `newsflash init` writes under var/ that are no setting's *_FILE but belong to the key.
VAR_FILES = ("vapid_subject", "vapid_public.txt")
# A scheduled backup's directory name: its UTC start time, so names sort oldest first.
SCHEDULED_NAME = re.compile(r"^\d{8}T\d{6}Z$")
# A scheduled run in progress writes here; one left over was killed part way (the lock says no
# other run is writing), so the next run deletes it. It never counts as a backup.
PARTIAL_SUFFIX = ".partial"
SCHEDULED_BY = "schedule"

log = logging.getLogger("newsflash.backups")


class BackupError(Exception):
    """A backup that could not be written; one line, no password, no endpoint."""


@dataclass(frozen=True)
class KeyFile:
    """One key or secret file: its name in the backup and the variable that says where it
    lives ("NEWSFLASH_VAPID_PRIVATE_KEY_FILE", or "var/vapid_subject" for init's own files)."""

    name: str
    restore_to: str


@dataclass(frozen=True)
class Written:
    """A backup written: what the copy holds, its files (name -> role, bytes, sha256) and the
    secrets given inline, which it cannot hold."""

    snapshot: dumps.Snapshot
    files: dict[str, dict[str, Any]]
    not_copied: dict[str, str]

    @property
    def size_bytes(self) -> int:
        return sum(int(about["bytes"]) for about in self.files.values())


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


def destination(entry: KeyFile, settings: Settings) -> Path | None:
    """Where a restore puts a backed-up key file under these settings."""
    if entry.restore_to.startswith("var/"):
        return settings.var_dir / entry.restore_to.removeprefix("var/")
    field = next(d.name for d in declarations() if d.env == entry.restore_to)
    path: Path | None = getattr(settings, field)
    return path


def sha256(path: Path) -> str:
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


def _vapid_public_key(settings: Settings) -> str | None:
    if not settings.vapid_private_key_pem:
        return None
    from core.adapters.push_crypto import VapidSigner

    try:
        return VapidSigner(settings.vapid_private_key_pem, "mailto:x@x.invalid").public_key_b64
    except Exception:
        return None


def write_backup(settings: Settings, out: Path, now: float, made_by: str | None = None) -> Written:
    """Write a backup into `out`, an empty directory the caller made (and removes when this
    raises). The manifest is written last: a directory without one is no backup."""
    from core.adapters.migrate import head_revision

    engine = dumps.engine_of(settings.database_url)
    db_name = DATABASE_FILES[engine]
    copy = dumps.backup_sqlite if engine == "sqlite" else dumps.backup_postgres
    try:
        snap = copy(settings.database_url, out / db_name)
    except dumps.DumpError as exc:
        raise BackupError(str(exc)) from None
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
        about["sha256"] = sha256(out / name)
    manifest = _manifest(settings, snap, head_revision(), files, not_copied, now)
    if made_by is not None:
        manifest["made_by"] = made_by
    fd = os.open(out / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    return Written(snap, files, not_copied)


def _manifest(
    settings: Settings,
    snap: dumps.Snapshot,
    head: str | None,
    files: dict[str, dict[str, Any]],
    not_copied: dict[str, str],
    now: float,
) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        newsflash_version = version("newsflash")
    except PackageNotFoundError:
        newsflash_version = "unknown"
    return {
        "format": FORMAT,
        "newsflash_version": newsflash_version,
        "created_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
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


# -- scheduled backups (beat, core/adapters/celery_queue.py) -----------------------------------

# Beat asks this often whether a backup is due; a run up to half of it early counts as due, so
# backups keep to EVERY_H instead of slipping a beat period later each time.
SCHEDULE_CHECK_S = 600.0
STATE_KEY = "newsflash:backup:state"
LOCK_KEY = "newsflash:backup:lock"


class BackupState(Protocol):
    """Shared by every worker: one scheduled run at a time, and the last success and failure
    for /metrics and `newsflash status` (Redis: RedisBackupState)."""

    def try_lock(self, ttl_s: float) -> str | None: ...
    def unlock(self, token: str) -> None: ...
    def succeeded(self, at: float) -> None: ...
    def failed(self, at: float) -> None: ...
    def read(self) -> dict[str, float]: ...


class RedisBackupState:
    # Deletes the lock only while it is still this run's (it may have expired and been taken).
    _UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"

    def __init__(self, client: Any) -> None:
        self.client = client

    def try_lock(self, ttl_s: float) -> str | None:
        token = os.urandom(16).hex()
        taken = self.client.set(LOCK_KEY, token, nx=True, px=max(1000, int(ttl_s * 1000)))
        return token if taken else None

    def unlock(self, token: str) -> None:
        self.client.eval(self._UNLOCK, 1, LOCK_KEY, token)

    def succeeded(self, at: float) -> None:
        self.client.hset(STATE_KEY, "last_success_at", repr(at))

    def failed(self, at: float) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(STATE_KEY, "last_failure_at", repr(at))
        pipe.hincrby(STATE_KEY, "failures", 1)
        pipe.execute()

    def read(self) -> dict[str, float]:
        raw = self.client.hgetall(STATE_KEY)
        return {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}


@dataclass(frozen=True)
class Kept:
    """A scheduled backup in NEWSFLASH_BACKUP_DIR."""

    path: Path
    created_at: float


def scheduled_backups(folder: Path) -> list[Kept]:
    """The backups the schedule made in `folder`, oldest first: directories (not links) named by
    their UTC time, holding a manifest of our format that says the schedule made it. Nothing
    else there is ever counted or deleted."""
    found: list[Kept] = []
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return []
    for entry in entries:
        if not SCHEDULED_NAME.match(entry.name) or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
            if manifest.get("format") != FORMAT or manifest.get("made_by") != SCHEDULED_BY:
                continue
            created = datetime.fromisoformat(manifest["created_at"]).timestamp()
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        found.append(Kept(entry, created))
    return sorted(found, key=lambda k: (k.created_at, k.path.name))


def _one_line(exc: BaseException, settings: Settings) -> str:
    """The failure for the log: first line, secrets and the database password taken out."""
    from sqlalchemy.engine import make_url

    from core.adapters.logs import redact_text

    text = (str(exc).strip().splitlines() or [""])[0]
    password = make_url(settings.database_url).password
    if password:
        text = text.replace(str(password), "[redacted]")
    return f"{type(exc).__name__}: {redact_text(text)[:300]}"


def run_schedule(settings: Settings, state: BackupState, now: float) -> str:
    """One beat run: "off", "busy" (another run holds the lock), "fresh" (not due yet),
    "written" (a new backup, older ones beyond NEWSFLASH_BACKUP_KEEP deleted) or "failed"."""
    folder = settings.backup_dir
    if folder is None:
        return "off"
    # Held a minute longer than the task may run (NEWSFLASH_BACKUP_TIME_LIMIT_S, its own time
    # limit): a live run never loses it, so a copy of the task the broker delivers again while
    # it runs (Redis: after the visibility timeout) answers "busy"; a killed worker's lapses.
    try:
        token = state.try_lock(lock_ttl_s(settings))
    except Exception as exc:
        log.warning("scheduled backup not started", extra={"error": _one_line(exc, settings)})
        return "failed"
    if token is None:
        log.info("scheduled backup skipped: another run holds the lock")
        return "busy"
    try:
        return _run_locked(settings, folder, state, now)
    finally:
        try:
            state.unlock(token)
        except Exception:
            log.warning("scheduled backup lock not released; it lapses by itself")


def lock_ttl_s(settings: Settings) -> float:
    return settings.backup_time_limit_s + 60.0


def _run_locked(settings: Settings, folder: Path, state: BackupState, now: float) -> str:
    remove_partials(folder, settings)
    try:
        kept = scheduled_backups(folder)
    except OSError as exc:  # not a directory, not readable: a failed run like any other
        return _failed(settings, state, now, exc)
    if kept and now - kept[-1].created_at < settings.backup_every_h * 3600 - SCHEDULE_CHECK_S / 2:
        _succeeded(state, kept[-1].created_at)  # Redis may have lost it; the disk has not
        return "fresh"
    started = time.monotonic()
    out = folder / datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if out.exists() or out.is_symlink():
            raise FileExistsError(f"{out} already exists")
        partial.mkdir(mode=0o700)
    except OSError as exc:
        return _failed(settings, state, now, exc)
    try:
        written = write_backup(settings, partial, now, made_by=SCHEDULED_BY)
        # Its files and manifest are on disk (write_backup flushed each); now its entries, then
        # the name that makes it a backup.
        dumps.fsync_dir(partial)
        os.rename(partial, out)
    except Exception as exc:
        shutil.rmtree(partial, ignore_errors=True)
        return _failed(settings, state, now, exc)
    try:
        dumps.fsync_dir(folder)
    except Exception as exc:
        # The backup is complete and in place, and every later run finds it: it counts. Only
        # a power cut before the disk writes the folder on its own could still lose the name.
        log.warning(
            "scheduled backup written but its folder not flushed: a power cut now could lose it",
            extra={"backup": out.name, "error": failure_line(exc, settings)},
        )
    # Recorded before the rotation: the new backup is in place whatever becomes of the old.
    _succeeded(state, now)
    deleted = rotate(folder, settings)
    log.info(
        "scheduled backup",
        extra={
            "backup": out.name,
            "subscriptions": written.snapshot.subscriptions,
            "bytes": written.size_bytes,
            "deleted": deleted,
            "elapsed_s": round(time.monotonic() - started, 3),
        },
    )
    return "written"


def remove_partials(folder: Path, settings: Settings) -> int:
    """Delete what killed runs left: directories (not links) named `<UTC time>.partial`, and
    nothing else. Only under the lock, which says no run is writing one now."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return 0  # no folder yet; an unreadable one fails the run where it is listed next
    removed = 0
    for entry in entries:
        name = entry.name.removesuffix(PARTIAL_SUFFIX)
        partial = name != entry.name and SCHEDULED_NAME.match(name)
        if not partial or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            shutil.rmtree(entry)
        except OSError as exc:
            log.warning(
                "scheduled backup: a killed run's directory not removed",
                extra={"backup": entry.name, "error": _one_line(exc, settings)},
            )
            continue
        removed += 1
    if removed:
        log.info("scheduled backup: killed runs' directories removed", extra={"removed": removed})
    return removed


def failure_line(exc: BaseException, settings: Settings) -> str:
    """Why a run failed, for its one log line; Celery's soft time limit named by its setting."""
    if type(exc).__name__ == "SoftTimeLimitExceeded":  # Celery's: not imported by the CLI
        limit_s = settings.backup_time_limit_s
        exc = TimeoutError(f"not finished within NEWSFLASH_BACKUP_TIME_LIMIT_S ({limit_s} s)")
    return _one_line(exc, settings)


def _failed(settings: Settings, state: BackupState, now: float, exc: Exception) -> str:
    log.warning("scheduled backup failed", extra={"error": failure_line(exc, settings)})
    try:
        state.failed(now)
    except Exception:
        log.warning("scheduled backup failure not recorded (Redis unreachable)")
    return "failed"


def _succeeded(state: BackupState, at: float) -> None:
    try:
        state.succeeded(at)
    except Exception:
        log.warning("scheduled backup success not recorded (Redis unreachable)")


def rotate(folder: Path, settings: Settings) -> list[str]:
    """Delete the oldest scheduled backups beyond NEWSFLASH_BACKUP_KEEP; the names deleted. One
    that will not go is a warning line, and the next run tries again."""
    kept = scheduled_backups(folder)
    deleted: list[str] = []
    for old in kept[: max(0, len(kept) - settings.backup_keep)]:
        try:
            _delete_backup(old.path)
        except OSError as exc:
            log.warning(
                "scheduled backup: an old backup not deleted",
                extra={"backup": old.path.name, "error": _one_line(exc, settings)},
            )
            continue
        deleted.append(old.path.name)
    return deleted


def _delete_backup(backup: Path) -> None:
    # The manifest last: a backup deleted only in part still counts as one, so a later
    # rotation finishes the job; without it the rest would never be anyone's to delete.
    for entry in backup.iterdir():
        if entry.name == MANIFEST:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    (backup / MANIFEST).unlink()
    backup.rmdir()


def status(settings: Settings, state: BackupState | None) -> dict[str, Any] | None:
    """For /metrics and `newsflash status`; None while scheduled backups are off. What this
    process can see on disk counts too (Redis may have lost the state, or be down)."""
    folder = settings.backup_dir
    if folder is None:
        return None
    recorded: dict[str, float] = {}
    if state is not None:
        try:
            recorded = state.read()
        except Exception:
            recorded = {}
    try:
        kept: list[Kept] | None = scheduled_backups(folder)
    except OSError:
        kept = None  # not mounted here (a web container): Redis's record alone
    last = recorded.get("last_success_at")
    if kept:
        last = max(last or 0.0, kept[-1].created_at)
    return {
        "dir": str(folder),
        "every_h": settings.backup_every_h,
        "keep": settings.backup_keep,
        "kept": None if kept is None else len(kept),
        "last_success_at": last,
        "last_failure_at": recorded.get("last_failure_at"),
        "failures": int(recorded.get("failures", 0)),
    }
