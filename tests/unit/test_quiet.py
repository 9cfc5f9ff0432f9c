"""Quiet hours and the daily cap: validation, the UTC window, and when a held push may go."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.errors import ValidationError
from core.model import Alert, AlertKind, AlertStatus, Urgency
from core.quiet import (
    QuietHours,
    in_quiet,
    parse_preferences,
    reader_day,
    release_at,
    still_wanted,
    utc_minute,
    waits_for_readers,
)

NOON_UTC = datetime(2026, 6, 1, 12, 0, tzinfo=UTC).timestamp()


def _alert(urgency: Urgency = Urgency.NORMAL, kind: AlertKind = AlertKind.NORMAL) -> Alert:
    return Alert(
        id=1,
        title="t",
        body="b",
        url="https://news.example/a",
        topics=("politics",),
        urgency=urgency,
        ttl_s=3600,
        story_key="nf" + "0" * 30,
        status=AlertStatus.SENDING,
        kind=kind,
        created_at=NOON_UTC,
    )


def test_nairobi_quiet_hours_become_a_utc_window() -> None:
    prefs = parse_preferences(
        {
            "quietHours": {"start": "22:00", "end": "06:00", "timeZone": "Africa/Nairobi"},
            "dailyCap": 3,
        },
        NOON_UTC,
    )
    quiet = prefs.quiet
    assert quiet == QuietHours(22 * 60, 6 * 60, "Africa/Nairobi", 180)
    assert (quiet.start_utc, quiet.end_utc) == (19 * 60, 3 * 60)
    assert prefs.daily_cap == 3
    assert prefs.as_json() == {
        "quietHours": {"start": "22:00", "end": "06:00", "timeZone": "Africa/Nairobi"},
        "dailyCap": 3,
    }


def test_a_zone_with_summer_time_takes_the_offset_of_the_day_it_was_saved() -> None:
    winter = datetime(2026, 1, 15, 12, tzinfo=UTC).timestamp()
    body = {
        "quietHours": {"start": "23:00", "end": "07:00", "timeZone": "Europe/London"},
        "dailyCap": None,
    }
    assert parse_preferences(body, NOON_UTC).quiet.offset_min == 60  # type: ignore[union-attr]
    assert parse_preferences(body, winter).quiet.offset_min == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"dailyCap": None}, "quietHours"),
        ({"quietHours": None}, "dailyCap"),
        ({"quietHours": "22-06", "dailyCap": None}, "quietHours"),
        (
            {"quietHours": {"start": "24:00", "end": "06:00", "timeZone": "UTC"}, "dailyCap": None},
            "quietHours.start",
        ),
        (
            {"quietHours": {"start": "22:00", "end": "6:00", "timeZone": "UTC"}, "dailyCap": None},
            "quietHours.end",
        ),
        (
            {"quietHours": {"start": "22:00", "end": "22:00", "timeZone": "UTC"}, "dailyCap": None},
            "quietHours.end",
        ),
        (
            {
                "quietHours": {"start": "22:00", "end": "06:00", "timeZone": "../../etc/passwd"},
                "dailyCap": None,
            },
            "quietHours.timeZone",
        ),
        (
            {
                "quietHours": {"start": "22:00", "end": "06:00", "timeZone": "Mars/Olympus"},
                "dailyCap": None,
            },
            "quietHours.timeZone",
        ),
        ({"quietHours": None, "dailyCap": 0}, "dailyCap"),
        ({"quietHours": None, "dailyCap": 51}, "dailyCap"),
        ({"quietHours": None, "dailyCap": True}, "dailyCap"),
        ({"quietHours": None, "dailyCap": "3"}, "dailyCap"),
    ],
)
def test_bad_preferences_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_preferences(body, NOON_UTC)
    assert caught.value.field == field


def test_windows_that_wrap_midnight() -> None:
    assert in_quiet(19 * 60, 3 * 60, 23 * 60)
    assert in_quiet(19 * 60, 3 * 60, 0)
    assert in_quiet(19 * 60, 3 * 60, 19 * 60)
    assert not in_quiet(19 * 60, 3 * 60, 3 * 60)
    assert not in_quiet(19 * 60, 3 * 60, 12 * 60)
    assert in_quiet(60, 120, 90) and not in_quiet(60, 120, 120)


def test_release_is_the_next_end_of_the_window() -> None:
    assert utc_minute(NOON_UTC) == 720
    assert release_at(3 * 60, NOON_UTC) == NOON_UTC + 15 * 3600
    assert release_at(13 * 60, NOON_UTC) == NOON_UTC + 3600
    assert release_at(12 * 60, NOON_UTC) == NOON_UTC + 86400


def test_the_cap_counts_per_local_day() -> None:
    late_evening_utc = datetime(2026, 6, 1, 22, 30, tzinfo=UTC).timestamp()
    assert reader_day(late_evening_utc, 180) == reader_day(late_evening_utc, 0) + 1


def test_breaking_tests_and_corrections_never_wait() -> None:
    assert waits_for_readers(_alert())
    assert waits_for_readers(_alert(Urgency.LOW))
    assert not waits_for_readers(_alert(Urgency.HIGH))
    assert not waits_for_readers(_alert(kind=AlertKind.TEST))
    assert not waits_for_readers(_alert(kind=AlertKind.CORRECTION))


def test_a_held_push_goes_only_while_the_ttl_lasts() -> None:
    assert still_wanted(_alert(), NOON_UTC + 3599)
    assert not still_wanted(_alert(), NOON_UTC + 3600)
