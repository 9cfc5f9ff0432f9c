"""Editors' words for the newsroom: alert states, field errors and audit-log sentences."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.errors import DomainError
from core.model import Alert, AlertStatus

# One word per state, used by every newsroom page: the API keeps its status values
# ("cancelled"), editors read these. A cancelled alert is "Called off" when nothing was
# attempted (Undo, a called-off schedule) and "Stopped" when Stop ended a send in flight.
STATE_WORDS = {
    AlertStatus.SCHEDULED: "Scheduled",
    AlertStatus.QUEUED: "Starting",
    AlertStatus.SENDING: "Sending",
    AlertStatus.SENT: "Sent",
    AlertStatus.FAILED: "Failed",
}
CALLED_OFF = "Called off"
STOPPED = "Stopped"

# What each field is called on the newsroom's forms.
FIELD_NAMES = {
    "title": "headline",
    "body": "text",
    "url": "article URL",
    "image": "image URL",
    "topics": "topics",
    "send_at": "time",
}

_OVER_LIMIT = re.compile(r"at most (\d+) characters \(has (\d+)\)")


UNDO_OPEN = "Sending soon"


def state_word(alert: Alert, in_undo_window: bool = False) -> str:
    """The state as an editor reads it, the same on the badge, the banner and the history."""
    if in_undo_window:
        return UNDO_OPEN  # technically scheduled, but to the editor it is a send with Undo open
    if alert.status is AlertStatus.CANCELLED:
        return CALLED_OFF if alert.started_at is None else STOPPED
    return STATE_WORDS[alert.status]


def state_class(alert: Alert) -> str:
    """A CSS hook per editor-visible state (called off and stopped look different)."""
    if alert.status is AlertStatus.CANCELLED:
        return "calledoff" if alert.started_at is None else "stopped"
    return alert.status.value


def local_clock(now: float, tz: ZoneInfo) -> str:
    """'19:54 in Nairobi': the newsroom's clock, named by its city."""
    city = tz.key.rsplit("/", 1)[-1].replace("_", " ")
    return f"{datetime.fromtimestamp(now, tz):%H:%M} in {city}"


def field_message(error: DomainError, now: float, tz: ZoneInfo) -> str:
    """A validation error in an editor's words, for the line under the field it names."""
    field, message = error.field or "", error.message
    name = FIELD_NAMES.get(field, field)
    if message.endswith("is required"):
        return {
            "title": "Enter a headline.",
            "body": "Enter the text under the headline.",
            "url": "Paste the article's URL.",
        }.get(field, f"Enter the {name}.")
    over = _OVER_LIMIT.search(message)
    if over:
        limit, has = int(over.group(1)), int(over.group(2))
        return (
            f"The {name} is {has} characters; the limit is {limit}. "
            f"Shorten it by {has - limit} — nothing was cut."
        )
    if field == "send_at":
        if "past" in message:
            return f"Choose a time after now — it is {local_clock(now, tz)}."
        if "within a year" in message:
            return "Choose a time within the next year."
        if "ISO 8601" in message:
            return f"Choose a date and a time ({tz.key} time)."
    if field in ("url", "image"):
        if "origins" in message:
            origins = message.partition("(")[2].rstrip(")")
            return f"The {name} must be on your own site ({origins})."
        if "http(s)" in message or "not a valid URL" in message:
            return f"The {name} must start with https:// (or http://)."
    if message == "choose at least one topic":
        return "Choose at least one topic."
    if message == "a user with this email exists":
        return "This email already has an account. If they lost their password, use New password on their row."
    if field in ("current_password", "new_password", "new_password_repeat"):
        return message[:1].upper() + message[1:] + "."
    return message[:1].upper() + message[1:]


def audit_sentence(entry: Mapping[str, Any], alert: Alert | None = None) -> str:
    """One audit row as a sentence: "Amina sent 'Floods close Thika road' to 12,400 readers"."""
    who = _who(entry.get("actor"))
    action, target = str(entry.get("action", "")), entry.get("target") or ""
    detail: Mapping[str, Any] = entry.get("detail") or {}
    title = detail.get("title") or (alert.title if alert else None)
    what = f"'{title}'" if title else f"alert #{target}"
    readers = _readers(alert)
    if action == "alert.send":
        return f"{who} sent {what}{readers}."
    if action == "alert.schedule":
        return f"{who} scheduled {what}{readers}."
    if action == "alert.schedule.edit":
        return f"{who} edited the scheduled alert {what}."
    if action == "alert.test":
        return f"{who} sent {what} to their test devices."
    if action == "alert.correct":
        return f"{who} sent the correction {what}, replacing alert #{detail.get('corrects', '?')}."
    if action == "alert.send_anyway":
        return f"{who} sent {what} without waiting for the article to be online."
    if action == "alert.cancel":
        delivered = detail.get("delivered") or 0
        if detail.get("undo") or (detail.get("was") == "scheduled" and not delivered):
            return f"{who} called off {what} before it was sent."
        return f"{who} stopped {what} after {delivered:,} readers had it."
    return _account_sentence(who, action, str(target), detail)


def _account_sentence(who: str, action: str, target: str, detail: Mapping[str, Any]) -> str:
    role = detail.get("role")
    sentences = {
        "login": f"{who} logged in.",
        "logout": f"{who} logged out.",
        "login.failed": f"A login as {who} from {target or 'an unknown address'} was refused "
        "(wrong email or password).",
        "login.rate_limited": f"Logins from {target or 'one address'} were refused: too many tries.",
        "user.create": f"{who} added {target} as {role}.",
        "user.role": f"{who} made {target} {role}.",
        "user.password": f"{who} changed their own password "
        f"({_sessions(detail.get('sessions_ended'))} on other devices ended)."
        if detail.get("own")
        else f"{who} set a new password for {target}.",
        "password.failed": f"A password change by {who} from {target or 'an unknown address'} "
        "was refused (wrong current password).",
        "password.rate_limited": f"Password changes by {who} from {target or 'one address'} "
        "were refused: too many wrong current passwords.",
        "user.disable": f"{who} disabled {target}.",
        "user.enable": f"{who} enabled {target}.",
        "user.sign_out_device": f"{who} signed out one of their devices "
        f"({detail.get('device') or 'a browser'}).",
        "user.sign_out_others": f"{who} signed out of their other devices "
        f"({_sessions(detail.get('sessions_ended'))} ended).",
        "token.create": f"{who} created the API token '{target}' ({role}).",
        "token.revoke": f"{who} revoked API token #{target}.",
        "test_device.set": f"{who} made a browser their test device.",
        "test_device.unset": f"{who} stopped using a browser as their test device.",
        "feed.add": f"{who} added the feed {detail.get('url', '#' + target)}"
        f" ({_feed_mode(detail.get('mode'))}).",
        "feed.mode": f"{who} set feed #{target} to {_feed_mode(detail.get('mode'))}.",
        "feed.remove": f"{who} removed the feed {detail.get('url', '#' + target)}.",
        "feed.item.dismiss": f"{who} dismissed the feed item '{detail.get('title', target)}'.",
        "template.create": f"{who} created the template '{detail.get('name', target)}'.",
        "template.edit": f"{who} edited the template #{target}.",
        "template.delete": f"{who} deleted the template '{detail.get('name', target)}'.",
    }
    return sentences.get(action, f"{who}: {action} {target}".rstrip() + ".")


def _sessions(count: object) -> str:
    return "1 session" if count == 1 else f"{count if isinstance(count, int) else '?'} sessions"


def _feed_mode(mode: object) -> str:
    return "sends at once" if mode == "auto" else "drafts for review"


def _who(actor: object) -> str:
    if not actor:
        return "Someone"
    name = str(actor)
    if name == "cli":
        return "An operator (command line)"
    if name.startswith("token:"):
        return f"The API token '{name[6:]}'"
    if name == "cms":
        return "The CMS (webhook)"
    return name


def _readers(alert: Alert | None) -> str:
    if alert is None or not alert.counts.audience:
        return ""
    n = alert.counts.audience
    return f" to {n:,} reader{'' if n == 1 else 's'}"
