"""Which devices readers are on: Android, iOS (iPhone/iPad), desktop, from the subscription's
push service and what the widget reported (the push service alone cannot tell FCM on Android
from FCM in desktop Chrome, nor Apple's service on an iPhone from Safari on a Mac)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Protocol

PLATFORM_ORDER: Final = ("android", "ios", "desktop", "unknown")
LABELS: Final = {"android": "Android", "ios": "iOS", "desktop": "Desktop", "unknown": "Not known"}


def _service(push_host: str) -> str:
    host = push_host.lower().split(":", 1)[0]
    if host == "push.apple.com" or host.endswith(".push.apple.com"):
        return "apple"
    if host in ("fcm.googleapis.com", "android.googleapis.com"):
        return "fcm"
    if host.endswith(".mozilla.com"):
        return "mozilla"
    if host.endswith(".notify.windows.com"):
        return "windows"
    return "other"


def platform_of(push_host: str, reported: str | None) -> str:
    """android, ios, desktop or unknown for one subscription.

    Apple's push service serves iOS/iPadOS Home Screen apps and Safari on the Mac; FCM serves
    Chrome on Android and on desktops; Mozilla's serves Firefox on both; Windows' only desktops.
    The widget's report picks among what the push service allows; a report the push service
    contradicts (iOS on FCM) is not believed.
    """
    allowed = {
        "apple": ("ios", "desktop"),
        "fcm": ("android", "desktop"),
        "mozilla": ("android", "desktop"),
        "windows": ("desktop",),
        "other": ("android", "ios", "desktop"),
    }[_service(push_host)]
    if reported in allowed:
        return reported
    return allowed[0] if len(allowed) == 1 else "unknown"


def count_platforms(groups: Iterable[tuple[str, str | None, int]]) -> dict[str, int]:
    """Subscriptions per platform from (push host, reported platform, count) groups."""
    counts = dict.fromkeys(PLATFORM_ORDER, 0)
    for push_host, reported, n in groups:
        counts[platform_of(push_host, reported)] += n
    return counts


class PlatformQueries(Protocol):
    def platform_groups(self, alert_id: int | None = None) -> list[tuple[str, str | None, int]]:
        """(push host, reported platform, subscriptions): all readers, or one alert's delivered."""
        ...
