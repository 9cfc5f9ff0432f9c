"""The publish-readiness gate end to end: an alert whose article answers 404 waits (the report says
so) and goes when the article answers 200, when an editor sends anyway, or when the limit passes;
stopping it while it waits sends nothing; off per alert. Live worker and beat, PostgreSQL, the
push stand-in, and a loopback publisher whose pages change."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.feedsite import FeedSite, Page, rss
from tests.support.newsroom import NewsroomStack, start_newsroom_stack, topics_env
from tests.support.services import create_pg_database, drop_pg_database, port_open, require_service
from tests.support.stack import wait_until

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def site() -> Iterator[FeedSite]:
    s = FeedSite().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, site: FeedSite) -> Iterator[NewsroomStack]:
    require_service("Redis", port_open("127.0.0.1", 6379), "127.0.0.1:6379")
    require_service("PostgreSQL", port_open("127.0.0.1", 5432), "127.0.0.1:5432")
    url = create_pg_database()
    try:
        yield from start_newsroom_stack(
            url,
            tmp_path_factory.mktemp("gate"),
            [site.origin],
            topics_env(),
            WAIT_FOR_ARTICLE="on",
            ARTICLE_WAIT_S="5",
        )
    finally:
        drop_pg_database(url)


@pytest.fixture(scope="module")
def reader(stack: NewsroomStack) -> int:
    return stack.subscribe(stack.standin.create_subscription(), ["breaking"])


def _publish(stack: NewsroomStack, site: FeedSite, path: str, **extra: object) -> str:
    answer = stack.api(
        "POST",
        "/api/v1/alerts",
        json={
            "title": f"Gate {path}",
            "body": "b",
            "url": f"{site.origin}{path}",
            "topics": ["breaking"],
            **extra,
        },
    )
    assert answer.status_code == 202, answer.json
    return str(answer.json["id"])


def _waiting(stack: NewsroomStack, alert_id: str) -> dict[str, object]:
    return wait_until(
        lambda: (a := stack.alert(alert_id)).get("article_gate", {}).get("last_answer") and a,
        10,
        "the gate's first check",
        interval_s=0.1,
    )


def test_waits_for_404_then_sends_on_200(
    stack: NewsroomStack,
    site: FeedSite,
    reader: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cli.main import main

    alert_id = _publish(stack, site, "/news/late")
    seen = _waiting(stack, alert_id)
    assert seen["status"] == "queued"
    assert seen["article_gate"] == {"state": "waiting", "last_answer": "HTTP 404"}
    editor = stack.login()
    report = editor.get(f"/editor/alerts/{alert_id}").text
    assert "Waiting for the article" in report and 'id="send-anyway"' in report
    # The terminal says the same as the report page (not "queued" at 0 %).
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    assert main(["alerts", "watch", alert_id, "--timeout", "0.5", "--every", "0.2"]) == 3
    said = capsys.readouterr().out
    assert f"alert {alert_id} waiting for the article to be online (it answered HTTP 404)" in said
    assert "; sent anyway in " in said
    assert stack.received(alert_id) == []
    site.pages["/news/late"] = Page(body=b"<html>live</html>", content_type="text/html")
    done = stack.wait_status(alert_id, "sent", 20)
    assert done["article_gate"]["state"] == "live"
    assert len(stack.received(alert_id)) == 1
    assert "Waiting for the article" not in editor.get(f"/editor/alerts/{alert_id}").text


def test_send_anyway_and_the_time_limit(stack: NewsroomStack, site: FeedSite, reader: int) -> None:
    anyway = _publish(stack, site, "/news/never")
    _waiting(stack, anyway)
    answer = stack.api("POST", f"/api/v1/alerts/{anyway}/send-anyway")
    assert answer.status_code == 200, answer.json
    limited = _publish(stack, site, "/news/never-either")
    started = time.monotonic()
    assert stack.wait_status(anyway, "sent", 20)["article_gate"]["state"] == "sent-anyway"
    again = stack.api("POST", f"/api/v1/alerts/{anyway}/send-anyway")
    assert again.status_code == 409
    done = stack.wait_status(limited, "sent", 30)
    assert time.monotonic() - started >= 4, "sent before the 5 s limit"
    assert done["article_gate"]["state"] == "timed-out"
    audit = stack.accounts.audit_entries(action="alert.send_anyway")
    assert [e["target"] for e in audit] == [anyway]


def test_stop_while_waiting_sends_nothing(
    stack: NewsroomStack, site: FeedSite, reader: int
) -> None:
    alert_id = _publish(stack, site, "/news/stopped")
    _waiting(stack, alert_id)
    assert stack.api("POST", f"/api/v1/alerts/{alert_id}/cancel").status_code == 200
    site.pages["/news/stopped"] = Page(body=b"<html>live</html>", content_type="text/html")
    time.sleep(3)
    assert stack.alert(alert_id)["status"] == "cancelled"
    assert stack.received(alert_id) == []


def test_off_per_alert_sends_at_once(stack: NewsroomStack, site: FeedSite, reader: int) -> None:
    alert_id = _publish(stack, site, "/news/unpublished", wait_for_article=False)
    done = stack.wait_status(alert_id, "sent", 20)
    assert "article_gate" not in done
    bad = stack.api(
        "POST",
        "/api/v1/alerts",
        json={"title": "t", "body": "b", "url": f"{site.origin}/x", "wait_for_article": "no"},
    )
    assert bad.status_code == 400 and bad.json["error"]["field"] == "wait_for_article"


def test_an_auto_feed_item_waits_for_its_article_and_goes_once(
    stack: NewsroomStack, site: FeedSite, reader: int
) -> None:
    from core.usecases.newsroom import Editor

    feeds = stack.app.extensions["newsflash"].container.feeds
    site.pages["/feed/"] = Page(body=rss())
    feed = feeds.add(
        Editor("tests"),
        {"url": f"{site.origin}/feed/", "category": "Breaking", "mode": "auto"},
    )
    feeds.poll(Editor("tests"), feed.id)
    site.pages["/feed/"] = Page(
        body=rss(("p-1", "From the CMS", f"{site.origin}/news/from-cms", ["Breaking"]))
    )
    assert feeds.poll(Editor("tests"), feed.id).new == 1
    (item,) = [i for i in feeds.recent() if i.title == "From the CMS"]
    assert item.alert_id is not None
    _waiting(stack, str(item.alert_id))
    site.pages["/news/from-cms"] = Page(body=b"<html>live</html>", content_type="text/html")
    stack.wait_status(item.alert_id, "sent", 20)
    assert feeds.poll(Editor("tests"), feed.id).new == 0
    assert len(stack.received(item.alert_id)) == 1


def test_a_live_article_goes_at_once_checked_by_the_plan_task(
    stack: NewsroomStack, site: FeedSite, reader: int
) -> None:
    site.pages["/news/ready"] = Page(body=b"<html>live</html>", content_type="text/html")
    alert_id = _publish(stack, site, "/news/ready")
    done = stack.wait_status(alert_id, "sent", 20)
    assert done["article_gate"] == {"state": "live", "last_answer": "HTTP 200"}
    assert len(site.hits("/news/ready")) == 1, "one check, by the plan task itself"


def test_beat_polls_the_feeds_and_checks_the_articles(stack: NewsroomStack, site: FeedSite) -> None:
    from core.adapters.celery_queue import TASK_CHECK_ARTICLES, TASK_POLL_FEEDS, celery_config
    from core.usecases.newsroom import Editor
    from workers.factory import make_celery

    schedule = {e["task"]: e for e in celery_config(stack.settings)["beat_schedule"].values()}
    assert schedule[TASK_POLL_FEEDS]["schedule"] == 15.0
    assert schedule[TASK_CHECK_ARTICLES]["schedule"] == 1.0
    feeds = stack.app.extensions["newsflash"].container.feeds
    site.pages["/beat-feed/"] = Page(body=rss())
    feed = feeds.add(Editor("tests"), {"url": f"{site.origin}/beat-feed/", "category": "B"})
    # Sent to the live worker exactly as beat sends it (beat's own round comes every 15 s).
    make_celery(stack.settings).send_task(TASK_POLL_FEEDS)
    wait_until(
        lambda: (f := feeds.store.get_feed(feed.id)) is not None and f.last_ok_at is not None,
        20,
        "the worker to poll the new feed",
        interval_s=0.2,
    )
    assert len(site.hits("/beat-feed/")) == 1
