"""Alerts: validating what an editor asks to publish, storing it, and handing it to the queue."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from core import corrections, correlation
from core.errors import Conflict, NotFound, ValidationError
from core.inputs import check_text, finite_number
from core.model import Alert, AlertDraft, AlertKind, AlertStatus, Urgency
from core.outbox import Outbox
from core.payload import MAX_PUSH_BODY, oversize_field, payload_dict, story_key
from core.ports import AlertStore, SubscriptionStore, TaskQueue
from core.receipts import WORST_RECEIPT
from core.subscriptions import check_topics
from core.translations import parse_lang, parse_translations, translations_json
from core.utm import CAMPAIGN_PREFIX, UtmTags, with_utm

log = logging.getLogger("newsflash.alerts")

MAX_TITLE = 120
MAX_BODY = 300
MAX_URL = 2048
MIN_TTL_S = 60
MAX_TTL_S = 4 * 7 * 24 * 3600
MAX_ARTICLE_ID = 200
MAX_IDEMPOTENCY_KEY = 200


@dataclass(frozen=True)
class AlertRules:
    """What publishing accepts, from the settings."""

    public_origins: tuple[str, ...]
    topics: frozenset[str]
    default_topics: tuple[str, ...]
    default_ttl_s: int
    timezone: str = "UTC"
    utm: UtmTags | None = None  # None: click-through URLs are never tagged
    default_lang: str = "en"  # the language of an alert that does not name one


def _text(
    body: Mapping[str, Any],
    name: str,
    max_len: int,
    required: bool = True,
    multiline: bool = False,
) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise ValidationError(f"{name} is required", name)
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string", name)
    value = check_text(plain_text(value, multiline), name, multiline=multiline)
    if required and not value:
        raise ValidationError(f"{name} is required", name)
    if len(value) > max_len:
        raise ValidationError(
            f"{name} must be at most {max_len} characters (has {len(value)})", name
        )
    return value


def plain_text(value: str, multiline: bool = False) -> str:
    """Text as it is stored: trimmed; a form's textarea sends CRLF, a notification wants LF."""
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    return value.strip()


def same_words(alert: Alert, body: Mapping[str, Any]) -> bool:
    """Whether the title and body a request gives (if any) are the alert's, as stored."""
    for name, multiline in (("title", False), ("body", True)):
        value = body.get(name)
        if isinstance(value, str) and plain_text(value, multiline) != getattr(alert, name):
            return False
    return True


def check_public_url(value: str, origins: Collection[str], field: str) -> str:
    """Click and image URLs must be http(s) on one of the publisher's own origins."""
    if len(value) > MAX_URL:
        raise ValidationError(f"{field} must be at most {MAX_URL} characters", field)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValidationError(f"{field} is not a valid URL", field) from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValidationError(f"{field} must be an http(s) URL", field)
    if parts.username is not None or parts.password is not None:
        raise ValidationError(f"{field} must not contain user information", field)
    default_port = 443 if parts.scheme == "https" else 80
    host = parts.hostname.lower()
    netloc = host if port in (None, default_port) else f"{host}:{port}"
    if ":" in host:
        netloc = f"[{host}]" if port in (None, default_port) else f"[{host}]:{port}"
    origin = f"{parts.scheme}://{netloc}"
    if origin not in origins:
        raise ValidationError(
            f"{field} must be on the publisher's origins ({', '.join(origins)})", field
        )
    return value


def parse_send_at(value: object, tz_name: str, now: float) -> float | None:
    """ISO 8601 (naive means the newsroom's time zone) or unix seconds; must be in the future."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValidationError("send_at must be an ISO 8601 time or unix seconds", "send_at")
    if isinstance(value, int | float):
        when = finite_number(value, "send_at")
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError("send_at must be an ISO 8601 time", "send_at") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=ZoneInfo(tz_name))
        when = parsed.timestamp()
    else:
        raise ValidationError("send_at must be an ISO 8601 time or unix seconds", "send_at")
    if when < now - 5:
        raise ValidationError("send_at is in the past", "send_at")
    if when > now + 366 * 24 * 3600:
        raise ValidationError("send_at must be within a year", "send_at")
    return when if when > now + 1 else None


def _public_url_or_none(body: Mapping[str, Any], name: str, rules: AlertRules) -> str | None:
    value = _text(body, name, MAX_URL, required=False)
    return None if value is None else check_public_url(value, rules.public_origins, name)


def parse_alert_request(
    body: object,
    rules: AlertRules,
    now: float,
    idempotency_key: str | None = None,
    created_by: str | None = None,
) -> AlertDraft:
    """The JSON an editor or the CMS sends → a validated AlertDraft (raises ValidationError)."""
    if not isinstance(body, Mapping):
        raise ValidationError("body must be a JSON object")
    title = _text(body, "title", MAX_TITLE)
    # Only the body may run over lines; a title, URL or id is one line of plain text.
    text = _text(body, "body", MAX_BODY, multiline=True)
    url = _text(body, "url", MAX_URL)
    assert title is not None and text is not None and url is not None
    url = check_public_url(url, rules.public_origins, "url")
    lang = parse_lang(body, rules.default_lang)
    translations = parse_translations(body, lang, MAX_TITLE, MAX_BODY)
    image = _public_url_or_none(body, "image", rules)
    icon = _public_url_or_none(body, "icon", rules)
    topics = check_topics(body.get("topics"), rules.topics, "topics", rules.default_topics)
    if not topics:
        raise ValidationError("choose at least one topic", "topics")

    urgency = _urgency(body.get("urgency"), topics)
    ttl = body.get("ttl", rules.default_ttl_s)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_TTL_S <= ttl <= MAX_TTL_S:
        raise ValidationError(
            f"ttl must be whole seconds from {MIN_TTL_S} to {MAX_TTL_S} (4 weeks)", "ttl"
        )
    article_id = _article_id(body.get("article_id"))
    if idempotency_key is not None:
        idempotency_key = check_idempotency_key(idempotency_key)
    send_at = parse_send_at(body.get("send_at"), rules.timezone, now)

    draft = AlertDraft(
        title=title,
        body=text,
        url=url,
        topics=topics,
        urgency=urgency,
        ttl_s=ttl,
        image=image,
        icon=icon,
        article_id=article_id,
        idempotency_key=idempotency_key,
        send_at=send_at,
        created_by=created_by,
        utm=_flag(body, "utm", True),
        lang=lang,
        translations=translations,
    )
    check_fits(draft, rules.utm)
    return draft


def _urgency(value: object, topics: Sequence[str]) -> Urgency:
    if value is None:
        return Urgency.HIGH if "breaking" in topics else Urgency.NORMAL
    try:
        return Urgency(str(value))
    except ValueError:
        raise ValidationError(
            "urgency must be one of very-low, low, normal, high", "urgency"
        ) from None


def _article_id(article_id: object) -> str | None:
    if article_id is None:
        return None
    if isinstance(article_id, int) and not isinstance(article_id, bool):
        article_id = str(article_id)
    if not isinstance(article_id, str) or not article_id.strip():
        raise ValidationError("article_id must be a non-empty string", "article_id")
    check_text(article_id, "article_id")
    if len(article_id) > MAX_ARTICLE_ID:
        raise ValidationError(
            f"article_id must be at most {MAX_ARTICLE_ID} characters", "article_id"
        )
    return article_id.strip()


def check_idempotency_key(key: str) -> str:
    key = check_text(key.strip(), "Idempotency-Key")
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise ValidationError(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters", "Idempotency-Key"
        )
    return key


def _flag(body: Mapping[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be true or false", name)
    return value


def check_fits(draft: AlertDraft, utm: UtmTags | None = None) -> None:
    """Measure the real payload in each of the alert's languages (worst-case id, timestamp and
    receipt, in both places it goes; the URL as tagged) before anything is queued."""
    url = draft.url
    if utm is not None and draft.utm:
        url = with_utm(url, utm, CAMPAIGN_PREFIX + "9" * 19)
    texts = [("", draft.lang or "en", draft.title, draft.body)] + [
        (f"translations.{t.lang}.", t.lang, t.title, t.body) for t in draft.translations
    ]
    for prefix, lang, title, text in texts:
        data = payload_dict(
            "9" * 19,
            title,
            text,
            url,
            story_key(draft.url, draft.article_id),
            9_999_999_999,
            draft.image,
            draft.icon,
            WORST_RECEIPT,
            lang,
        )
        field = oversize_field(data)
        if field is not None:
            if field in ("title", "body"):
                field = prefix + field
            raise ValidationError(
                f"the encrypted notification would exceed {MAX_PUSH_BODY} bytes; shorten {field}",
                field,
                code="too_large",
            )


def publish(
    draft: AlertDraft,
    alerts: AlertStore,
    subscriptions: SubscriptionStore,
    queue: TaskQueue,
    now: float,
    story: str | None = None,
) -> tuple[Alert, bool]:
    """Store the alert, commit, and only then enqueue. Returns (alert, created).

    The same article_id or Idempotency-Key returns the first alert and sends nothing new. A
    correction stored ready to send stops the alert it corrects in the same transaction
    (core/corrections.py), before its plan task is queued: that task may wait behind the
    alert's own batches, which would push the old words meanwhile.
    """
    existing = alerts.find_alert(article_id=draft.article_id, idempotency_key=draft.idempotency_key)
    if existing is not None:
        correlation.annotate(alert_id=existing.id)
        return existing, False
    status = AlertStatus.SCHEDULED if draft.send_at is not None else AlertStatus.QUEUED
    audience = (
        subscriptions.audience_size(draft.topics)
        if draft.kind in (AlertKind.NORMAL, AlertKind.STORY)
        else 0
    )
    stops = corrections.stops_on_release(draft) if status is AlertStatus.QUEUED else None
    alert, created = alerts.create_alert(
        draft, story or story_key(draft.url, draft.article_id), status, audience, now, stops=stops
    )
    # Every later line of this request or task (and the tasks it sends) names the alert.
    correlation.annotate(alert_id=alert.id)
    if created and alert.status is AlertStatus.QUEUED:
        enqueue_plan(alert, queue)
    return alert, created


def earlier_send(
    alerts: AlertStore, idempotency_key: str | None, same_request: Callable[[Alert], bool]
) -> Alert | None:
    """The alert an earlier try of this request (same key) created, or None.

    Looked up before the request's own checks: a retry after the answer was lost must get the
    first alert back even when that alert now makes the request look invalid (a correction
    still in its undo window). A key used for another request is refused rather than answered
    with an alert the caller did not ask about.
    """
    if idempotency_key is None:
        return None
    key = check_idempotency_key(idempotency_key)
    found = alerts.find_alert(article_id=None, idempotency_key=key)
    if found is None:
        return None
    if not same_request(found):
        raise Conflict(
            f"this send key was already used for alert #{found.id}; reload the page and try again",
            "Idempotency-Key",
        )
    correlation.annotate(alert_id=found.id)
    return found


def enqueue_plan(alert: Alert, queue: TaskQueue) -> None:
    """A broker outage must not lose the alert: it stays queued and the reconciler retries."""
    with Outbox("plans") as outbox:
        outbox.put(queue.enqueue_plan, alert.id, alert.lane)


def cancel(alert_id: int, alerts: AlertStore, now: float) -> Alert:
    """Stop an alert: scheduled ones never fire; in-flight deliveries stop within a second or two."""
    correlation.annotate(alert_id=alert_id)
    alert = alerts.get_alert(alert_id)
    if alert is None:
        raise NotFound("no such alert", "id")
    if alert.status.finished and alert.status is not AlertStatus.CANCELLED:
        raise Conflict(f"alert is already {alert.status.value}", "status")
    alerts.set_status(
        alert_id,
        AlertStatus.CANCELLED,
        now,
        only_from=(AlertStatus.SCHEDULED, AlertStatus.QUEUED, AlertStatus.SENDING),
    )
    result = alerts.get_alert(alert_id)
    assert result is not None
    return result


def correction_draft(
    original: Alert,
    body: object,
    rules: AlertRules,
    created_by: str | None,
    idempotency_key: str | None = None,
) -> AlertDraft:
    """A correction: new words, the same audience, Topic and tag, so it replaces the original."""
    if not isinstance(body, Mapping):
        raise ValidationError("body must be a JSON object")
    merged = {
        "title": body.get("title", original.title),
        "body": body.get("body", original.body),
        "url": body.get("url", original.url),
        "topics": list(original.topics),
        "urgency": original.urgency.value,
        "ttl": original.ttl_s,
        "utm": body.get("utm", original.utm),
    }
    if original.image:
        merged["image"] = body.get("image", original.image)
    # New main words without new translations: every reader gets the corrected main words
    # rather than an uncorrected translation.
    merged["lang"] = body.get("lang", original.lang)
    reworded = (merged["title"], merged["body"]) != (original.title, original.body)
    kept = {} if reworded else translations_json(original.translations)
    merged["translations"] = body.get("translations", kept)
    draft = parse_alert_request(
        merged, rules, 0.0, idempotency_key=idempotency_key, created_by=created_by
    )
    return replace(draft, kind=AlertKind.CORRECTION, corrects_id=original.id)
