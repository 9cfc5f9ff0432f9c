"""Reader subscriptions: validating what the browser sends and recording opt-in changes."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec

from core.base64url import b64url_decode
from core.endpoints import EndpointPolicy, check_endpoint
from core.errors import ValidationError
from core.inputs import check_text, finite_number
from core.model import Subscription, SubscriptionInput
from core.ports import SubscriptionStore
from core.tombstones import TombstoneStore, no_such_subscription, proven_tombstone

# The languages readers get their texts and alerts in.
READER_LANGUAGES: Final = ("en", "sw")
# What the widget may report the reader's device as (the push service tells the rest).
PLATFORMS: Final = ("android", "ios", "desktop")


def _decode_key(value: object, field: str) -> bytes:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ValidationError(f"{field} must be a base64url string", field)
    if any(ch not in _B64URL for ch in value.rstrip("=")):
        raise ValidationError(f"{field} must be base64url (A-Z a-z 0-9 - _)", field)
    try:
        return b64url_decode(value.rstrip("="))
    except ValueError:
        raise ValidationError(f"{field} must be base64url", field) from None


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def check_p256dh(value: object, field: str = "keys.p256dh") -> str:
    raw = _decode_key(value, field)
    if len(raw) != 65 or raw[0] != 0x04:
        raise ValidationError(f"{field} must be a 65-byte uncompressed P-256 public key", field)
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise ValidationError(f"{field} is not a point on the P-256 curve", field) from None
    assert isinstance(value, str)
    return value.rstrip("=")


def check_auth(value: object, field: str = "keys.auth") -> str:
    raw = _decode_key(value, field)
    if len(raw) != 16:
        raise ValidationError(f"{field} must be exactly 16 bytes (base64url)", field)
    assert isinstance(value, str)
    return value.rstrip("=")


def check_lang(value: object, field: str = "lang") -> str | None:
    """The reader's language, as every entry point that takes it checks it: one of
    READER_LANGUAGES, or None (left out) to keep the stored one."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in READER_LANGUAGES:
        raise ValidationError(
            "lang must be one of " + ", ".join(READER_LANGUAGES) + " (or left out)", field
        )
    return value


def check_topics(
    value: object, known: Collection[str], field: str = "topics", default: Collection[str] = ()
) -> tuple[str, ...]:
    if value is None:
        return tuple(default)
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValidationError(f"{field} must be a list of topic slugs", field)
    unknown = [t for t in value if t not in known]
    if unknown:
        raise ValidationError(
            f"unknown topic {unknown[0][:40]!r}; known: {', '.join(sorted(known))}", field
        )
    if len(value) > 64:
        raise ValidationError(f"{field}: too many topics", field)
    return tuple(dict.fromkeys(value))


def parse_subscription(
    body: object,
    policy: EndpointPolicy,
    known_topics: Collection[str],
    default_topics: Collection[str],
    prefix: str = "",
) -> SubscriptionInput:
    """The browser's PushSubscription JSON plus topics → a validated SubscriptionInput."""
    if not isinstance(body, Mapping):
        raise ValidationError("body must be a JSON object", prefix.rstrip(".") or None)
    endpoint = check_endpoint(body.get("endpoint"), policy, prefix + "endpoint")
    keys = body.get("keys")
    if not isinstance(keys, Mapping):
        raise ValidationError("keys must be an object with p256dh and auth", prefix + "keys")
    p256dh = check_p256dh(keys.get("p256dh"), prefix + "keys.p256dh")
    auth = check_auth(keys.get("auth"), prefix + "keys.auth")
    expiration = body.get("expirationTime")
    expires_ms: float | None = None
    if expiration is not None:
        # NaN and Infinity compare false with everything, so they'd slip past a range check.
        expires_ms = _finite(expiration, prefix + "expirationTime")
        if expires_ms < 0:
            raise ValidationError(
                "expirationTime must be null or a time in milliseconds", prefix + "expirationTime"
            )
    lang = check_lang(body.get("lang"), prefix + "lang")
    platform = body.get("platform")
    if platform is not None and platform not in PLATFORMS:
        raise ValidationError(
            "platform must be one of " + ", ".join(PLATFORMS) + " (or left out)",
            prefix + "platform",
        )
    topics = check_topics(body.get("topics"), known_topics, prefix + "topics", default_topics)
    if "topics" in body and not topics:
        # An empty list would store a subscription that never receives anything.
        raise ValidationError(
            "choose at least one topic (to stop all alerts, delete the subscription)",
            prefix + "topics",
        )
    return SubscriptionInput(
        endpoint=endpoint,
        p256dh=p256dh,
        auth=auth,
        topics=topics,
        expiration_time=None if expires_ms is None else expires_ms / 1000.0,
        lang=lang,
        platform=platform,
    )


def require_str(body: Mapping[str, Any], name: str, max_len: int = 4096) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{name} is required (a string)", name)
    if len(value) > max_len:
        raise ValidationError(f"{name} must be at most {max_len} characters", name)
    return check_text(value, name)


def _finite(value: object, field: str) -> float:
    try:
        return finite_number(value, field)
    except ValidationError:
        raise ValidationError(
            "expirationTime must be null or a time in milliseconds", field
        ) from None


def record_opt_in(
    store: SubscriptionStore, sub: SubscriptionInput, now: float
) -> tuple[Subscription, bool]:
    """Upsert by endpoint: the same browser never makes a second row. Returns (row, created).

    Only the same keys may update an existing row (an idempotent re-subscribe, which may change
    the topics: the keys prove ownership); other keys raise Conflict and change nothing. A
    browser's endpoint and keys live and die together, so a real browser never needs more.
    """
    return store.upsert(sub, now)


def owned_subscription(store: SubscriptionStore, endpoint: str, auth: str) -> Subscription:
    """The row for endpoint, only if the caller also knows its auth secret (proof of ownership)."""
    existing = _proven(store, endpoint, auth)
    if existing is None:
        raise no_such_subscription()
    return existing


def _proven(store: SubscriptionStore, endpoint: str, auth: str) -> Subscription | None:
    """The live subscription `auth` proves, or None when there is none (a tombstone may stand
    for it). A wrong secret raises the same NotFound as an unknown endpoint: don't confirm who
    is subscribed."""
    existing = store.get_by_endpoint(endpoint)
    if existing is not None and not _same_secret(existing.auth, auth):
        raise no_such_subscription()
    return existing


def _same_secret(stored: str, given: str) -> bool:
    import hmac

    return hmac.compare_digest(stored.rstrip("="), given.rstrip("="))


def change_topics(store: SubscriptionStore, sub: SubscriptionInput, now: float) -> Subscription:
    """The owner's new topics, and their language when the body names one (the manage page
    sends the language it is shown in; left out, the stored one stays)."""
    existing = owned_subscription(store, sub.endpoint, sub.auth)
    return store.set_topics(existing.id, sub.topics, now, lang=sub.lang)


def remove_subscription(
    store: SubscriptionStore,
    endpoint: str,
    auth: str,
    tombstones: TombstoneStore | None = None,
    gone_since: float = 0.0,
) -> None:
    """The reader leaves. A subscription already deleted as gone (404/410) leaves with its
    tombstone too, given the same proof: turned off means never restored by a later move."""
    existing = _proven(store, endpoint, auth)
    if existing is not None:
        store.delete_ids([existing.id])
        return
    if tombstones is None:
        raise no_such_subscription()
    if not tombstones.forget_tombstone(proven_tombstone(tombstones, endpoint, auth, gone_since)):
        raise no_such_subscription()


def _moving(
    new: SubscriptionInput, topics: tuple[str, ...], lang: str, platform: str | None
) -> SubscriptionInput:
    """The new subscription with the old one's topics, language and platform unless it names
    its own."""
    return SubscriptionInput(
        new.endpoint,
        new.p256dh,
        new.auth,
        new.topics or topics,
        new.expiration_time,
        new.lang or lang,
        new.platform or platform,
        new.new_lang,
    )


def move_subscription(
    store: SubscriptionStore,
    old_endpoint: str,
    old_auth: str,
    new: SubscriptionInput,
    now: float,
    tombstones: TombstoneStore | None = None,
    gone_since: float = 0.0,
) -> tuple[Subscription, bool]:
    """pushsubscriptionchange: the reader keeps their topics on the new endpoint.

    The old row needs its auth secret; the new endpoint, if already stored, needs the same keys
    (else Conflict, and the old row stays: one transaction). When the old row was deleted
    because its push service said gone (the move waited while an alert went to the old
    endpoint), its tombstone younger than `gone_since` stands in for it, with the same proof
    and the same answer when the proof fails (core/tombstones.py)."""
    old = _proven(store, old_endpoint, old_auth)
    if old is not None:
        return store.replace(old.id, _moving(new, old.topics, old.lang, old.platform), now)
    if tombstones is None:
        raise no_such_subscription()
    stone = proven_tombstone(tombstones, old_endpoint, old_auth, gone_since)
    return tombstones.restore(stone, _moving(new, stone.topics, stone.lang, stone.platform), now)
