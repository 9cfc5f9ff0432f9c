"""The push payload is a Declarative Web Push message (WebKit) and still what our worker reads."""

from __future__ import annotations

import json

import pytest

from core.alerts import AlertRules, parse_alert_request
from core.delivery import _messages
from core.errors import ValidationError
from core.model import Alert, AlertKind, AlertStatus, Target, Translation, Urgency
from core.payload import build_payload, encrypted_size, payload_template, text_direction
from core.receipts import Receipts, receipt_key
from standin.declarative import declarative_problems

ORIGIN = "https://news.example.com"
RULES = AlertRules((ORIGIN,), frozenset({"breaking"}), ("breaking",), 3600)


def make_alert(**changes: object) -> Alert:
    fields: dict[str, object] = {
        "id": 41,
        "title": "Bridge reopens",
        "body": "Traffic flows again.",
        "url": f"{ORIGIN}/news/bridge",
        "topics": ("breaking",),
        "urgency": Urgency.HIGH,
        "ttl_s": 600,
        "story_key": "nfbridge",
        "status": AlertStatus.SENDING,
        "kind": AlertKind.NORMAL,
        "created_at": 1.0,
        "image": f"{ORIGIN}/img/bridge.jpg",
    }
    fields.update(changes)
    return Alert(**fields)  # type: ignore[arg-type]


def test_the_payload_is_a_valid_declarative_message_with_the_flat_fields_beside_it() -> None:
    alert = make_alert()
    message = json.loads(
        payload_template(alert, 1_700_000_000, alert.title, alert.body, "sw").fill(b"41.x")
    )
    assert declarative_problems(message) == []
    assert message["web_push"] == 8030 and message["mutable"] is True
    assert message["notification"] == {
        "title": "Bridge reopens",
        "body": "Traffic flows again.",
        "navigate": f"{ORIGIN}/news/bridge",
        "lang": "sw",
        "dir": "ltr",
        "tag": "nfbridge",
        "image": f"{ORIGIN}/img/bridge.jpg",
        "timestamp": 1_700_000_000_000,
        "data": {"id": "41", "d": "41.x"},
    }
    flat = {k: v for k, v in message.items() if k not in ("web_push", "notification", "mutable")}
    assert flat == {
        "id": "41",
        "title": "Bridge reopens",
        "body": "Traffic flows again.",
        "url": f"{ORIGIN}/news/bridge",
        "image": f"{ORIGIN}/img/bridge.jpg",
        "tag": "nfbridge",
        "ts": 1_700_000_000,
        "d": "41.x",
    }
    assert declarative_problems(build_payload(alert, 1)) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"web_push": 8031}, "web_push must be the integer 8030"),
        ({"web_push": "8030"}, "web_push must be the integer 8030"),
        ({"web_push": True}, "web_push must be the integer 8030"),
        ({"notification": None}, "notification must be an object"),
        ({"mutable": "yes"}, "mutable must be a boolean"),
        ({"app_badge": -1}, "app_badge must be a whole number from 0"),
        ({"n.title": ""}, "notification.title must be a non-empty string"),
        ({"n.title": 5}, "notification.title must be a non-empty string"),
        ({"n.navigate": "/news/bridge"}, "notification.navigate must be an absolute http(s) URL"),
        ({"n.navigate": "javascript:alert(1)"}, "notification.navigate must be an absolute"),
        ({"n.dir": "up"}, "notification.dir must be auto, ltr or rtl"),
        ({"n.lang": 1}, "notification.lang must be a string"),
        ({"n.silent": "no"}, "notification.silent must be a boolean"),
        ({"n.timestamp": 1.5}, "notification.timestamp must be whole milliseconds"),
        ({"n.actions": [{"action": "a", "title": "A"}]}, "notification.actions[0].navigate"),
    ],
)
def test_the_checker_refuses_what_webkit_would_not_take_as_declarative(
    change: dict[str, object], problem: str
) -> None:
    message = json.loads(build_payload(make_alert(), 1))
    for key, value in change.items():
        if key.startswith("n."):
            message["notification"][key[2:]] = value
        else:
            message[key] = value
    assert any(p.startswith(problem) for p in declarative_problems(message)), message
    assert declarative_problems(b"not json") == ["not JSON"]
    assert declarative_problems([1]) == ["not a JSON object"]


def test_each_reader_gets_their_language_else_the_alerts_main_one() -> None:
    alert = make_alert(
        lang="en", translations=(Translation("sw", "Daraja lafunguliwa", "Magari yanapita."),)
    )
    targets = [
        Target(1, "https://a/1", "k", "a", 1, lang="sw"),
        Target(2, "https://a/2", "k", "a", 1, lang="en"),
        Target(3, "https://a/3", "k", "a", 1, lang=None),  # never said: the default language
    ]
    receipts = Receipts(receipt_key("secret") or b"")
    shown = [json.loads(m.payload) for m in _messages(alert, targets, receipts, 5, "sw")]
    assert [(p["title"], p["notification"]["lang"]) for p in shown] == [
        ("Daraja lafunguliwa", "sw"),
        ("Bridge reopens", "en"),
        ("Daraja lafunguliwa", "sw"),
    ]
    assert [p["notification"]["data"]["d"] for p in shown] == [
        receipts.sign(41, i) for i in (1, 2, 3)
    ]
    assert all(declarative_problems(p) == [] for p in shown)
    # An alert without a Kiswahili text reaches Kiswahili readers in its main language.
    plain = _messages(make_alert(lang="en"), targets[:1], None, 5, "sw")
    assert json.loads(plain[0].payload)["notification"]["lang"] == "en"


def test_the_size_guard_measures_the_declarative_message_in_every_language() -> None:
    # 300 four-byte characters fit once; the declarative message carries them twice.
    body = {"title": "T", "body": "😀" * 300, "url": f"{ORIGIN}/a", "topics": ["breaking"]}
    draft = parse_alert_request(body, RULES, 0.0)
    assert encrypted_size(build_payload(make_alert(body=draft.body), 9_999_999_999)) < 4096
    long_url = dict(body, body="short", url=f"{ORIGIN}/" + "a" * 1990)
    with pytest.raises(ValidationError) as info:
        parse_alert_request(long_url, RULES, 0.0)
    assert (info.value.code, info.value.field) == ("too_large", "url")


def test_right_to_left_languages_get_rtl() -> None:
    assert [text_direction(x) for x in ("en", "sw", "ar", "he-IL")] == ["ltr", "ltr", "rtl", "rtl"]
