"""What a Declarative Web Push browser (WebKit, Safari 18.4+) accepts: a checker of the JSON
message, following the Push API's declarative push message parser and WebKit's format.

It returns the reasons a browser would not treat a message as declarative (an empty list when
it would); the stand-in uses it to show what Safari would make of each push, tests assert on it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

MAGIC = 8030
DIRECTIONS = ("auto", "ltr", "rtl")
_STRINGS = ("body", "lang", "tag")
_URLS = ("icon", "image", "badge")
_BOOLEANS = ("silent", "renotify", "requireInteraction")
_MAX_BADGE = 2**64 - 1


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _absolute_http_url(value: object) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("https", "http") and bool(parts.netloc)


def declarative_problems(message: object) -> list[str]:
    """Why `message` (bytes, text or parsed JSON) is not a declarative push message; [] if it is."""
    if isinstance(message, (bytes, str)):
        try:
            message = json.loads(message)
        except (ValueError, UnicodeDecodeError):
            return ["not JSON"]
    if not isinstance(message, dict):
        return ["not a JSON object"]
    problems: list[str] = []
    magic = message.get("web_push")
    if not _is_int(magic) or magic != MAGIC:
        problems.append(f"web_push must be the integer {MAGIC}")
    notification = message.get("notification")
    if not isinstance(notification, dict):
        return [*problems, "notification must be an object"]
    problems.extend(_notification_problems(notification, "notification."))
    if "mutable" in message and not isinstance(message["mutable"], bool):
        problems.append("mutable must be a boolean")
    if "app_badge" in message and not (
        _is_int(message["app_badge"]) and 0 <= message["app_badge"] <= _MAX_BADGE
    ):
        problems.append("app_badge must be a whole number from 0")
    return problems


def _notification_problems(n: dict[str, Any], at: str) -> list[str]:
    problems: list[str] = []
    if not isinstance(n.get("title"), str) or not n["title"].strip():
        problems.append(at + "title must be a non-empty string")
    if not _absolute_http_url(n.get("navigate")):
        problems.append(at + "navigate must be an absolute http(s) URL")
    for name in _STRINGS:
        if name in n and not isinstance(n[name], str):
            problems.append(f"{at}{name} must be a string")
    if "dir" in n and n["dir"] not in DIRECTIONS:
        problems.append(at + "dir must be auto, ltr or rtl")
    for name in _URLS:
        if name in n and not _absolute_http_url(n[name]):
            problems.append(f"{at}{name} must be an absolute http(s) URL")
    for name in _BOOLEANS:
        if name in n and not isinstance(n[name], bool):
            problems.append(f"{at}{name} must be a boolean")
    if "timestamp" in n and not (_is_int(n["timestamp"]) and n["timestamp"] >= 0):
        problems.append(at + "timestamp must be whole milliseconds since the epoch")
    if "data" in n:
        try:
            json.dumps(n["data"], allow_nan=False)
        except (TypeError, ValueError):
            problems.append(at + "data must be a JSON value")
    if "actions" in n:
        problems.extend(_action_problems(n["actions"], at + "actions"))
    return problems


def _action_problems(actions: object, at: str) -> list[str]:
    if not isinstance(actions, list):
        return [at + " must be a list"]
    problems: list[str] = []
    for i, action in enumerate(actions):
        where = f"{at}[{i}]."
        if not isinstance(action, dict):
            problems.append(where[:-1] + " must be an object")
            continue
        for name in ("action", "title"):
            if not isinstance(action.get(name), str) or not action[name]:
                problems.append(where + name + " must be a non-empty string")
        if not _absolute_http_url(action.get("navigate")):
            problems.append(where + "navigate must be an absolute http(s) URL")
    return problems
