"""Corrections: the latest in the chain is corrected, the undo window, the chain, what changed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.corrections import stopped_by, word_diff
from core.errors import Conflict
from core.model import AlertKind, AlertStatus
from core.usecases.newsroom import Editor
from tests.support.usecase_fakes import ORIGIN, NewsroomKit

ANNA = Editor("anna@news.example", user_id=7)
BODY = {"title": "Five killed in crash", "body": "Police say", "url": f"{ORIGIN}/crash"}


@pytest.fixture
def kit() -> NewsroomKit:
    return NewsroomKit()


def _sent(kit: NewsroomKit, alert_id: int) -> None:
    kit.alerts.put(replace(kit.alerts.alerts[alert_id], status=AlertStatus.SENT))


def test_correcting_twice_corrects_the_latest_correction(kit: NewsroomKit) -> None:
    original = kit.room.publish(ANNA, BODY).alert
    _sent(kit, original.id)
    first = kit.room.correct(ANNA, original.id, {"title": "Four killed in crash"})
    _sent(kit, first.id)
    # Asked from the original's page again: it corrects the correction, from its words.
    second = kit.room.correct(ANNA, original.id, {"title": "Three killed in crash"})
    assert second.corrects_id == first.id and second.story_key == original.story_key
    assert kit.audit.rows[-1][3]["before"]["title"] == "Four killed in crash"
    assert kit.audit.rows[-1][3]["requested"] == original.id
    chain = kit.room.chain(kit.alerts.alerts[first.id])
    assert [a.id for a in chain] == [original.id, first.id, second.id]
    assert [a.id for a in kit.room.chain(second)] == [a.id for a in chain]


def test_a_correction_waits_out_the_undo_window_and_can_be_undone(kit: NewsroomKit) -> None:
    original = kit.room.publish(ANNA, BODY).alert
    _sent(kit, original.id)
    fixed = kit.room.correct(ANNA, original.id, {"title": "Four killed"}, undo_window=True)
    assert fixed.status is AlertStatus.SCHEDULED and fixed.send_at == kit.clock.now + 10
    assert kit.audit.rows[-1][3]["undo_window_s"] == 10
    # Not out yet: a second correction is refused (undo this one instead) ...
    with pytest.raises(Conflict) as refused:
        kit.room.correct(ANNA, original.id, {"title": "Three killed"})
    assert f"correction #{fixed.id}" in refused.value.message
    undone = kit.room.cancel(ANNA, fixed.id)
    assert undone.undo
    # ... and once undone, the next correction replaces the original again.
    again = kit.room.correct(ANNA, original.id, {"title": "Three killed"})
    assert again.corrects_id == original.id


def test_a_draft_correction_shows_what_it_replaces_and_sends_nothing(kit: NewsroomKit) -> None:
    original = kit.room.publish(ANNA, BODY).alert
    _sent(kit, original.id)
    target, draft = kit.room.draft_correction(ANNA, original.id, {"title": "Four killed in crash"})
    assert target.id == original.id and draft.kind is AlertKind.CORRECTION
    assert len(kit.alerts.alerts) == 1 and kit.audit.actions() == ["alert.send"]


def test_the_word_diff_marks_what_changed() -> None:
    changes = [(c.kind, c.text) for c in word_diff("Five killed in crash", "Four killed in crash")]
    assert changes == [("del", "Five"), ("ins", "Four"), ("same", "killed in crash")]
    assert [c.kind for c in word_diff("Same", "Same")] == ["same"]


# -- the take-over starts when the correction is released --------------------------------------
def _sending(kit: NewsroomKit) -> int:
    original = kit.room.publish(ANNA, BODY).alert
    kit.alerts.put(replace(kit.alerts.alerts[original.id], status=AlertStatus.SENDING))
    return original.id


def test_releasing_a_correction_stops_the_alert_it_corrects_before_any_worker_runs(
    kit: NewsroomKit,
) -> None:
    """Its plan task may wait behind the alert's own batches: the alert must not push the old
    words meanwhile, so the use case that stores the correction stops it."""
    original = _sending(kit)
    fixed = kit.room.correct(ANNA, original, {"title": "Four killed"}, idempotency_key="k1")

    assert fixed.status is AlertStatus.QUEUED and kit.queue.plans[-1] == fixed.id
    stopped = kit.alerts.alerts[original]
    assert stopped.status is AlertStatus.CANCELLED and stopped.cancelled_at == kit.clock.now
    assert stopped_by(stopped, kit.room.chain(stopped)) == kit.alerts.alerts[fixed.id]
    # Sent again (the answer was lost): the first correction, nothing queued or stopped anew.
    plans = list(kit.queue.plans)
    kit.clock.now += 5
    again = kit.room.correct(ANNA, original, {"title": "Four killed"}, idempotency_key="k1")
    assert again.id == fixed.id and kit.queue.plans == plans
    assert kit.alerts.alerts[original].cancelled_at == stopped.cancelled_at
    assert kit.audit.actions().count("alert.correct") == 1


def test_a_correction_in_its_undo_window_stops_nothing_until_it_is_released(
    kit: NewsroomKit,
) -> None:
    original = _sending(kit)
    fixed = kit.room.correct(ANNA, original, {"title": "Four killed"}, undo_window=True)
    assert fixed.status is AlertStatus.SCHEDULED
    assert kit.alerts.alerts[original].status is AlertStatus.SENDING, "Undo is still possible"
    kit.room.cancel(ANNA, fixed.id)
    assert kit.alerts.alerts[original].status is AlertStatus.SENDING


def test_a_correction_of_a_sent_alert_stops_nothing(kit: NewsroomKit) -> None:
    original = kit.room.publish(ANNA, BODY).alert
    _sent(kit, original.id)
    kit.room.correct(ANNA, original.id, {"title": "Four killed"})
    assert kit.alerts.alerts[original.id].status is AlertStatus.SENT
