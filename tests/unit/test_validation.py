"""Core validators: subscriptions, alerts and the payload size, and push-answer outcomes."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core.alerts import AlertRules, parse_alert_request
from core.base64url import b64url_encode
from core.endpoints import EndpointPolicy, address_allowed, check_endpoint
from core.errors import ValidationError
from core.model import AlertStatus, Urgency
from core.outcomes import Outcome, backoff_s, classify, parse_retry_after
from core.payload import MAX_PAYLOAD, encrypted_size, story_key, topic_header
from core.ports import PushResult
from core.subscriptions import parse_subscription

POLICY = EndpointPolicy(
    ("fcm.googleapis.com", "updates.push.services.mozilla.com", "*.push.apple.com")
)
LOOPBACK = EndpointPolicy(POLICY.push_hosts, allow_loopback=True)
TOPICS = frozenset({"breaking", "politics", "sport"})
RULES = AlertRules(
    ("https://news.example.com", "http://127.0.0.1:8000"),
    TOPICS,
    ("breaking",),
    3600,
    "Africa/Nairobi",
)


def p256dh() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return b64url_encode(
        key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )


def body(**over: object) -> dict[str, object]:
    data: dict[str, object] = {
        "endpoint": "https://fcm.googleapis.com/fcm/send/abc:def",
        "expirationTime": None,
        "keys": {"p256dh": p256dh(), "auth": b64url_encode(os.urandom(16))},
        "topics": ["breaking"],
    }
    data.update(over)
    return data


def test_a_browser_subscription_is_accepted() -> None:
    sub = parse_subscription(body(), POLICY, TOPICS, ("breaking",))
    assert sub.endpoint.startswith("https://fcm.googleapis.com/")
    assert sub.topics == ("breaking",)


def test_topics_default_to_the_default_topics() -> None:
    data = body()
    del data["topics"]
    assert parse_subscription(data, POLICY, TOPICS, ("breaking",)).topics == ("breaking",)


@pytest.mark.parametrize(
    ("endpoint", "policy"),
    [
        ("http://fcm.googleapis.com/x", POLICY),
        ("https://fcm.googleapis.com:8443/x", POLICY),
        ("https://user:pw@fcm.googleapis.com/x", POLICY),
        ("https://fcm.googleapis.com.evil.example/x", POLICY),
        ("https://evil.example/x.fcm.googleapis.com/", POLICY),
        ("https://push.apple.com/x", POLICY),  # *.push.apple.com needs a label before it
        ("https://127.0.0.1/x", POLICY),
        ("https://[::1]/x", POLICY),
        ("https://2130706433/x", POLICY),
        ("https://0x7f.1/x", POLICY),
        ("https://0177.0.0.1/x", POLICY),
        ("https://169.254.169.254/latest", POLICY),
        ("http://127.0.0.1:9000/x", POLICY),  # loopback only when allowed
        ("http://127.1:9000/x", LOOPBACK),  # shorthand forms are never loopback-allowed
        ("https://fcm.googleapis.com/" + "a" * 2100, POLICY),
        ("ftp://fcm.googleapis.com/x", POLICY),
        ("https://fcm.googleapis.com/x#frag", POLICY),
        ("https://fcm.googleapis.com\\@evil.example/", POLICY),
    ],
)
def test_bad_endpoints_are_refused(endpoint: str, policy: EndpointPolicy) -> None:
    with pytest.raises(ValidationError) as info:
        check_endpoint(endpoint, policy)
    assert info.value.field == "endpoint"


def test_wildcard_hosts_and_loopback_when_allowed() -> None:
    assert check_endpoint("https://web.push.apple.com/QGx", POLICY)
    assert check_endpoint("http://127.0.0.1:9000/push/x", LOOPBACK)
    assert check_endpoint("https://localhost:9443/push/x", LOOPBACK)


@pytest.mark.parametrize(
    ("keys", "field"),
    [
        (
            {
                "p256dh": b64url_encode(b"\x04" + b"\x01" * 64),
                "auth": b64url_encode(os.urandom(16)),
            },
            "keys.p256dh",
        ),  # not on the curve
        (
            {"p256dh": b64url_encode(os.urandom(33)), "auth": b64url_encode(os.urandom(16))},
            "keys.p256dh",
        ),
        ({"p256dh": "not base64 !!", "auth": b64url_encode(os.urandom(16))}, "keys.p256dh"),
        ({"auth": b64url_encode(os.urandom(16))}, "keys.p256dh"),
        ({"p256dh": p256dh(), "auth": b64url_encode(os.urandom(15))}, "keys.auth"),
        ({"p256dh": p256dh(), "auth": b64url_encode(os.urandom(32))}, "keys.auth"),
        ({"p256dh": p256dh()}, "keys.auth"),
        ("nope", "keys"),
    ],
)
def test_bad_keys_name_the_field(keys: object, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_subscription(body(keys=keys), POLICY, TOPICS, ())
    assert info.value.field == field


def test_unknown_topics_and_odd_expiration_are_refused() -> None:
    with pytest.raises(ValidationError) as info:
        parse_subscription(body(topics=["weather"]), POLICY, TOPICS, ())
    assert info.value.field == "topics"
    with pytest.raises(ValidationError) as info:
        parse_subscription(body(expirationTime="tomorrow"), POLICY, TOPICS, ())
    assert info.value.field == "expirationTime"


def alert(**over: object) -> dict[str, object]:
    data: dict[str, object] = {
        "title": "Quake",
        "body": "A strong earthquake hit.",
        "url": "https://news.example.com/a/1",
    }
    data.update(over)
    return data


def test_alert_defaults_urgency_high_for_breaking_and_default_ttl() -> None:
    draft = parse_alert_request(alert(), RULES, 1_000_000.0)
    assert draft.topics == ("breaking",)
    assert draft.urgency is Urgency.HIGH
    assert draft.ttl_s == 3600
    routine = parse_alert_request(alert(topics=["sport"]), RULES, 1_000_000.0)
    assert routine.urgency is Urgency.NORMAL


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "x" * 121}, "title"),
        ({"body": "y" * 301}, "body"),
        ({"url": "https://evil.example/a"}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "https://news.example.com.evil.example/a"}, "url"),
        ({"image": "https://cdn.evil.example/i.png"}, "image"),
        ({"topics": ["weather"]}, "topics"),
        ({"topics": []}, "topics"),
        ({"urgency": "urgent"}, "urgency"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": 59}, "ttl"),
        ({"ttl": 4 * 7 * 86400 + 1}, "ttl"),
        ({"ttl": "3600"}, "ttl"),
        ({"send_at": "yesterday"}, "send_at"),
        ({"send_at": "2000-01-01T00:00:00Z"}, "send_at"),
        ({"url": "https://news.example.com/" + "%F0%9F%94%A5" * 330}, "url"),
    ],
)
def test_bad_alerts_name_the_field(over: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_alert_request(alert(**over), RULES, 1_900_000_000.0)
    assert info.value.field == field


def test_a_payload_that_would_not_fit_names_the_field_to_shorten() -> None:
    long_url = "https://news.example.com/" + "a" * 2000
    with pytest.raises(ValidationError) as info:
        parse_alert_request(alert(url=long_url, image=long_url.replace("/a", "/i")), RULES, 1e9)
    assert info.value.code == "too_large"
    assert info.value.field in {"url", "image"}


def test_send_at_naive_times_are_newsroom_time() -> None:
    draft = parse_alert_request(alert(send_at="2030-06-01T09:00:00"), RULES, 1_900_000_000.0)
    assert draft.send_at == 1906524000.0  # 2030-06-01 06:00 UTC = 09:00 in Nairobi (UTC+3)


def test_story_key_is_a_valid_topic_and_stable() -> None:
    key = story_key("https://news.example.com/a", "article-1")
    assert key == story_key("https://news.example.com/other", "article-1")
    assert len(topic_header(key)) <= 32 and topic_header(key).isalnum()
    assert encrypted_size(b"x" * MAX_PAYLOAD) == 4096


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (201, Outcome.DELIVERED),
        (202, Outcome.DELIVERED),
        (404, Outcome.GONE),
        (410, Outcome.GONE),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (400, Outcome.REJECTED),
        (401, Outcome.REJECTED),
        (403, Outcome.REJECTED),
        (413, Outcome.FAILED),
        (301, Outcome.FAILED),
    ],
)
def test_push_answers_map_to_one_outcome(status: int, outcome: Outcome) -> None:
    assert classify(PushResult(1, "h", status), 0.0).outcome is outcome


def test_throttling_holds_the_host_and_honours_retry_after() -> None:
    d = classify(PushResult(1, "h", 429, retry_after="120"), 0.0)
    assert d.hold_host and d.retry_after_s == 120
    windows = classify(PushResult(1, "h", 406, retry_after="30"), 0.0)
    assert windows.outcome is Outcome.RETRY and windows.retry_after_s == 30
    assert classify(PushResult(1, "h", 403), 0.0).open_breaker
    assert classify(PushResult(1, "h", None, error="timeout"), 0.0).outcome is Outcome.RETRY
    assert (
        classify(PushResult(1, "h", None, error="refused_address"), 0.0).outcome is Outcome.FAILED
    )


def test_retry_after_dates_and_garbage() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480.0) == 0.0
    assert parse_retry_after("soon", 0.0) is None
    assert parse_retry_after(None, 0.0) is None
    assert parse_retry_after(" 120 ", 0.0) == 120.0
    # A hostile push service: '²' passes str.isdigit(), int() refuses it (and 5,000 digits).
    assert parse_retry_after("\u00b2", 0.0) is None
    assert parse_retry_after("9" * 5000, 0.0) is None
    assert parse_retry_after("9" * 12, 0.0) == 7 * 24 * 3600, "capped at a week"


def test_backoff_grows_is_capped_and_jittered() -> None:
    import random

    rng = random.Random(1)
    values = [backoff_s(n, 10, 3600, rng) for n in range(1, 12)]
    assert 5 <= values[0] <= 10
    assert values[3] >= 40
    assert max(values) <= 3600


@pytest.mark.parametrize(
    ("address", "loopback", "allowed"),
    [
        ("142.250.1.1", False, True),
        ("2a00:1450:4001::1", False, True),
        ("127.0.0.1", False, False),
        ("127.0.0.1", True, True),
        ("::1", True, True),
        ("10.0.0.1", True, False),
        ("172.16.5.4", False, False),
        ("192.168.1.1", False, False),
        ("169.254.169.254", False, False),
        ("100.64.0.1", False, False),
        ("0.0.0.0", True, False),
        ("::ffff:127.0.0.1", False, False),
        ("::ffff:10.0.0.1", True, False),
        ("64:ff9b::a00:1", False, False),  # NAT64 of 10.0.0.1
        ("fe80::1", False, False),
        ("fc00::1", False, False),
        ("224.0.0.1", False, False),
    ],
)
def test_only_global_unicast_addresses_are_connectable(
    address: str, loopback: bool, allowed: bool
) -> None:
    assert address_allowed(address, loopback) is allowed


def test_alert_status_finished() -> None:
    assert AlertStatus.SENT.finished and not AlertStatus.SENDING.finished
