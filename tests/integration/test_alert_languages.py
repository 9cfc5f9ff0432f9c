"""Alerts in English and Kiswahili and readers per platform, over HTTP on SQLite and PostgreSQL:
the API stores both texts, the review page splits the audience by language, a reader who never
named a language gets NEWSFLASH_DEFAULT_LANG, and the report and /ops count platforms."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_lib

from core.accounts import Role
from core.adapters.accounts_sql import SqlAccounts
from tests.support.newsroom import csrf_of
from tests.support.reader_api import Api, browser_sub, build_api, dispose_api
from tests.support.services import TEST_REDIS_DB, engine_database

SITE = "https://news.example.com"
EDITOR = "mhariri@news.example"
PASSWORD = "correct horse battery staple"
APPLE = "https://web.push.apple.com/QGuQyavXutnMH"
FCM = "https://fcm.googleapis.com/fcm/send/"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, vapid_pem: str
) -> Iterator[tuple[Api, str]]:
    request.getfixturevalue("redis_url")
    redis_lib.Redis.from_url(f"redis://127.0.0.1:6379/{TEST_REDIS_DB}").flushdb()
    tmp = tmp_path_factory.mktemp(f"languages-{request.param}")
    with engine_database(request, tmp) as url:
        # A Kiswahili newsroom: readers and alerts that name no language are Kiswahili.
        built = build_api(tmp / "var", url, vapid_pem, DEFAULT_LANG="sw", PUBLIC_ORIGINS=SITE)
        accounts = SqlAccounts(built.engine)
        accounts.create_user(EDITOR, PASSWORD, Role.ADMIN)
        token = accounts.create_token("languages", Role.ADMIN)
        try:
            yield built, token
        finally:
            dispose_api(built)
            redis_lib.Redis.from_url(f"redis://127.0.0.1:6379/{TEST_REDIS_DB}").flushdb()


def _login(api: Api) -> Any:
    client = api.app.test_client()
    page = client.get("/editor/login")
    answer = client.post(
        "/editor/login",
        data={"email": EDITOR, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    assert answer.status_code == 302, answer.text
    return client


def _text(html: str) -> str:
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def test_readers_languages_and_platforms_are_stored(site: tuple[Api, str]) -> None:
    api, _token = site
    never_said = browser_sub(topics=["sport"])
    assert api.post("/api/v1/subscriptions", never_said).status_code == 201
    assert api.row(never_said["endpoint"])["lang"] == "sw", "NEWSFLASH_DEFAULT_LANG, not en"  # type: ignore[index]
    english = browser_sub(topics=["sport"], lang="en", platform="android")
    assert api.post("/api/v1/subscriptions", english).status_code == 201
    row = api.row(english["endpoint"])
    assert row is not None and (row["lang"], row["platform"]) == ("en", "android")
    # Posted again without them (the service worker re-subscribing): both are kept.
    again = {k: v for k, v in english.items() if k not in ("lang", "platform")}
    assert api.post("/api/v1/subscriptions", again).status_code == 200
    row = api.row(english["endpoint"])
    assert row is not None and (row["lang"], row["platform"]) == ("en", "android")
    bad = api.post("/api/v1/subscriptions", browser_sub(platform="smart-tv"))
    assert bad.status_code == 400 and bad.json["error"]["field"] == "platform"


def test_an_alert_in_two_languages_round_trips_and_the_review_splits_the_audience(
    site: tuple[Api, str],
) -> None:
    api, token = site
    for lang in ("en", "en", "sw", None):
        extra = {"lang": lang} if lang else {}
        assert (
            api.post("/api/v1/subscriptions", browser_sub(topics=["politics"], **extra)).status_code
            == 201
        )
    answer = api.client.post(
        "/api/v1/alerts",
        json={
            "title": "Parliament passes the budget",
            "body": "The vote was 201 to 87.",
            "url": f"{SITE}/news/budget",
            "topics": ["politics"],
            "lang": "en",
            "translations": {"sw": {"title": "Bunge lapitisha bajeti", "body": "Kura 201 kwa 87."}},
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 202, answer.json
    stored = api.client.get(
        f"/api/v1/alerts/{answer.json['id']}", headers={"Authorization": f"Bearer {token}"}
    ).json
    assert stored["lang"] == "en"
    assert stored["translations"] == {
        "sw": {"title": "Bunge lapitisha bajeti", "body": "Kura 201 kwa 87."}
    }

    editor = _login(api)
    report = _text(editor.get(f"/editor/alerts/{answer.json['id']}").text)
    assert "In Kiswahili Bunge lapitisha bajeti Kura 201 kwa 87." in report
    assert "Delivered to Android 0 · iOS 0 · Desktop 0 · Not known 0" in report
    compose = editor.get("/editor/new")
    assert 'name="title_tr"' in compose.text and "Headline in English" in compose.text
    form = {
        "title": "Bunge lapitisha bajeti ya mwaka",
        "body": "Kura 201 kwa 87.",
        "url": f"{SITE}/news/budget-2",
        "topics": ["politics"],
        "urgency": "normal",
        "ttl": "3600",
        "when": "now",
        "csrf_token": csrf_of(compose.text),
        "action": "review",
    }
    # Only the main language (Kiswahili here): English readers get the Kiswahili words.
    review = _text(editor.post("/editor/new", data=form).text)
    assert "2 read Kiswahili" in review and "2 read English (get the Kiswahili text" in review
    form.update(title_tr="Parliament passes the year's budget", body_tr="The vote was 201 to 87.")
    review_page = editor.post("/editor/new", data=form)
    assert review_page.status_code == 200, re.findall(
        r'role="alert"[^>]*>([^<]+)', review_page.text
    )
    review = _text(review_page.text)
    assert "Headline in English Parliament passes the year's budget" in review
    assert "2 read English" in review and "get the Kiswahili" not in review
    assert 'name="title_tr" value="Parliament passes the year&#39;s budget"' in review_page.text
    # A translation over the limits names its field.
    form.update(title_tr="x" * 121)
    refused = editor.post("/editor/new", data=form)
    assert refused.status_code == 400
    assert 'data-field-error="translations.en.title"' in refused.text


def test_report_and_ops_count_readers_by_platform(site: tuple[Api, str]) -> None:
    api, token = site
    readers = [
        browser_sub(endpoint=FCM + "android-1", topics=["business"], platform="android"),
        browser_sub(endpoint=FCM + "desktop-1", topics=["business"], platform="desktop"),
        browser_sub(endpoint=APPLE + "iphone1", topics=["business"], platform="ios"),
        browser_sub(endpoint=FCM + "unsaid-1", topics=["business"]),
    ]
    for sub in readers:
        assert api.post("/api/v1/subscriptions", sub).status_code == 201, sub["endpoint"]
    health = api.client.get("/api/v1/ops/health", headers={"Authorization": f"Bearer {token}"})
    assert health.status_code == 200, health.json
    counts = {p["platform"]: p["count"] for p in health.json["platforms"]}
    assert counts["ios"] >= 1 and counts["android"] >= 1 and counts["desktop"] >= 1
    assert counts["unknown"] >= 1
    ops = _text(_login(api).get("/ops").text)
    assert "Platforms" in ops and "Android" in ops and "iOS" in ops
