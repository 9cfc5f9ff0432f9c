"""The duplicate guard: one rule in the Newsroom use case for every way in (API, newsroom, CMS)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.duplicates import DuplicateAlert, article_key, headline_similarity
from core.errors import ValidationError
from core.model import AlertStatus
from core.usecases.newsroom import Editor
from tests.support.usecase_fakes import ORIGIN, NewsroomKit

ANNA = Editor("anna@news.example", user_id=7)
BODY = {"title": "Minister resigns over budget", "body": "Details soon", "url": f"{ORIGIN}/a"}
SIX_H = 6 * 3600


@pytest.fixture
def kit() -> NewsroomKit:
    return NewsroomKit(duplicate_window_s=SIX_H)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Minister resigns over budget", "minister RESIGNS over budget!"),
        ("Minister resigns over budget", "Budget: minister resigns — over"),
        ("Minister  resigns\tover budget", "Minister resigns over budget."),
        ("\uff21\uff4c\uff45\uff52\uff54: quake hits Nairobi", "alert quake hits nairobi"),  # NFKC
    ],
)
def test_headlines_the_same_up_to_case_punctuation_spacing_and_order(a: str, b: str) -> None:
    assert headline_similarity(a, b) >= 0.9


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Minister resigns over budget", "Minister stays despite budget"),
        ("Quake hits Nairobi", "Quake hits Mombasa"),
        ("LIVE: quake", "UPDATE: quake"),
    ],
)
def test_different_headlines_are_not_duplicates(a: str, b: str) -> None:
    assert headline_similarity(a, b) < 0.9


def test_a_long_headline_may_gain_a_word_but_not_change_one() -> None:
    long = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    assert headline_similarity(long + " fifteen", long + " sixteen") < 0.9
    assert headline_similarity(long + " fifteen sixteen twenty", long + " fifteen sixteen") >= 0.9


def test_the_same_article_ignores_fragment_slash_host_case_and_utm() -> None:
    assert article_key("https://News.Example/a/?utm_source=x&b=1#top") == article_key(
        "https://news.example/a?b=1"
    )
    assert article_key("https://news.example/a?b=1") != article_key("https://news.example/a?b=2")


def test_the_same_article_again_is_refused_with_the_earlier_alert(kit: NewsroomKit) -> None:
    first = kit.room.publish(ANNA, BODY).alert
    kit.clock.now += 3600
    with pytest.raises(DuplicateAlert) as refused:
        kit.room.publish(ANNA, {**BODY, "title": "Something else entirely"})
    assert refused.value.earlier.id == first.id and refused.value.status == 409
    assert refused.value.field == "duplicate_ok"
    assert kit.queue.plans == [first.id] and len(kit.alerts.alerts) == 1


def test_a_near_identical_headline_on_another_url_is_refused(kit: NewsroomKit) -> None:
    first = kit.room.publish(ANNA, BODY).alert
    with pytest.raises(DuplicateAlert) as refused:
        kit.room.publish(
            ANNA, {**BODY, "title": "MINISTER resigns: over budget", "url": f"{ORIGIN}/b"}
        )
    assert refused.value.earlier.id == first.id
    assert "nearly the same headline" in refused.value.message


def test_duplicate_ok_sends_and_the_audit_row_names_the_earlier_alert(kit: NewsroomKit) -> None:
    first = kit.room.publish(ANNA, BODY).alert
    again = kit.room.publish(ANNA, {**BODY, "duplicate_ok": True})
    assert again.created and again.alert.id != first.id
    assert kit.audit.rows[-1][3]["duplicate_of"] == first.id
    with pytest.raises(ValidationError) as bad:
        kit.room.publish(ANNA, {**BODY, "duplicate_ok": "yes"})
    assert bad.value.field == "duplicate_ok"


def test_outside_the_window_or_after_an_undo_it_is_no_duplicate(kit: NewsroomKit) -> None:
    first = kit.room.publish(ANNA, BODY, undo_window=True).alert
    kit.room.cancel(ANNA, first.id)  # called off: nobody received it
    second = kit.room.publish(ANNA, BODY).alert
    kit.alerts.put(replace(second, status=AlertStatus.SENT))
    kit.clock.now += SIX_H + 1
    assert kit.room.publish(ANNA, BODY).created


def test_a_retry_of_the_same_request_answers_with_the_first_alert(kit: NewsroomKit) -> None:
    first = kit.room.publish(ANNA, BODY, idempotency_key="k1")
    again = kit.room.publish(ANNA, BODY, idempotency_key="k1")
    assert not again.created and again.alert.id == first.alert.id


def test_a_test_send_is_never_an_earlier_duplicate(kit: NewsroomKit) -> None:
    kit.subscriptions.set_test_device(1, ANNA.user_id)
    kit.room.test_send(ANNA, BODY)
    assert kit.room.publish(ANNA, BODY).created


def test_the_cms_gets_the_same_rule_and_may_say_it_is_intended(kit: NewsroomKit) -> None:
    first = kit.room.publish(ANNA, BODY).alert
    article = {"id": "a-1", "breaking": True, "title": BODY["title"], "url": f"{ORIGIN}/z"}
    with pytest.raises(DuplicateAlert) as refused:
        kit.room.receive_cms("msg-1", {"article": article})
    assert refused.value.earlier.id == first.id
    # The refused message is forgotten, so the CMS may resend it saying the repeat is intended.
    published = kit.room.receive_cms("msg-1", {"article": {**article, "duplicate_ok": True}})
    assert published is not None and published.created
