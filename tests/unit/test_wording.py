"""Editors' words: one word per state everywhere, field errors in plain words, audit sentences."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cli.alerts import finished_line, waiting_line
from core import alerts as alert_rules
from core.errors import ValidationError
from core.model import AlertCounts, AlertStatus
from core.readiness import Gate, GateState
from service import wording
from tests.support.samples import ALERT, NAIROBI, NOW


def test_a_cancelled_alert_is_called_off_or_stopped_never_cancelled() -> None:
    called_off = replace(ALERT, status=AlertStatus.CANCELLED, started_at=None)
    stopped = replace(ALERT, status=AlertStatus.CANCELLED)
    assert wording.state_word(called_off) == "Called off"
    assert wording.state_word(stopped) == "Stopped"
    undo_open = replace(ALERT, status=AlertStatus.SCHEDULED, started_at=None)
    assert wording.state_word(undo_open, in_undo_window=True) == "Sending soon"
    assert {wording.state_word(replace(ALERT, status=s)) for s in AlertStatus} == {
        "Scheduled",
        "Starting",
        "Sending",
        "Sent",
        "Failed",
        "Stopped",
    }


def _said(field: str, value: str) -> str:
    """What the newsroom says for the error the core's own parser raises on this input."""
    with pytest.raises(ValidationError) as caught:
        if field == "send_at":
            alert_rules.parse_send_at(value, "Africa/Nairobi", NOW)
        else:
            alert_rules._text({field: value}, field, alert_rules.MAX_TITLE)
    return wording.field_message(caught.value, NOW, NAIROBI)


def test_field_errors_are_in_editors_words() -> None:
    assert _said("title", "") == "Enter a headline."
    assert _said("title", "x" * 125) == (
        "The headline is 125 characters; the limit is 120. Shorten it by 5 — nothing was cut."
    )
    assert (
        _said("send_at", "2020-01-01T10:00") == "Choose a time after now — it is 19:54 in Nairobi."
    )


def test_the_audit_log_reads_as_sentences() -> None:
    sent = {"actor": "amina@news.example", "action": "alert.send", "target": "7", "detail": {}}
    assert wording.audit_sentence(sent, ALERT) == (
        "amina@news.example sent 'Floods close Thika road' to 12,400 readers."
    )
    undo = {**sent, "action": "alert.cancel", "detail": {"undo": True, "delivered": 0}}
    assert wording.audit_sentence(undo, ALERT).endswith(
        "called off 'Floods close Thika road' before it was sent."
    )
    stop = {**sent, "action": "alert.cancel", "detail": {"was": "sending", "delivered": 312}}
    assert wording.audit_sentence(stop, ALERT).endswith("after 312 readers had it.")
    cms = {"actor": "cms", "action": "alert.send", "target": "7", "detail": {"title": "X"}}
    assert wording.audit_sentence(cms) == "The CMS (webhook) sent 'X'."


def test_alerts_watch_names_a_cancelled_alert_as_the_newsroom_does() -> None:
    stopped = replace(
        ALERT, status=AlertStatus.CANCELLED, counts=AlertCounts(audience=120, delivered=48)
    )
    assert finished_line(stopped).endswith("cancelled (stopped: 48 of 120 reached).")
    called_off = replace(stopped, started_at=None)
    assert finished_line(called_off) == "alert 7 cancelled (called off: nobody received it)."
    assert finished_line(ALERT) == "alert 7 sent."


def test_alerts_watch_says_an_alert_waits_for_its_article_and_until_when() -> None:
    queued = replace(ALERT, status=AlertStatus.QUEUED)
    gate = Gate(7, GateState.WAITING, 100.0, started_at=100.0, checks=3, last_answer="HTTP 404")
    assert waiting_line(queued, gate, 120, 150.4) == (
        "alert 7 waiting for the article to be online (it answered HTTP 404); sent anyway in 70 s"
    )
    assert waiting_line(queued, replace(gate, state=GateState.LIVE), 120, 150) is None
    assert waiting_line(ALERT, gate, 120, 150) is None, "sent: the gate is history"
    assert waiting_line(queued, None, 120, 150) is None


def test_feed_template_and_send_anyway_rows_read_as_sentences() -> None:
    def said(action: str, target: str, **detail: object) -> str:
        entry = {"actor": "amina@news.example", "action": action, "target": target}
        return wording.audit_sentence({**entry, "detail": detail})

    assert said("feed.add", "3", url="https://news.example/feed", mode="auto") == (
        "amina@news.example added the feed https://news.example/feed (sends at once)."
    )
    assert said("feed.mode", "3", mode="review") == (
        "amina@news.example set feed #3 to drafts for review."
    )
    assert said("template.create", "2", name="BREAKING") == (
        "amina@news.example created the template 'BREAKING'."
    )
    assert said("alert.send_anyway", "9", checks=3) == (
        "amina@news.example sent alert #9 without waiting for the article to be online."
    )
