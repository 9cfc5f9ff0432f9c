"""Our service worker in a real Chromium, as a reader meets it: a click on a real alert (its link
UTM-tagged as the fan-out sends it) finds the reader's open tab, and what the worker writes
itself says which language it is in."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from core.utm import UtmTags
from tests.support.browser import (
    ReaderSite,
    fake_browser_subscription,
    new_endpoint,
    notifications,
    register_worker,
)
from tests.support.stack import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

# In the worker: what a click on the notification with this tag opens or focuses. `refuse`
# makes the browser refuse to focus a tab (it may, e.g. when the tab is being closed).
CLICK = """async ([tag, refuse]) => {
  const done = [];
  self.clients.openWindow = async (url) => { done.push(['open', url]); return null; };
  WindowClient.prototype.focus = async function () {
    if (refuse) throw new DOMException('Not allowed to focus a window.', 'InvalidAccessError');
    done.push(['focus', this.url]);
    return this;
  };
  const [n] = await self.registration.getNotifications({ tag });
  await openAlert(n);
  return done;
}"""
ARTICLE = "<!doctype html><html lang='en'><title>Bridge</title><h1>Bridge reopens</h1></html>"


def fanout_message(site: ReaderSite, alert_id: str) -> dict[str, Any]:
    """The push one reader gets for this alert, built the way the fan-out builds it."""
    import json

    from core.delivery import _messages
    from core.model import Target

    container = site.app.extensions["newsflash"].container
    sub = fake_browser_subscription(new_endpoint())
    assert site.api().post("/api/v1/subscriptions", json=sub).status_code == 201
    row = site.subscription(sub["endpoint"])
    assert row is not None
    target = Target(row["id"], row["endpoint"], row["p256dh"], row["auth"], row["topic_mask"])
    site.record_delivered(alert_id, row["id"])
    alert = container.alerts.get_alert(int(alert_id))
    [message] = _messages(alert, [target], container.receipts, int(time.time()), "en", UtmTags())
    return dict(json.loads(message.payload))


def test_a_click_focuses_the_tab_that_shows_the_article_whatever_its_utm_tags(
    chromium: Any, reader_site: ReaderSite
) -> None:
    live = register_worker(chromium, reader_site)
    page = live.page
    path = f"/news/bridge-{uuid.uuid4().hex[:6]}"
    article = reader_site.base + path
    page.route(f"**{path}*", lambda route: route.fulfill(body=ARTICLE, content_type="text/html"))

    first = fanout_message(reader_site, reader_site.publish(title="Bridge", body="b", url=article))
    tagged = first["notification"]["navigate"]
    assert tagged.startswith(article + "?utm_source=newsflash&utm_medium=push&utm_campaign=alert-")
    # The reader is reading the article (reached from the home page, so no tags).
    page.goto(article)
    live.push(first)
    tag = first["tag"]
    assert live.worker.evaluate(CLICK, [tag, False]) == [["focus", article]], "a second tab"

    # A tab opened by the first alert's click, and the correction of it: another campaign tag.
    page.goto(tagged + "#live")
    second = fanout_message(
        reader_site, reader_site.publish(title="Correction: bridge", body="b", url=article)
    )
    assert second["notification"]["navigate"] != tagged
    live.push(second)
    assert live.worker.evaluate(CLICK, [second["tag"], False]) == [["focus", tagged + "#live"]]

    # Another article is another page, tags or not.
    page.goto(reader_site.base + "/news/other?utm_source=newsflash")
    assert live.worker.evaluate(CLICK, [second["tag"], False]) == [
        ["open", second["notification"]["navigate"]]
    ]


def test_a_tab_the_browser_will_not_focus_does_not_swallow_the_click(
    chromium: Any, reader_site: ReaderSite
) -> None:
    live = register_worker(chromium, reader_site)
    tag = "nf" + uuid.uuid4().hex[:30]
    live.push({"id": "1", "title": "Home", "url": live.page.url, "tag": tag})
    assert live.worker.evaluate(CLICK, [tag, True]) == [["open", live.page.url]]


@pytest.mark.parametrize(("lang", "title"), [("sw", "Arifa ya habari"), ("en", "News alert")])
def test_what_the_worker_writes_itself_is_marked_with_the_readers_language(
    chromium: Any, reader_site: ReaderSite, lang: str, title: str
) -> None:
    live = register_worker(chromium, reader_site)
    live.page.evaluate(
        "lang => navigator.serviceWorker.ready.then(r => r.active.postMessage("
        "{type: 'newsflash:remember', lang}))",
        lang,
    )
    wait_until(lambda: live.worker.evaluate("kv('lang')") == lang, 10, "the worker to keep it")
    live.push("not json at all")
    shown = wait_until(
        lambda: [n for n in notifications(live.page) if n["title"] == title],
        20,
        "the notification for an unreadable push",
    )
    assert shown[0]["lang"] == lang


def test_a_subscription_renewed_while_the_network_is_down_keeps_the_readers_topics(
    chromium: Any, reader_site: ReaderSite
) -> None:
    """pushsubscriptionchange on a phone whose network drops for a moment: the move is tried
    again within the event, so the reader's topics follow the new subscription."""
    worker = register_worker(chromium, reader_site).worker
    old = fake_browser_subscription(new_endpoint())
    created = reader_site.api().post("/api/v1/subscriptions", json={**old, "topics": ["sport"]})
    assert created.status_code == 201
    new = fake_browser_subscription(new_endpoint())
    status = worker.evaluate(
        """async ([old, next]) => {
          await kv('subscription', { endpoint: old.endpoint, auth: old.keys.auth });
          self.registration.pushManager.subscribe = async () => ({ toJSON: () => next });
          const real = self.fetch;
          let down = 1;
          self.fetch = (url, init) => url.endsWith('/change') && down-- > 0
            ? Promise.reject(new TypeError('Failed to fetch')) : real(url, init);
          try { return await resubscribe(null, null); } finally { self.fetch = real; }
        }""",
        [old, new],
    )
    assert status == 201
    moved = reader_site.subscription(new["endpoint"])
    assert moved is not None and moved["topics"] == ["sport"]
    assert reader_site.subscription(old["endpoint"]) is None
