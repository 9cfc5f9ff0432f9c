"""Settings for the alarms beat evaluates (core/alarms.py); deploy/prometheus/newsflash-rules.yml
uses the same defaults. Settings inherits them, so they load (and are listed) after upkeep's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from config.declaration import setting
from config.kinds import Number

DAY_S: Final = 24 * 3600


@dataclass(frozen=True)
class AlarmSettings:
    alarm_interval_s: float = setting(
        "NEWSFLASH_ALARM_INTERVAL_S", Number(0.5, 300), "5", "how often beat evaluates the alarms"
    )
    alarm_stall_s: float = setting(
        "NEWSFLASH_ALARM_STALL_S", Number(1, DAY_S), "60", "a queue is stalled after this long"
    )
    alarm_pending_s: float = setting(
        "NEWSFLASH_ALARM_PENDING_S",
        Number(1, DAY_S),
        "120",
        "pending deliveries this old page while sends stall (see `NEWSFLASH_ALARM_MIN_RATE`)",
    )
    alarm_min_rate_per_s: float = setting(
        "NEWSFLASH_ALARM_MIN_RATE",
        Number(0, 100_000),
        "200",
        "sends stall when at most this many pushes a second were delivered (or found gone) over"
        " the last minute; 0: only when none were",
    )
    alarm_pending_max_s: float = setting(
        "NEWSFLASH_ALARM_PENDING_MAX_S",
        Number(1, DAY_S),
        "1800",
        "pending deliveries this old page even while sends keep their pace: keep it above your"
        " biggest send's time to 100 %",
    )
    alarm_for_s: float = setting(
        "NEWSFLASH_ALARM_FOR_S",
        Number(0, 3600),
        "10",
        "an instant check (no worker, broker or database) must hold this long to fire",
    )
