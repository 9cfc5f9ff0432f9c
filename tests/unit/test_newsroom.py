"""The newsroom core without I/O: forms, undo windows, test drafts, Open Graph, webhook rules."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from core import webhooks
from core.errors import ValidationError
from core.model import Alert, AlertDraft, AlertKind, AlertStatus, Urgency
from core.newsroom import (
    as_test_send,
    in_undo_window,
    parse_open_graph,
    prefill_from_article,
    request_from_form,
    shorten,
    with_undo_window,
)

ORIGINS = ("https://news.example",)
KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()


def _draft(**fields: object) -> AlertDraft:
    values: dict[str, object] = {
        "title": "Title",
        "body": "Body",
        "url": "https://news.example/a",
        "topics": ("breaking",),
        "urgency": Urgency.HIGH,
        "ttl_s": 3600,
        **fields,
    }
    return AlertDraft(**values)  # type: ignore[arg-type]


def test_the_form_becomes_the_api_body() -> None:
    form = {"title": " T ", "body": "B", "url": "u", "image": "", "ttl": "900", "when": "now"}
    assert request_from_form(form, ["sport"]) == {
        "title": "T",
        "body": "B",
        "url": "u",
        "topics": ["sport"],
        "ttl": 900,
        "wait_for_article": False,  # the checkbox left unticked
    }
    assert "wait_for_article" not in request_from_form({**form, "wait_for_article": "yes"}, [])
    later = request_from_form({**form, "when": "later", "send_at": "2030-01-01T08:00"}, [])
    assert later["send_at"] == "2030-01-01T08:00"
    with pytest.raises(ValidationError) as missing:
        request_from_form({**form, "when": "later", "send_at": ""}, [])
    assert missing.value.field == "send_at"
    with pytest.raises(ValidationError) as bad_ttl:
        request_from_form({**form, "ttl": "soon"}, [])
    assert bad_ttl.value.field == "ttl"


def test_a_newsroom_send_waits_out_the_undo_window_as_a_scheduled_alert() -> None:
    assert with_undo_window(_draft(), 100.0, 10).send_at == 110.0
    assert with_undo_window(_draft(), 100.0, 0).send_at is None
    assert with_undo_window(_draft(send_at=500.0), 100.0, 10).send_at == 500.0

    def alert(send_at: float, status: AlertStatus = AlertStatus.SCHEDULED) -> Alert:
        return Alert(
            1,
            "T",
            "B",
            "u",
            ("breaking",),
            Urgency.HIGH,
            60,
            "k",
            status,
            AlertKind.NORMAL,
            created_at=100.0,
            send_at=send_at,
        )

    assert in_undo_window(alert(110.0), 105.0, 10)
    assert not in_undo_window(alert(110.0), 110.5, 10)
    assert not in_undo_window(alert(110.0, AlertStatus.CANCELLED), 105.0, 10)
    assert not in_undo_window(alert(4000.0), 105.0, 10)  # a real schedule, not an undo window


def test_a_test_draft_is_labelled_and_cannot_be_mistaken_for_the_real_send() -> None:
    draft = as_test_send(_draft(title="x" * 120, article_id="a1", idempotency_key="k"), 7)
    assert draft.title.startswith("[TEST] ") and len(draft.title) == 120
    assert draft.kind is AlertKind.TEST and draft.test_user_id == 7
    assert draft.article_id is None and draft.idempotency_key is None and draft.send_at is None
    assert as_test_send(_draft(title="[TEST] again"), 7).title == "[TEST] again"


def test_open_graph_tags_with_fallbacks_from_the_head_only() -> None:
    html = """<html><head><title> Plain  title </title>
    <meta name="description" content="Fallback description">
    <meta property="og:title" content="Rain &amp; floods">
    <meta property="og:image" content="/img/a.jpg"></head>
    <body><meta property="og:description" content="ignored: in the body"></body></html>"""
    meta = parse_open_graph(html, "https://news.example/story/1")
    assert meta.title == "Rain & floods"
    assert meta.description == "Fallback description"
    assert meta.image == "https://news.example/img/a.jpg"
    assert parse_open_graph("<title>Only a title</title>", "https://news.example/").title == (
        "Only a title"
    )


def test_a_title_loses_the_site_name_only_when_it_is_the_site_name() -> None:
    def title(html: str, *ours: str) -> str | None:
        return parse_open_graph(html, "https://news.example/", ours).title

    head = '<meta property="og:site_name" content="The Courier">'
    assert title(head + "<title>Bridge reopens | The Courier</title>") == "Bridge reopens"
    assert title(head + "<title>Bridge reopens \u2013 the courier</title>") == "Bridge reopens"
    assert title("<title>Bridge reopens - The Courier</title>", "The Courier") == "Bridge reopens"
    assert title("<title>Kenya - Uganda</title>", "The Courier") == "Kenya - Uganda"
    assert title("<title>Kenya | Uganda</title>") == "Kenya | Uganda"
    assert title(head + "<title>The Courier</title>") == "The Courier"  # nothing else left
    assert title(head + '<meta property="og:title" content="Bridge reopens">') == "Bridge reopens"


class _Pages:
    """The ArticleFetcher port: canned pages, and a record of what was asked."""

    def __init__(self, html: str) -> None:
        self.html = html
        self.asked: list[str] = []

    def fetch(self, url: str) -> str:
        self.asked.append(url)
        return self.html


def test_prefill_cuts_to_the_limits_and_never_leaves_our_origins() -> None:
    pages = _Pages(
        '<meta property="og:title" content="' + "word " * 40 + '">'
        '<meta property="og:description" content="Short.">'
        '<meta property="og:image" content="https://cdn.elsewhere.example/a.jpg">'
    )
    found = prefill_from_article("https://news.example/a", ORIGINS, pages)
    assert len(found["title"]) <= 120 and found["title"].endswith("…")
    assert found["body"] == "Short."
    assert "image" not in found  # not on our origins: an alert could not carry it
    with pytest.raises(ValidationError) as off:
        prefill_from_article("https://evil.example/a", ORIGINS, pages)
    assert off.value.field == "url"
    assert pages.asked == ["https://news.example/a"]
    with pytest.raises(ValidationError):
        prefill_from_article("https://news.example/b", ORIGINS, _Pages("<p>no tags</p>"))


def test_shorten_cuts_at_a_word_with_an_ellipsis() -> None:
    assert shorten("  a  b  ", 10) == "a b"
    assert shorten("alpha beta gamma", 12) == "alpha beta…"
    assert len(shorten("x" * 500, 300)) == 300


def _signed(msg_id: str, ts: int, body: bytes, key: bytes = KEY) -> str:
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def test_standard_webhooks_signatures() -> None:
    body = b'{"a":1}'
    key = webhooks.secret_bytes(SECRET)
    assert key == KEY
    assert webhooks.verify(key, "m1", "1000", _signed("m1", 1000, body), body, 1000.0) == "m1"
    several = "v1,Zm9v " + _signed("m1", 1000, body) + " v2,bar"
    assert webhooks.verify(key, "m1", "1000", several, body, 1200.0) == "m1"
    cases = [
        (("m1", "1000", _signed("m1", 1000, body, b"x" * 32), body, 1000.0), "bad_signature"),
        (("m1", "1000", _signed("m1", 1000, body), b'{"a":2}', 1000.0), "bad_signature"),
        (("m2", "1000", _signed("m1", 1000, body), body, 1000.0), "bad_signature"),
        (("m1", "1000", _signed("m1", 1000, body), body, 1301.0), "stale_timestamp"),
        (("m1", "1000", _signed("m1", 1000, body), body, 699.0), "stale_timestamp"),
        (("m1", "abc", _signed("m1", 1000, body), body, 1000.0), "bad_timestamp"),
        (("m1", "\u00b2", _signed("m1", 1000, body), body, 1000.0), "bad_timestamp"),
        ((None, "1000", _signed("m1", 1000, body), body, 1000.0), "missing_header"),
        (("m1", "1000", "", body, 1000.0), "missing_header"),
    ]
    for args, code in cases:
        with pytest.raises(webhooks.WebhookRejected) as rejected:
            webhooks.verify(key, *args)  # type: ignore[arg-type]
        assert rejected.value.code == code, args
        assert rejected.value.status == 401
    for bad in ("whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError):
            webhooks.secret_bytes(bad)


def test_which_cms_articles_become_alerts() -> None:
    known = {"breaking", "politics", "sport"}
    base = {"id": 42, "title": "T", "url": "https://news.example/a"}
    assert webhooks.alert_request({"article": base}, known, ("breaking",)) is None
    assert webhooks.alert_request({"article": {**base, "breaking": "yes"}}, known, ()) is None
    breaking = webhooks.alert_request(
        {"article": {**base, "breaking": True, "topics": ["politics", "weather"]}}, known, ()
    )
    assert breaking == {
        "title": "T",
        "body": "T",
        "url": "https://news.example/a",
        "topics": ["breaking", "politics"],
        "article_id": "42",
    }
    flagged = webhooks.alert_request(
        {**base, "alert": True, "summary": "S " * 400, "ttl": 600}, known, ("breaking",)
    )
    assert flagged is not None
    assert flagged["topics"] == ["breaking"] and flagged["ttl"] == 600
    assert len(flagged["body"]) <= 300
    with pytest.raises(ValidationError) as elsewhere:
        webhooks.alert_request({**base, "alert": True, "topics": ["weather"]}, known, ())
    assert elsewhere.value.field == "topics"
    with pytest.raises(ValidationError) as no_id:
        webhooks.alert_request({"article": {"title": "T", "breaking": True}}, known, ())
    assert no_id.value.field == "article.id"
    with pytest.raises(ValidationError):
        webhooks.alert_request(json.loads("[1]"), known, ())
