"""Delivery receipts: the token each push carries so a browser can prove it got that alert."""

from __future__ import annotations

import binascii
import enum
import hashlib
import hmac
import re
from typing import Protocol

# The payload field the service worker echoes back with its displayed / clicked reports.
RECEIPT_FIELD = "d"
# "<subscription id>.<22 base64url chars>": the longest one, for the payload size check.
WORST_RECEIPT = "9" * 19 + "." + "A" * 22
_RECEIPT = re.compile(r"([1-9][0-9]{0,18})\.([A-Za-z0-9_-]{22})")
_LABEL = b"newsflash delivery receipt v1"
_STD_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def receipt_key(secret_key: str) -> bytes | None:
    """The receipt key, derived from NEWSFLASH_SECRET_KEY (never the key itself), or None.

    Without a configured secret key the web app signs sessions with a per-process random key;
    receipts then can't be checked by another process, so none are issued and none count.
    """
    if not secret_key:
        return None
    return hmac.digest(secret_key.encode("utf-8"), _LABEL, hashlib.sha256)


class Receipts:
    """Signs and checks receipts: an HMAC over (alert id, subscription id), nothing stored.

    One keyed HMAC copied per push (about 2 µs); the worker signs in its fan-out loop,
    the web app checks the echo. 128 bits of MAC: guessing one is hopeless.
    """

    def __init__(self, key: bytes) -> None:
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    def sign_bytes(self, alert_id: int, subscription_id: int) -> bytes:
        """The receipt as ASCII bytes, as the fan-out splices it into each payload."""
        mac = self._keyed.copy()
        mac.update(b"%d.%d" % (alert_id, subscription_id))
        tag = binascii.b2a_base64(mac.digest()[:16], newline=False)[:22]
        return b"%d.%s" % (subscription_id, tag.translate(_STD_TO_URLSAFE))

    def sign(self, alert_id: int, subscription_id: int) -> str:
        return self.sign_bytes(alert_id, subscription_id).decode("ascii")

    def check(self, alert_id: int, receipt: object) -> int | None:
        """The subscription id a genuine receipt for this alert names, else None."""
        if not isinstance(receipt, str) or len(receipt) > len(WORST_RECEIPT):
            return None
        found = _RECEIPT.fullmatch(receipt)
        if found is None:
            return None
        subscription_id = int(found.group(1))
        expected = self.sign(alert_id, subscription_id)
        return subscription_id if hmac.compare_digest(expected, receipt) else None


class EventResult(enum.Enum):
    """What a displayed / clicked report did."""

    COUNTED = "counted"
    ALREADY = "already"  # this browser already reported this alert: counted once
    TOO_EARLY = "too_early"  # genuine, but the worker has not recorded the delivery yet
    REFUSED = "refused"  # no genuine receipt for this alert: never counted


class EventStore(Protocol):
    def count_event(self, alert_id: int, subscription_id: int, kind: str) -> EventResult: ...


def record_event(
    store: EventStore, receipts: Receipts | None, alert_id: int, kind: str, receipt: object
) -> EventResult:
    """Count a reader's display or click once, and only with the receipt its push carried.

    The receipt is checked before the database is touched: forged reports cost one HMAC.
    """
    if receipts is None:
        return EventResult.REFUSED
    subscription_id = receipts.check(alert_id, receipt)
    if subscription_id is None:
        return EventResult.REFUSED
    return store.count_event(alert_id, subscription_id, kind)
