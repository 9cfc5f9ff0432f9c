"""The notification payload: one JSON message that is a Declarative Web Push message (WebKit)
and carries, beside it, what our service worker reads; and its encrypted size."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from core.model import Alert, AlertKind
from core.receipts import RECEIPT_FIELD

MAX_PUSH_BODY = 4096
# RFC 8291 aes128gcm: 86-byte header (salt 16, rs 4, idlen 1, key 65) + 1 delimiter + 16 tag.
AES128GCM_OVERHEAD = 86 + 1 + 16
MAX_PAYLOAD = MAX_PUSH_BODY - AES128GCM_OVERHEAD
# Declarative Web Push: a push message whose JSON has "web_push": 8030 (the RFC's number) is
# shown by the browser itself (Safari 18.4+), service worker or not.
DECLARATIVE_MAGIC = 8030
_TOPIC_SAFE = re.compile(r"[^A-Za-z0-9]")
_RTL_LANGUAGES = frozenset({"ar", "dv", "fa", "he", "ps", "ur", "yi"})
# Stands for the receipt while a payload is encoded once per language and batch; a random
# token no alert text can contain, so splitting on it finds exactly the receipt's places.
_RECEIPT_SLOT = "nfreceipt" + secrets.token_hex(16)


def story_key(url: str, article_id: str | None) -> str:
    """The push Topic and notification tag: ≤ 32 of [A-Za-z0-9], stable per story.

    A correction carries the same key, so the push service replaces an undelivered copy and
    the browser replaces a displayed one.
    """
    basis = f"article:{article_id}" if article_id else f"url:{url}"
    return "nf" + hashlib.sha256(basis.encode("utf-8")).hexdigest()[:30]


def text_direction(lang: str) -> str:
    """The notification's dir for a language tag: rtl for right-to-left scripts, else ltr."""
    return "rtl" if lang.split("-", 1)[0].lower() in _RTL_LANGUAGES else "ltr"


def payload_dict(
    alert_id: int | str,
    title: str,
    body: str,
    url: str,
    tag: str,
    ts: int,
    image: str | None = None,
    icon: str | None = None,
    receipt: str | None = None,
    lang: str = "en",
) -> dict[str, Any]:
    """The message: a declarative push (web_push, notification, mutable) and, beside it, the
    flat fields every earlier version sent (id, title, body, url, image, icon, tag, ts, d).

    The browser shows `notification` by itself where Declarative Web Push is supported and
    opens `navigate` on a click; `mutable` lets our service worker see it first (WebKit fires
    `pushnotification`), and `notification.data` carries the alert id and receipt there.
    Elsewhere (Chrome, Firefox, Edge) the service worker's push handler reads the same message.
    """
    data: dict[str, Any] = {"id": str(alert_id)}
    if receipt is not None:
        data[RECEIPT_FIELD] = receipt
    notification: dict[str, Any] = {
        "title": title,
        "body": body,
        "navigate": url,
        "lang": lang,
        "dir": text_direction(lang),
        "tag": tag,
    }
    if image:
        notification["image"] = image
    if icon:
        notification["icon"] = icon
    notification["timestamp"] = ts * 1000
    notification["data"] = data
    message: dict[str, Any] = {
        "web_push": DECLARATIVE_MAGIC,
        "notification": notification,
        "mutable": True,
        "id": str(alert_id),
        "title": title,
        "body": body,
        "url": url,
    }
    if image:
        message["image"] = image
    if icon:
        message["icon"] = icon
    message["tag"] = tag
    message["ts"] = ts
    if receipt is not None:
        message[RECEIPT_FIELD] = receipt
    return message


def encode_payload(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class PayloadTemplate:
    """One alert's encoded payload in one language, cut open where each receipt goes.

    Encoded once per language and batch; each push is then one HMAC and a bytes join.
    """

    parts: tuple[bytes, ...]

    def fill(self, receipt: bytes) -> bytes:
        return receipt.join(self.parts)


def with_follow(alert: Alert, message: dict[str, Any]) -> dict[str, Any]:
    """A story's first alert: the service worker offers "Follow this story" (the tag names it)."""
    if alert.kind is AlertKind.STORY:
        message["follow"] = True
    return message


def payload_template(alert: Alert, ts: int, title: str, body: str, lang: str) -> PayloadTemplate:
    encoded = encode_payload(
        with_follow(
            alert,
            payload_dict(
                alert.id,
                title,
                body,
                alert.url,
                alert.story_key,
                ts,
                alert.image,
                alert.icon,
                _RECEIPT_SLOT,
                lang,
            ),
        )
    )
    parts = tuple(encoded.split(_RECEIPT_SLOT.encode("ascii")))
    assert len(parts) == 3, "the receipt goes in notification.data and at the top level"
    return PayloadTemplate(parts)


def build_payload(
    alert: Alert, ts: int, lang: str = "en", title: str | None = None, body: str | None = None
) -> bytes:
    """The payload without a receipt (reports from it never count)."""
    return encode_payload(
        with_follow(
            alert,
            payload_dict(
                alert.id,
                alert.title if title is None else title,
                alert.body if body is None else body,
                alert.url,
                alert.story_key,
                ts,
                alert.image,
                alert.icon,
                None,
                lang,
            ),
        )
    )


def encrypted_size(payload: bytes) -> int:
    return len(payload) + AES128GCM_OVERHEAD


def oversize_field(data: dict[str, Any]) -> str | None:
    """None if the encrypted body fits in 4096 bytes, else the field best shortened."""
    if encrypted_size(encode_payload(data)) <= MAX_PUSH_BODY:
        return None
    candidates = [k for k in ("body", "title", "url", "image", "icon") if data.get(k)]
    return max(candidates, key=lambda k: len(encode_payload({k: data[k]})))


def topic_header(key: str) -> str:
    return _TOPIC_SAFE.sub("", key)[:32]
