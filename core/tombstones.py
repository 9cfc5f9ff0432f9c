"""Tombstones: what a pushsubscriptionchange needs of a subscription its push service said is gone.

A browser renews a subscription (new endpoint, new keys) and its service worker moves the reader
with `/subscriptions/change`, proving the old one with its auth secret. When that move waits
(offline, our server down), the next alert goes to the old endpoint, the push service answers
404/410 and the ledger deletes the row; the move would then find nothing and the reader would
start again with the default topics. So a row deleted because it is gone, and only then (not
when the reader unsubscribed, was purged as stale or moved), leaves a tombstone for
NEWSFLASH_TOMBSTONE_DAYS: the reader's choices, the SHA-256 of the endpoint to find it by and
the SHA-256 of the auth secret to check the proof against, never the endpoint or the secret.
The auth secret is 16 random bytes, so its hash cannot be reversed by guessing; the proof is
compared in constant time, as the live row's secret is (core/subscriptions.py).

The PostgreSQL ledger statement computes the same digests in SQL (core/adapters/ledger_pg.py):
sha256 of the endpoint's UTF-8, and of the auth secret without base64 padding, in lower-case hex.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Protocol

from core.errors import NotFound
from core.model import Subscription, SubscriptionInput


@dataclass(frozen=True)
class Tombstone:
    """A gone subscription's proof and the choices the move gives the new endpoint (quiet
    hours, cap and followed stories stay in the store, as a live move's do)."""

    endpoint_digest: str
    secret_digest: str
    gone_at: float
    topics: tuple[str, ...]
    lang: str
    platform: str | None


class TombstoneStore(Protocol):
    def find_tombstone(self, endpoint_digest: str) -> Tombstone | None: ...
    def restore(
        self, stone: Tombstone, new: SubscriptionInput, now: float
    ) -> tuple[Subscription, bool]:
        """The new subscription with the tombstone's choices, and the tombstone removed, in one
        transaction; NotFound (nothing changed) if another request took the tombstone first."""
        ...

    def forget_tombstone(self, stone: Tombstone) -> bool:
        """The reader asked to leave: the tombstone goes (False if it was gone already)."""
        ...


def endpoint_digest(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode("utf-8")).hexdigest()


def secret_digest(auth: str) -> str:
    return hashlib.sha256(auth.rstrip("=").encode("utf-8")).hexdigest()


def proves(stone: Tombstone, auth: str) -> bool:
    """Whether `auth` is the gone subscription's secret (constant time, like the live check)."""
    return hmac.compare_digest(stone.secret_digest, secret_digest(auth))


def no_such_subscription() -> NotFound:
    """The one answer for an unknown endpoint, a wrong secret and an expired or taken tombstone:
    the API confirms to nobody who is, or was, subscribed."""
    return NotFound("no subscription with this endpoint and auth secret", "endpoint")


def proven_tombstone(
    store: TombstoneStore, endpoint: str, auth: str, gone_since: float
) -> Tombstone:
    """The tombstone of `endpoint`, only if it is younger than `gone_since` and `auth` proves
    it; else the same NotFound as an unknown endpoint."""
    stone = store.find_tombstone(endpoint_digest(endpoint))
    if stone is None or stone.gone_at < gone_since or not proves(stone, auth):
        raise no_such_subscription()
    return stone
