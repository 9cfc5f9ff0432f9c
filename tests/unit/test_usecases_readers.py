"""The Readers use cases on in-memory ports: ownership by auth secret, events only with receipts."""

from __future__ import annotations

import pytest

from core.base64url import b64url_encode
from core.errors import NotFound, ValidationError
from core.receipts import RECEIPT_FIELD, EventResult
from core.usecases.newsroom import Editor
from core.usecases.readers import Readers
from tests.support.usecase_fakes import (
    READER_RULES,
    RECEIPTS,
    Clock,
    FakeEvents,
    FakeSubscriptions,
    NewsroomKit,
    browser_json,
)


@pytest.fixture
def readers() -> Readers:
    return Readers(FakeSubscriptions(), FakeEvents(), RECEIPTS, READER_RULES, clock=Clock())


def _proof(browser: dict[str, object], auth: str | None = None) -> dict[str, object]:
    keys = browser["keys"]
    assert isinstance(keys, dict)
    return {"endpoint": browser["endpoint"], "auth": auth or keys["auth"]}


def test_subscribe_is_idempotent_and_defaults_the_topics(readers: Readers) -> None:
    browser = browser_json("anna")
    sub, created = readers.subscribe(browser)
    again, created_again = readers.subscribe({**browser, "topics": ["sport"]})
    assert created and not created_again and again.id == sub.id
    assert sub.topics == ("breaking",) and again.topics == ("sport",)


def test_every_change_needs_the_auth_secret_and_a_wrong_one_changes_nothing(
    readers: Readers,
) -> None:
    browser = browser_json("anna")
    readers.subscribe(browser)
    wrong = b64url_encode(b"someone-else....")
    for action in (readers.lookup, readers.unsubscribe):
        with pytest.raises(NotFound):
            action(_proof(browser, wrong))
    forged = {**browser, "keys": {**browser["keys"], "auth": wrong}, "topics": ["sport"]}  # type: ignore[dict-item]
    with pytest.raises(NotFound):
        readers.change_subscription(forged)
    with pytest.raises(ValidationError) as no_topics:
        readers.change_subscription(browser)
    assert no_topics.value.field == "topics"
    assert readers.lookup(_proof(browser)).topics == ("breaking",)
    readers.unsubscribe(_proof(browser))
    with pytest.raises(NotFound):
        readers.lookup(_proof(browser))


def test_a_moved_subscription_keeps_its_topics(readers: Readers) -> None:
    old, new = browser_json("old"), browser_json("new")
    readers.subscribe({**old, "topics": ["sport"]})
    keys = old["keys"]
    assert isinstance(keys, dict)
    moved, created = readers.move(
        {"oldEndpoint": old["endpoint"], "oldAuth": keys["auth"], "subscription": new}
    )
    assert created and moved.topics == ("sport",) and moved.endpoint == new["endpoint"]
    with pytest.raises(NotFound):
        readers.lookup(_proof(old))


def test_events_count_only_with_the_receipt_the_push_carried() -> None:
    events = FakeEvents()
    readers = Readers(FakeSubscriptions(), events, RECEIPTS, READER_RULES)
    genuine = RECEIPTS.sign(5, 9)
    counted = readers.report_event({"type": "clicked", "alert": "5", RECEIPT_FIELD: genuine})
    assert counted is EventResult.COUNTED and events.counted == [(5, 9, "clicked")]
    forged = readers.report_event({"type": "clicked", "alert": 6, RECEIPT_FIELD: genuine})
    assert forged is EventResult.REFUSED
    with pytest.raises(ValidationError):
        readers.report_event({"type": "opened", "alert": 5, RECEIPT_FIELD: genuine})
    no_key = Readers(FakeSubscriptions(), events, None, READER_RULES)
    refused = no_key.report_event({"type": "clicked", "alert": 5, RECEIPT_FIELD: genuine})
    assert refused is EventResult.REFUSED and len(events.counted) == 1


def test_a_test_device_needs_the_same_proof_and_is_audited_once() -> None:
    kit = NewsroomKit()
    anna = Editor("anna@news.example", user_id=7)
    browser = browser_json("anna")
    sub, _ = Readers(kit.subscriptions, FakeEvents(), None, READER_RULES).subscribe(browser)
    with pytest.raises(NotFound):
        kit.room.mark_test_device(anna, str(browser["endpoint"]), "AAAAAAAAAAAAAAAAAAAAAA", True)
    assert kit.audit.rows == []
    auth = _proof(browser)["auth"]
    assert isinstance(auth, str)
    assert kit.room.mark_test_device(anna, str(browser["endpoint"]), auth + "==", True) == 1
    assert kit.audit.rows == [(anna.name, "test_device.set", str(sub.id), {})]
    assert kit.room.mark_test_device(anna, str(browser["endpoint"]), auth, False) == 0
