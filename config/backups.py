"""Settings for scheduled backups (core/adapters/backups.py): off until NEWSFLASH_BACKUP_DIR is
set. Settings inherits them, so they load (and are listed) after the alarms'."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from config.declaration import setting
from config.kinds import Directory, Whole


@dataclass(frozen=True)
class BackupSettings:
    backup_dir: Path | None = setting(
        "NEWSFLASH_BACKUP_DIR",
        Directory(),
        None,
        "beat writes a backup (as `newsflash backup`) into a new directory here every"
        " `NEWSFLASH_BACKUP_EVERY_H` hours; unset: no scheduled backups. On one machine, keep it"
        " on another disk or sync it elsewhere",
    )
    backup_every_h: int = setting(
        "NEWSFLASH_BACKUP_EVERY_H",
        Whole(1, 24 * 366),
        "24",
        "hours between scheduled backups",
    )
    backup_keep: int = setting(
        "NEWSFLASH_BACKUP_KEEP",
        Whole(1, 1000),
        "7",
        "scheduled backups kept; older ones it made are deleted (nothing else in the directory)",
    )
    backup_time_limit_s: int = setting(
        "NEWSFLASH_BACKUP_TIME_LIMIT_S",
        Whole(60, 24 * 3600),
        "3600",
        "hard limit for one scheduled backup (its own, instead of `NEWSFLASH_TASK_TIME_LIMIT_S`);"
        " it holds one maintenance-lane process that long at most",
    )
