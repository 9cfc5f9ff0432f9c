"""The CMS webhook: Standard Webhooks signatures and which articles become alerts."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Collection, Mapping
from typing import Any

from core.errors import DomainError, ValidationError
from core.inputs import whole_number
from core.newsroom import shorten

TOLERANCE_S = 5 * 60
# A receipt must outlive every timestamp still accepted (up to 5 min late or early).
RECEIPT_KEEP_S = 3 * TOLERANCE_S
MAX_ID = 200
SECRET_PREFIX = "whsec_"


class WebhookRejected(DomainError):
    status = 401
    code = "bad_signature"


class WebhookReplayed(DomainError):
    status = 409
    code = "replayed"


def secret_bytes(secret: str) -> bytes:
    """`whsec_` + base64 of the key, as Standard Webhooks hands it out (a bare base64 works too)."""
    text = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the webhook secret is not whsec_ + base64") from None
    if len(key) < 16:
        raise ValueError("the webhook secret is shorter than 16 bytes")
    return key


def signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify(
    key: bytes,
    msg_id: str | None,
    timestamp: str | None,
    signatures: str | None,
    body: bytes,
    now: float,
    tolerance_s: int = TOLERANCE_S,
) -> str:
    """Check the three headers; returns the message id. The signature is checked before the
    timestamp, so an unsigned caller learns nothing about our clock."""
    for name, value in (
        ("webhook-id", msg_id),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", signatures),
    ):
        if not value:
            raise WebhookRejected(f"the {name} header is missing", name, code="missing_header")
    assert msg_id is not None and timestamp is not None and signatures is not None
    if len(msg_id) > MAX_ID or any(ord(ch) < 0x21 or ord(ch) > 0x7E for ch in msg_id):
        raise WebhookRejected("webhook-id must be 1 to 200 visible ASCII characters", "webhook-id")
    if whole_number(timestamp, 12) is None:
        raise WebhookRejected(
            "webhook-timestamp must be unix seconds", "webhook-timestamp", code="bad_timestamp"
        )
    expected = signature(key, msg_id, timestamp, body)
    offered = [sig.partition(",")[2] for sig in signatures.split() if sig.partition(",")[0] == "v1"]
    if not any(hmac.compare_digest(expected.encode(), sig.encode()) for sig in offered):
        raise WebhookRejected("the webhook signature does not match", "webhook-signature")
    if abs(now - int(timestamp)) > tolerance_s:
        raise WebhookRejected(
            f"webhook-timestamp is more than {tolerance_s // 60} minutes off our clock",
            "webhook-timestamp",
            code="stale_timestamp",
        )
    return msg_id


def alert_request(
    payload: object, known_topics: Collection[str], default_topics: Collection[str]
) -> dict[str, Any] | None:
    """A CMS article event → the body for publishing, or None when it is not flagged for an
    alert (`breaking: true` or `alert: true`). The article id is the idempotency key."""
    if not isinstance(payload, Mapping):
        raise ValidationError("the webhook body must be a JSON object")
    article = payload.get("article", payload)
    prefix = "article." if "article" in payload else ""
    if not isinstance(article, Mapping):
        raise ValidationError("article must be an object", "article")
    breaking = article.get("breaking") is True
    if not breaking and article.get("alert") is not True:
        return None
    article_id = article.get("id")
    if isinstance(article_id, int) and not isinstance(article_id, bool):
        article_id = str(article_id)
    if not isinstance(article_id, str) or not article_id.strip():
        raise ValidationError("the article's id is required (the idempotency key)", prefix + "id")
    title = article.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ValidationError("the article's title is required", prefix + "title")
    text = next(
        (
            v
            for v in (article.get("summary"), article.get("description"))
            if isinstance(v, str) and v.strip()
        ),
        title,
    )
    topics = article.get("topics")
    if topics is None:
        topics = []
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        raise ValidationError("topics must be a list of topic slugs", prefix + "topics")
    # CMS sections are a wider taxonomy than our topics: keep the ones readers can follow.
    known = [t for t in topics if t in known_topics]
    if breaking and "breaking" in known_topics and "breaking" not in known:
        known.insert(0, "breaking")
    if topics and not known:
        raise ValidationError(
            f"none of the article's topics is one of ours ({', '.join(sorted(known_topics))})",
            prefix + "topics",
        )
    body: dict[str, Any] = {
        "title": shorten(title, 120),
        "body": shorten(text, 300),
        "url": article.get("url"),
        "topics": known or list(default_topics),
        "article_id": article_id.strip(),
    }
    for name in ("image", "urgency", "ttl", "duplicate_ok"):
        if article.get(name) is not None:
            body[name] = article[name]
    return body
