"""The move's tombstone rule on in-memory ports: a subscription deleted as gone is moved with its
choices when the old auth secret proves it, a wrong secret or an expired tombstone answers as an
unknown endpoint does, and a reader who turns alerts off takes the tombstone with them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pytest

from core.errors import DomainError, NotFound
from core.model import Subscription, SubscriptionInput
from core.tombstones import Tombstone, endpoint_digest, no_such_subscription, secret_digest
from core.usecases.readers import DAY_S, Readers
from tests.support.usecase_fakes import (
    READER_RULES,
    RECEIPTS,
    Clock,
    FakeEvents,
    FakeSubscriptions,
    browser_json,
)


@dataclass
class FakeTombstones:
    """TombstoneStore over FakeSubscriptions: what the ledger leaves of a gone reader."""

    subscriptions: FakeSubscriptions
    stones: dict[str, Tombstone] = field(default_factory=dict)
    restored: list[SubscriptionInput] = field(default_factory=list)

    def gone(self, sub: Subscription, at: float) -> None:
        """The push service answered 410: the row goes, its tombstone stays."""
        del self.subscriptions.rows[sub.id]
        digest = endpoint_digest(sub.endpoint)
        self.stones[digest] = Tombstone(
            digest, secret_digest(sub.auth), at, sub.topics, "sw", "android"
        )

    def find_tombstone(self, digest: str) -> Tombstone | None:
        return self.stones.get(digest)

    def restore(
        self, stone: Tombstone, new: SubscriptionInput, now: float
    ) -> tuple[Subscription, bool]:
        if self.stones.pop(stone.endpoint_digest, None) is None:
            raise no_such_subscription()
        self.restored.append(new)
        return self.subscriptions.upsert(new, now)

    def forget_tombstone(self, stone: Tombstone) -> bool:
        return self.stones.pop(stone.endpoint_digest, None) is not None


@dataclass
class Kit:
    clock: Clock
    subscriptions: FakeSubscriptions
    tombstones: FakeTombstones
    readers: Readers


@pytest.fixture
def kit() -> Kit:
    clock, subscriptions = Clock(), FakeSubscriptions()
    tombstones = FakeTombstones(subscriptions)
    readers = Readers(
        subscriptions, FakeEvents(), RECEIPTS, READER_RULES, clock=clock, tombstones=tombstones
    )
    return Kit(clock, subscriptions, tombstones, readers)


def _change(old: dict[str, object], new: dict[str, object], auth: str | None = None) -> dict:  # type: ignore[type-arg]
    keys = old["keys"]
    assert isinstance(keys, dict)
    return {"oldEndpoint": old["endpoint"], "oldAuth": auth or keys["auth"], "subscription": new}


def _answer(error: DomainError) -> tuple[int, str, str, str | None]:
    return (error.status, error.code, error.message, error.field)


def test_a_move_after_the_old_subscription_went_gone_keeps_the_readers_choices(kit: Kit) -> None:
    old, new = browser_json("old"), browser_json("new")
    sub, _ = kit.readers.subscribe({**old, "topics": ["sport"]})
    kit.tombstones.gone(sub, kit.clock.now)
    kit.clock.now += 3 * DAY_S

    moved, created = kit.readers.move(_change(old, new))

    assert created and moved.endpoint == new["endpoint"] and moved.topics == ("sport",)
    (given,) = kit.tombstones.restored
    assert (given.topics, given.lang, given.platform) == (("sport",), "sw", "android")
    assert kit.tombstones.stones == {}, "a tombstone restores once"
    with pytest.raises(NotFound):
        kit.readers.move(_change(old, browser_json("newer")))


def test_a_wrong_secret_or_an_expired_tombstone_answers_as_an_unknown_endpoint(kit: Kit) -> None:
    old, new = browser_json("old"), browser_json("new")
    sub, _ = kit.readers.subscribe(old)
    kit.tombstones.gone(sub, kit.clock.now)
    with pytest.raises(NotFound) as unknown:
        kit.readers.move(_change(browser_json("stranger"), new))
    with pytest.raises(NotFound) as wrong:
        kit.readers.move(_change(old, new, auth=browser_json("other")["keys"]["auth"]))  # type: ignore[index]
    assert _answer(wrong.value) == _answer(unknown.value)
    assert kit.subscriptions.rows == {} and len(kit.tombstones.stones) == 1

    kit.clock.now += 30 * DAY_S + 1
    with pytest.raises(NotFound) as expired:
        kit.readers.move(_change(old, new))
    assert _answer(expired.value) == _answer(unknown.value)
    assert kit.subscriptions.rows == {}


def test_turning_alerts_off_takes_the_tombstone_and_a_later_move_finds_nothing(
    kit: Kit,
) -> None:
    old = browser_json("old")
    sub, _ = kit.readers.subscribe(old)
    kit.tombstones.gone(sub, kit.clock.now)
    keys = old["keys"]
    assert isinstance(keys, dict)
    with pytest.raises(NotFound):
        kit.readers.unsubscribe(
            {"endpoint": old["endpoint"], "auth": browser_json("x")["keys"]["auth"]}
        )  # type: ignore[index]
    assert len(kit.tombstones.stones) == 1, "a wrong secret takes nothing"
    kit.readers.unsubscribe({"endpoint": old["endpoint"], "auth": keys["auth"]})
    assert kit.tombstones.stones == {}
    with pytest.raises(NotFound):
        kit.readers.move(_change(old, browser_json("new")))


def test_without_a_tombstone_store_a_gone_subscription_is_unknown() -> None:
    subscriptions = FakeSubscriptions()
    readers = Readers(subscriptions, FakeEvents(), RECEIPTS, READER_RULES, clock=Clock())
    old = browser_json("old")
    sub, _ = readers.subscribe(old)
    del subscriptions.rows[sub.id]
    with pytest.raises(NotFound):
        readers.move(_change(old, browser_json("new")))


def test_the_digests_are_sha256_hex_and_ignore_the_secrets_padding() -> None:
    """The PostgreSQL ledger statement computes the same values in SQL (ledger_pg, `buried`)."""
    assert endpoint_digest("https://x/é") == hashlib.sha256("https://x/é".encode()).hexdigest()
    assert secret_digest("abc==") == secret_digest("abc") == hashlib.sha256(b"abc").hexdigest()
