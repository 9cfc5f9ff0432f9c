"""A push subscription the browser renewed without pushsubscriptionchange (Chrome seldom fires
it), in a real Chromium: the service worker compares the browser's subscription with the one the
server last knew at every check-in (a page of the site, a push) and moves the reader's record
with the old endpoint and secret as proof, topics and language kept; a browser that has no
subscription any more gets none made up.

Chromium here has no push service, so the browser's subscription is stubbed at that boundary,
on both sides: the page's PushManager (PUSH_STUB) and the worker's `getSubscription`, which
answers `self.__sub`, what the browser holds now."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.browser import (
    PUSH_STUB,
    LiveWorker,
    ReaderSite,
    fake_browser_subscription,
    new_endpoint,
    register_worker,
    widget_state,
)
from tests.support.stack import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

# The worker's view of the browser's subscription; subscribe() must never be needed here.
WORKER_STUB = """() => {
  self.__sub = null;
  self.__subscribed = 0;
  self.registration.pushManager.getSubscription = async () => self.__sub && {
    endpoint: self.__sub.endpoint, toJSON: () => JSON.parse(JSON.stringify(self.__sub)) };
  self.registration.pushManager.subscribe = async () => {
    self.__subscribed += 1;
    throw new DOMException('no push service here', 'AbortError');
  };
}"""


def watch(page: Any, shown: str) -> None:
    """Note when (ms after navigation) the JS condition `shown` first holds on the page."""
    page.add_init_script(
        "new MutationObserver(() => { if (!window.__seenAt && (" + shown + "))"
        " window.__seenAt = performance.now(); }).observe(document,"
        " { subtree: true, childList: true, characterData: true, attributes: true });"
    )


def seen_at(page: Any, what: str) -> float:
    shown_ms = float(wait_until(lambda: page.evaluate("window.__seenAt"), 4, what))
    print(f"{what}: {shown_ms:.0f} ms after navigation")
    return shown_ms


def renew_silently(live: LiveWorker, sub: dict[str, Any] | None) -> None:
    """The browser now holds `sub` (None: no subscription), and fires no event about it."""
    live.worker.evaluate("s => { self.__sub = s; }", sub)
    live.page.evaluate(
        "s => s ? localStorage.setItem('test:subscription', JSON.stringify(s))"
        " : localStorage.removeItem('test:subscription')",
        sub,
    )


def proof(sub: dict[str, Any]) -> dict[str, str]:
    return {"endpoint": sub["endpoint"], "auth": sub["keys"]["auth"]}


def signed_up(chromium: Any, site: ReaderSite) -> tuple[LiveWorker, dict[str, Any]]:
    """A reader who said Yes, Thanks to politics and sport; their alerts are in Kiswahili."""
    live = register_worker(chromium, site)
    live.worker.evaluate(WORKER_STUB)
    page = live.page
    page.reload()
    assert widget_state(page) == "prompt"
    old = fake_browser_subscription(new_endpoint())
    live.worker.evaluate("s => { self.__sub = s; }", old)
    page.evaluate("s => { window.__nextSubscription = s; }", old)
    page.get_by_role("button", name="Choose topics").click()
    for name in ("Politics", "Sport"):
        page.get_by_label(name).check()
    page.get_by_label("Breaking news").uncheck()
    page.get_by_role("button", name="Yes, Thanks").click()
    page.get_by_role("status").get_by_text("You're signed up").wait_for()
    saved = site.api().put(
        "/api/v1/subscriptions", json={**old, "topics": ["politics", "sport"], "lang": "sw"}
    )
    assert saved.status_code == 200, saved.json
    wait_until(
        lambda: live.worker.evaluate("kv('subscription')") == proof(old),
        5,
        "the worker to remember the subscription the server has",
    )
    return live, old


def assert_moved(
    live: LiveWorker, site: ReaderSite, old: dict[str, Any], new: dict[str, Any]
) -> None:
    moved = wait_until(lambda: site.subscription(new["endpoint"]), 10, "the reader to be moved")
    assert (moved["topics"], moved["lang"]) == (["politics", "sport"], "sw")
    assert site.subscription(old["endpoint"]) is None
    wait_until(
        lambda: live.worker.evaluate("kv('subscription')") == proof(new),
        5,
        "the worker to remember the new subscription",
    )
    assert live.worker.evaluate("kv('move')") is None


def test_a_silent_renewal_is_moved_at_the_next_visit_and_the_next_push(
    chromium: Any, reader_site: ReaderSite
) -> None:
    live, old = signed_up(chromium, reader_site)

    new = fake_browser_subscription(new_endpoint())
    renew_silently(live, new)
    live.page.reload()
    assert widget_state(live.page) == "subscribed"
    assert_moved(live, reader_site, old, new)

    # Renewed again; no page this time: the next push is the check-in.
    newer = fake_browser_subscription(new_endpoint())
    renew_silently(live, newer)
    live.push({"id": "1", "title": "Storm warning", "body": "Heavy rain tonight.", "ts": 1})
    assert_moved(live, reader_site, new, newer)
    assert live.worker.evaluate("self.__subscribed") == 0


def test_a_browser_without_a_subscription_gets_none_made_up(
    chromium: Any, reader_site: ReaderSite
) -> None:
    live, old = signed_up(chromium, reader_site)
    renew_silently(live, None)
    posts: list[str] = []
    live.page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    live.page.reload()
    assert widget_state(live.page) == "prompt"
    live.page.wait_for_timeout(500)
    assert live.worker.evaluate("self.__subscribed") == 0
    assert live.worker.evaluate("kv('move')") is None
    assert posts == []
    kept = reader_site.subscription(old["endpoint"])
    assert kept is not None and kept["topics"] == ["politics", "sport"]


def test_an_old_worker_is_replaced_at_once_and_the_manage_link_gets_the_readers_language(
    chromium: Any, reader_site: ReaderSite
) -> None:
    """A worker the widget registered before this version (`/sw.js`, no `?v=`), which does not
    answer the widget's check-in: the widget does not wait out its timeout for it, the current
    worker replaces it, and the Manage alerts link gets the language of the reader's alerts
    (Kiswahili, on an English page) from it."""
    live = register_worker(chromium, reader_site, script="/sw.js")
    sub = fake_browser_subscription(new_endpoint())
    made = reader_site.api().post("/api/v1/subscriptions", json={**sub, "lang": "sw"})
    assert made.status_code == 201, made.json
    live.worker.evaluate("kv('lang', 'sw')")
    # What an old worker does with the check-in: nothing.
    live.worker.evaluate("MessagePort.prototype.postMessage = function () {}")
    live.page.evaluate("s => localStorage.setItem('test:subscription', JSON.stringify(s))", sub)
    watch(live.page, "document.querySelector('a.nf-link[hreflang=sw]')")
    live.page.reload()
    assert widget_state(live.page) == "subscribed"
    seen_at(live.page, "old worker: Manage alerts link in Kiswahili")
    assert "lang=sw" in str(live.page.locator("a.nf-link").get_attribute("href"))
    script = live.page.evaluate("navigator.serviceWorker.ready.then(r => r.active.scriptURL)")
    assert script.endswith("/sw.js?v=2")


def test_the_manage_page_does_not_wait_for_an_old_worker(
    chromium: Any, reader_site: ReaderSite
) -> None:
    live = register_worker(chromium, reader_site, script="/sw.js")
    sub = fake_browser_subscription(new_endpoint())
    made = reader_site.api().post("/api/v1/subscriptions", json={**sub, "topics": ["sport"]})
    assert made.status_code == 201, made.json
    live.worker.evaluate("MessagePort.prototype.postMessage = function () {}")
    page = live.page
    page.add_init_script(PUSH_STUB)
    watch(page, "/Sport/.test(document.getElementById('nf-state')?.textContent)")
    page.evaluate("s => localStorage.setItem('test:subscription', JSON.stringify(s))", sub)
    page.goto(reader_site.base + "/manage")
    seen_at(page, "old worker: the manage page shows the reader's topics")
    assert "Sport" in page.locator("#nf-state").inner_text()
    script = page.evaluate("navigator.serviceWorker.ready.then(r => r.active.scriptURL)")
    assert script.endswith("/sw.js?v=2")
