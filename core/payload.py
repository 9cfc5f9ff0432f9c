"""The notification payload the service worker receives, and its encrypted size."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from core.model import Alert
from core.receipts import RECEIPT_FIELD

MAX_PUSH_BODY = 4096
# RFC 8291 aes128gcm: 86-byte header (salt 16, rs 4, idlen 1, key 65) + 1 delimiter + 16 tag.
AES128GCM_OVERHEAD = 86 + 1 + 16
MAX_PAYLOAD = MAX_PUSH_BODY - AES128GCM_OVERHEAD
_TOPIC_SAFE = re.compile(r"[^A-Za-z0-9]")


def story_key(url: str, article_id: str | None) -> str:
    """The push Topic and notification tag: ≤ 32 of [A-Za-z0-9], stable per story.

    A correction carries the same key, so the push service replaces an undelivered copy and
    the browser replaces a displayed one.
    """
    basis = f"article:{article_id}" if article_id else f"url:{url}"
    return "nf" + hashlib.sha256(basis.encode("utf-8")).hexdigest()[:30]


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
) -> dict[str, Any]:
    data: dict[str, Any] = {"id": str(alert_id), "title": title, "body": body, "url": url}
    if image:
        data["image"] = image
    if icon:
        data["icon"] = icon
    data["tag"] = tag
    data["ts"] = ts
    if receipt is not None:
        data[RECEIPT_FIELD] = receipt
    return data


def encode_payload(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def build_payload(alert: Alert, ts: int) -> bytes:
    return encode_payload(
        payload_dict(
            alert.id,
            alert.title,
            alert.body,
            alert.url,
            alert.story_key,
            ts,
            alert.image,
            alert.icon,
        )
    )


def receipt_prefix(payload: bytes) -> bytes:
    """The encoded payload opened for its last field, the per-subscription receipt:
    prefix + receipt + b'"}' is the same JSON payload_dict(..., receipt=receipt) encodes to.
    Splicing the bytes keeps the per-push cost to one HMAC and a concatenation."""
    return payload[:-1] + b',"' + RECEIPT_FIELD.encode("ascii") + b'":"'


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
