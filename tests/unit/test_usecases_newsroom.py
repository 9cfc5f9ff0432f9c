"""The Newsroom use cases on in-memory ports: each rule once, one audit row per action."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.errors import Conflict, NotFound, ValidationError
from core.model import AlertKind, AlertStatus, SubscriptionInput
from core.usecases.newsroom import Editor, NeedsConfirmation
from core.webhooks import WebhookReplayed
from tests.support.usecase_fakes import ORIGIN, NewsroomKit

ANNA = Editor("anna@news.example", user_id=7)
BODY = {"title": "Minister resigns", "body": "Details soon", "url": f"{ORIGIN}/a"}


@pytest.fixture
def kit() -> NewsroomKit:
    kit = NewsroomKit()
    for i, topics in enumerate((("breaking",), ("politics",), ("breaking", "politics"))):
        kit.subscriptions.upsert(
            SubscriptionInput(f"https://push.example/{i}", "p" * 87, "a" * 22, topics), 0.0
        )
    return kit


def _sent(kit: NewsroomKit) -> int:
    alert = kit.room.publish(ANNA, BODY).alert
    kit.alerts.put(replace(alert, status=AlertStatus.SENT))
    return alert.id


def test_publish_stores_enqueues_and_audits_once_even_when_repeated(kit: NewsroomKit) -> None:
    first = kit.room.publish(ANNA, BODY, idempotency_key="k1")
    again = kit.room.publish(ANNA, BODY, idempotency_key="k1")
    assert first.created and not again.created and again.alert.id == first.alert.id
    assert first.alert.status is AlertStatus.QUEUED and first.alert.counts.audience == 0
    assert kit.queue.plans == [first.alert.id]
    assert kit.audit.rows == [
        (
            ANNA.name,
            "alert.send",
            str(first.alert.id),
            {
                "title": "Minister resigns",
                "topics": ["breaking"],
                "send_at": None,
                "undo_window_s": 0,
            },
        )
    ]


def test_a_newsroom_send_waits_out_the_undo_window_and_undo_is_audited(
    kit: NewsroomKit,
) -> None:
    published = kit.room.publish(ANNA, BODY, undo_window=True)
    assert published.alert.status is AlertStatus.SCHEDULED and not published.scheduled
    assert published.alert.send_at == kit.clock.now + kit.undo_window_s
    assert kit.queue.plans == []
    cancelled = kit.room.cancel(ANNA, published.alert.id)
    assert cancelled.undo and cancelled.alert.status is AlertStatus.CANCELLED
    assert kit.audit.actions() == ["alert.send", "alert.cancel"]
    assert kit.audit.rows[-1][3] == {"was": "scheduled", "undo": True, "delivered": 0}


def test_a_send_to_every_topic_needs_the_editors_confirmation(kit: NewsroomKit) -> None:
    everyone = {**BODY, "topics": ["breaking", "politics"]}
    with pytest.raises(NeedsConfirmation):
        kit.room.publish(ANNA, everyone, confirmed_everyone=False)
    assert kit.alerts.alerts == {} and kit.audit.rows == []
    assert kit.room.publish(ANNA, everyone, confirmed_everyone=True).created


def test_correcting_an_unsent_alert_is_refused_with_one_conflict(kit: NewsroomKit) -> None:
    queued = kit.room.publish(ANNA, BODY).alert
    with pytest.raises(Conflict) as refused:
        kit.room.correct(ANNA, queued.id, {"title": "Minister stays"})
    assert refused.value.status == 409 and refused.value.field == "status"
    with pytest.raises(NotFound):
        kit.room.correct(ANNA, 999, {"title": "Minister stays"})
    assert kit.audit.actions() == ["alert.send"]


def test_a_correction_reaches_the_originals_story_and_is_audited(kit: NewsroomKit) -> None:
    original = _sent(kit)
    fixed = kit.room.correct(ANNA, original, {"title": "Minister stays"})
    assert fixed.kind is AlertKind.CORRECTION and fixed.corrects_id == original
    assert fixed.story_key == kit.alerts.alerts[original].story_key
    actor, action, target, detail = kit.audit.rows[-1]
    assert (actor, action, target, detail["corrects"]) == (
        ANNA.name,
        "alert.correct",
        str(fixed.id),
        original,
    )
    assert detail["before"]["title"] == "Minister resigns"
    assert detail["after"]["title"] == "Minister stays"
    test = kit.alerts.put(replace(kit.alerts.alerts[fixed.id], kind=AlertKind.TEST))
    with pytest.raises(ValidationError):
        kit.room.correct(ANNA, test.id, {})


def test_a_test_send_is_labelled_once_and_needs_a_test_device(kit: NewsroomKit) -> None:
    with pytest.raises(ValidationError) as no_device:
        kit.room.test_send(ANNA, BODY)
    assert no_device.value.field == "test"
    with pytest.raises(ValidationError):
        kit.room.test_send(Editor("api-token"), BODY)  # a token has no devices
    kit.subscriptions.set_test_device(1, ANNA.user_id)
    once = kit.room.test_send(ANNA, BODY)
    twice = kit.room.test_send(ANNA, {**BODY, "title": "[TEST] Minister resigns"})
    assert once.title == twice.title == "[TEST] Minister resigns"
    assert once.kind is AlertKind.TEST and once.test_user_id == ANNA.user_id
    assert kit.audit.actions() == ["alert.test", "alert.test"]


def test_only_a_scheduled_alert_can_be_edited(kit: NewsroomKit) -> None:
    later = {**BODY, "send_at": kit.clock.now + 3600}
    scheduled = kit.room.publish(ANNA, later)
    assert scheduled.scheduled and kit.audit.actions() == ["alert.schedule"]
    edited = kit.room.edit_scheduled(ANNA, scheduled.alert.id, {**later, "title": "New"})
    assert edited.title == "New" and kit.audit.actions()[-1] == "alert.schedule.edit"
    sent = _sent(kit)
    with pytest.raises(Conflict):
        kit.room.edit_scheduled(ANNA, sent, later)
    assert kit.audit.actions().count("alert.schedule.edit") == 1


def test_a_cms_article_publishes_once_and_a_failed_one_can_be_retried(kit: NewsroomKit) -> None:
    article = {"article": {**BODY, "id": "a-1", "breaking": True}}
    with pytest.raises(ValidationError):
        kit.room.receive_cms("msg-1", {"article": {"breaking": True}})
    published = kit.room.receive_cms("msg-1", article)  # the same id, corrected: not a replay
    assert published is not None and published.created
    with pytest.raises(WebhookReplayed):
        kit.room.receive_cms("msg-1", article)
    assert kit.audit.rows[-1][:2] == ("cms", "alert.send")
    assert kit.audit.rows[-1][3]["article_id"] == "a-1"
    assert kit.room.receive_cms("msg-2", article) == replace(published, created=False)
    assert kit.audit.actions() == ["alert.send"]
