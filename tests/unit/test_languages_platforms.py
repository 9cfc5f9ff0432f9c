"""An alert in English and Kiswahili (what the API takes), and readers counted by platform."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core.alerts import AlertRules, parse_alert_request
from core.base64url import b64url_encode
from core.endpoints import EndpointPolicy
from core.errors import ValidationError
from core.model import Translation
from core.newsroom import request_from_form
from core.platforms import count_platforms, platform_of
from core.subscriptions import parse_subscription

ORIGIN = "https://news.example.com"
RULES = AlertRules((ORIGIN,), frozenset({"breaking"}), ("breaking",), 3600, default_lang="sw")
BASE = {"title": "Bridge reopens", "body": "Traffic flows.", "url": f"{ORIGIN}/a"}


def test_an_alert_names_its_language_else_the_default_and_carries_translations() -> None:
    plain = parse_alert_request(BASE, RULES, 0.0)
    assert (plain.lang, plain.translations) == ("sw", ())
    both = parse_alert_request(
        {
            **BASE,
            "lang": "en",
            "translations": {
                "sw": {"title": " Daraja lafunguliwa ", "body": "Magari\r\nyanapita."}
            },
        },
        RULES,
        0.0,
    )
    assert both.lang == "en"
    assert both.translations == (Translation("sw", "Daraja lafunguliwa", "Magari\nyanapita."),)
    # An empty second-language tab is no translation at all.
    empty = parse_alert_request(
        {**BASE, "lang": "en", "translations": {"sw": {"title": "", "body": ""}}}, RULES, 0.0
    )
    assert empty.translations == ()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"lang": "fr"}, "lang"),
        ({"translations": ["sw"]}, "translations"),
        ({"translations": {"fr": {"title": "T", "body": "B"}}}, "translations"),
        ({"lang": "en", "translations": {"en": {"title": "T", "body": "B"}}}, "translations.en"),
        ({"lang": "en", "translations": {"sw": "Daraja"}}, "translations.sw"),
        ({"lang": "en", "translations": {"sw": {"title": "T"}}}, "translations.sw.body"),
        ({"lang": "en", "translations": {"sw": {"body": "B"}}}, "translations.sw.title"),
        (
            {"lang": "en", "translations": {"sw": {"title": "x" * 121, "body": "B"}}},
            "translations.sw.title",
        ),
        (
            {"lang": "en", "translations": {"sw": {"title": "T\x07", "body": "B"}}},
            "translations.sw.title",
        ),
        (
            {
                "lang": "en",
                "translations": {"sw": {"title": "T", "body": "😀" * 300}},
                "url": f"{ORIGIN}/" + "a" * 1000,
            },
            "translations.sw.body",
        ),
    ],
)
def test_bad_language_input_is_a_400_naming_the_field(extra: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_alert_request({**BASE, **extra}, RULES, 0.0)
    assert info.value.field == field, info.value


def test_the_compose_forms_second_language_tab_becomes_translations() -> None:
    form = {**BASE, "tr_lang": "sw", "title_tr": "Daraja", "body_tr": "Magari."}
    assert request_from_form(form, ["breaking"])["translations"] == {
        "sw": {"title": "Daraja", "body": "Magari."}
    }
    assert "translations" not in request_from_form({**form, "title_tr": "", "body_tr": ""}, [])


@pytest.mark.parametrize(
    ("host", "reported", "platform"),
    [
        ("web.push.apple.com", "ios", "ios"),
        ("web.push.apple.com", "desktop", "desktop"),  # Safari on a Mac
        ("web.push.apple.com", None, "unknown"),
        ("web.push.apple.com", "android", "unknown"),  # Apple's service never serves Android
        ("fcm.googleapis.com", "android", "android"),
        ("fcm.googleapis.com", "desktop", "desktop"),
        ("fcm.googleapis.com", "ios", "unknown"),  # Chrome on iOS has no web push of its own
        ("fcm.googleapis.com", None, "unknown"),
        ("updates.push.services.mozilla.com", "android", "android"),
        ("wns2-by3p.notify.windows.com", None, "desktop"),
        ("127.0.0.1:8089", "ios", "ios"),
    ],
)
def test_platform_from_push_service_and_the_widgets_report(
    host: str, reported: str | None, platform: str
) -> None:
    assert platform_of(host, reported) == platform


def test_platform_counts_add_up() -> None:
    groups = [("fcm.googleapis.com", "android", 7), ("web.push.apple.com", "ios", 2)]
    groups += [("fcm.googleapis.com", None, 1), ("fcm.googleapis.com", "desktop", 3)]
    assert count_platforms(groups) == {"android": 7, "ios": 2, "desktop": 3, "unknown": 1}


def test_the_widget_reports_one_of_three_platforms() -> None:
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    policy = EndpointPolicy(("fcm.googleapis.com",))
    body = {
        "endpoint": "https://fcm.googleapis.com/fcm/send/abc",
        "keys": {"p256dh": b64url_encode(point), "auth": b64url_encode(b"0123456789abcdef")},
        "platform": "android",
    }
    parsed = parse_subscription(body, policy, frozenset({"breaking"}), ("breaking",))
    assert parsed.platform == "android"
    assert parse_subscription({**body, "platform": None}, policy, frozenset(), ()).platform is None
    with pytest.raises(ValidationError) as info:
        parse_subscription({**body, "platform": "tv"}, policy, frozenset({"breaking"}), ())
    assert info.value.field == "platform"
