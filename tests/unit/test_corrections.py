"""Corrections: the latest in the chain is corrected, the undo window, the chain, what changed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.corrections import word_diff
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
