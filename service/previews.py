"""Notification previews: where each platform cuts the title and the text.

The limits are approximations in characters, taken from vendors' published measurements (see
docs/newsroom.md, "Previews"): platforms cut by pixel width and line count, so a headline of
wide letters is cut sooner. The compose page's script applies the same numbers as the editor
types (they travel in data attributes, so this table is the only copy).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Platform:
    key: str
    label: str
    title_max: int
    body_max: int
    shows_image: bool


PLATFORMS = (
    Platform("android", "Android, Chrome — collapsed", 40, 45, False),
    Platform("android-expanded", "Android, Chrome — expanded", 65, 240, True),
    Platform("windows", "Windows, Chrome or Edge", 70, 140, True),
    Platform("macos", "macOS, Chrome or Safari", 35, 80, False),
    Platform("ios", "iPhone, Home Screen web app", 30, 120, False),
)


def clip(text: str, limit: int) -> str:
    """What a platform shows of `text`: all of it, or its first characters and an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"
