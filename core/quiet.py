"""A reader's quiet hours and daily cap: validating them and deciding who waits or is skipped.

Quiet hours are chosen in the reader's own time zone (the browser's IANA name) and stored both
as local minutes of the day (what /manage shows) and as a UTC window with the zone's offset at
the time of saving (what the planner's audience query compares with the current UTC minute, so
the selection stays one indexed walk in the database with no per-reader Python). Beat moves the
UTC windows hourly when a zone's offset changes (summer time; refresh_quiet_zones).
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from core.errors import ValidationError
from core.model import Alert, AlertKind, Urgency
from core.ttl import ends_at

MINUTES_PER_DAY: Final = 1440
MAX_DAILY_CAP: Final = 50
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


@dataclass(frozen=True)
class QuietHours:
    start_min: int  # local minutes after midnight, quiet from here...
    end_min: int  # ...until here (may be on the next day: 22:00-06:00)
    zone: str  # IANA name from the browser (Intl.DateTimeFormat().resolvedOptions().timeZone)
    offset_min: int  # the zone's UTC offset when saved (east positive)

    @property
    def start_utc(self) -> int:
        return (self.start_min - self.offset_min) % MINUTES_PER_DAY

    @property
    def end_utc(self) -> int:
        return (self.end_min - self.offset_min) % MINUTES_PER_DAY

    def as_json(self) -> dict[str, Any]:
        return {
            "start": clock_text(self.start_min),
            "end": clock_text(self.end_min),
            "timeZone": self.zone,
        }


@dataclass(frozen=True)
class ReaderPreferences:
    quiet: QuietHours | None = None
    daily_cap: int | None = None  # most non-breaking alerts per local day; None: no cap

    def as_json(self) -> dict[str, Any]:
        return {
            "quietHours": None if self.quiet is None else self.quiet.as_json(),
            "dailyCap": self.daily_cap,
        }


def clock_text(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_clock(value: object, field: str) -> int:
    if not isinstance(value, str) or not (m := _CLOCK.match(value)):
        raise ValidationError(f"{field} must be a time of day as HH:MM (00:00 to 23:59)", field)
    return int(m.group(1)) * 60 + int(m.group(2))


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def zone_offset_min(zone: str, at: float) -> int:
    """The zone's UTC offset in whole minutes at the given time (east positive)."""
    offset = datetime.fromtimestamp(at, tz=UTC).astimezone(zoneinfo.ZoneInfo(zone)).utcoffset()
    return 0 if offset is None else int(offset.total_seconds() // 60)


def parse_zone(value: object, field: str = "quietHours.timeZone") -> str:
    # Only names from the tz database: never a path handed to zoneinfo.
    if not isinstance(value, str) or len(value) > 64 or value not in _zones():
        raise ValidationError(f"{field} must be an IANA time zone such as Africa/Nairobi", field)
    return value


def parse_preferences(body: Mapping[str, Any], now: float) -> ReaderPreferences:
    """{"quietHours": {"start", "end", "timeZone"} | null, "dailyCap": n | null}; both required."""
    if "quietHours" not in body:
        raise ValidationError("quietHours is required (null for none)", "quietHours")
    if "dailyCap" not in body:
        raise ValidationError("dailyCap is required (null for no cap)", "dailyCap")
    quiet = _parse_quiet(body["quietHours"], now)
    cap = body["dailyCap"]
    if cap is not None and (
        not isinstance(cap, int) or isinstance(cap, bool) or not 1 <= cap <= MAX_DAILY_CAP
    ):
        raise ValidationError(
            f"dailyCap must be a whole number from 1 to {MAX_DAILY_CAP}, or null", "dailyCap"
        )
    return ReaderPreferences(quiet, cap)


def _parse_quiet(value: object, now: float) -> QuietHours | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError("quietHours must be {start, end, timeZone} or null", "quietHours")
    start = parse_clock(value.get("start"), "quietHours.start")
    end = parse_clock(value.get("end"), "quietHours.end")
    if start == end:
        raise ValidationError("quietHours.end must differ from quietHours.start", "quietHours.end")
    zone = parse_zone(value.get("timeZone"))
    return QuietHours(start, end, zone, zone_offset_min(zone, now))


def utc_minute(now: float) -> int:
    return int(now // 60) % MINUTES_PER_DAY


def in_quiet(start_utc: int, end_utc: int, minute: int) -> bool:
    """Whether a UTC minute of the day falls in [start, end), the window wrapping midnight."""
    if start_utc < end_utc:
        return start_utc <= minute < end_utc
    return minute >= start_utc or minute < end_utc


def release_at(end_utc: int, now: float) -> float:
    """The next time the UTC minute end_utc starts, strictly after now."""
    day = int(now // 86400) * 86400
    at = float(day + end_utc * 60)
    return at if at > now else at + 86400


def reader_day(now: float, offset_min: int) -> int:
    """The reader's local day number (what the daily cap counts per)."""
    return int((now + offset_min * 60) // 86400)


def waits_for_readers(alert: Alert) -> bool:
    """Quiet hours and caps apply to non-breaking alerts sent to an audience; breaking news
    (urgency high), test sends and corrections of what was delivered always go through."""
    return alert.urgency is not Urgency.HIGH and alert.kind in _WAITING_KINDS


_WAITING_KINDS: Final = frozenset({AlertKind.NORMAL, AlertKind.STORY, AlertKind.UPDATE})


def still_wanted(alert: Alert, when: float) -> bool:
    """A held push is worth sending at `when` only if the alert's TTL has not run out by then."""
    return when < ends_at(alert)
