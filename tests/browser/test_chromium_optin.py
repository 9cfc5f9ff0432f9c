"""The reader side in a real Chromium: soft prompt, opt-in, manage page, and the service worker."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from core.base64url import b64url_decode
from core.payload import payload_dict
from tests.support.browser import (
    ReaderSite,
    fake_browser_subscription,
    new_endpoint,
    notifications,
    open_page,
    register_worker,
    widget_state,
)
from tests.support.stack import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

DAY_MS = 86_400_000
REASK_DAYS = 7


def reload(page: Any) -> str:
    page.reload()
    return widget_state(page)


def test_soft_prompt_shows_the_copy_and_a_keyboard_usable_topic_picker(
    chromium: Any, reader_site: ReaderSite, artifacts: Path
) -> None:
    page = open_page(chromium, reader_site.base + "/")
    assert widget_state(page) == "prompt"
    prompt = page.get_by_role("dialog", name="Be the first to know.")
    assert prompt.is_visible()
    assert "Get breaking news alerts from us." in prompt.inner_text()
    assert page.get_by_role("button", name="Yes, Thanks").is_visible()
    assert page.get_by_role("button", name="Not now").is_visible()
    # The page itself is a readable article, with the widget on it.
    assert page.get_by_role("heading", level=1).inner_text().startswith("Harbour footbridge")
    page.screenshot(path=str(artifacts / "chromium-prompt.png"))

    # Keyboard only: the prompt is the first stop, the picker opens with Enter.
    page.keyboard.press("Tab")
    more = page.get_by_role("button", name="Choose topics")
    assert more.evaluate("b => b === document.activeElement")
    assert more.get_attribute("aria-expanded") == "false"
    assert not page.get_by_label("Breaking news").is_visible()
    page.keyboard.press("Enter")
    assert more.get_attribute("aria-expanded") == "true"
    breaking = page.get_by_label("Breaking news")
    assert breaking.evaluate("b => b === document.activeElement"), "focus moves into the picker"
    assert breaking.is_checked()
    for name in ("Politics", "Business", "Sport"):
        assert page.get_by_label(name).is_visible() and not page.get_by_label(name).is_checked()
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    assert page.get_by_label("Politics").is_checked()
    page.screenshot(path=str(artifacts / "chromium-topic-picker.png"))

    # Readable: dark text on white, the main button white on dark blue (WCAG AA or better).
    colors = page.evaluate(
        """() => { const s = (sel) => getComputedStyle(document.querySelector(sel));
        return [s('.nf').color, s('.nf').backgroundColor, s('.nf-yes').color, s('.nf-yes').backgroundColor]; }"""
    )
    assert contrast(colors[0], colors[1]) >= 4.5
    assert contrast(colors[2], colors[3]) >= 4.5


def test_not_now_hides_the_prompt_until_the_reask_delay_has_passed(
    chromium: Any, reader_site: ReaderSite
) -> None:
    page = open_page(chromium, reader_site.base + "/")
    assert widget_state(page) == "prompt"
    page.get_by_role("button", name="Not now").click()
    assert page.get_by_role("dialog").count() == 0
    assert widget_state(page) == "snoozed"
    assert reload(page) == "snoozed"
    assert page.get_by_role("dialog").count() == 0

    def dismissed_days_ago(days: float) -> None:
        page.evaluate(
            "ms => localStorage.setItem('newsflash:dismissedAt', String(Date.now() - ms))",
            int(days * DAY_MS),
        )

    dismissed_days_ago(REASK_DAYS - 0.05)
    assert reload(page) == "snoozed", "still inside the re-ask delay"
    dismissed_days_ago(REASK_DAYS + 0.01)
    assert reload(page) == "prompt", "asked again once the delay has passed"
    assert page.get_by_role("dialog").is_visible()

    # Escape is "Not now" too, and focus does not get lost with the prompt.
    page.get_by_role("button", name="Yes, Thanks").focus()
    page.keyboard.press("Escape")
    assert page.get_by_role("dialog").count() == 0
    assert widget_state(page) == "snoozed"
    assert page.evaluate("document.activeElement === document.body")


def test_yes_thanks_subscribes_with_the_chosen_topics_and_says_so(
    chromium: Any, reader_site: ReaderSite, artifacts: Path
) -> None:
    page = open_page(chromium, reader_site.base + "/")
    assert widget_state(page) == "prompt"
    sub = fake_browser_subscription(new_endpoint())
    page.evaluate("s => { window.__nextSubscription = s; }", sub)
    page.get_by_role("button", name="Choose topics").click()
    page.get_by_label("Sport").check()
    page.get_by_role("button", name="Yes, Thanks").click()

    status = page.get_by_role("status")
    status.get_by_text("You're signed up").wait_for()
    assert status.inner_text().startswith(
        "You're signed up. We'll send you alerts about Breaking news and Sport."
    )
    assert (
        status.get_by_role("link", name="Manage alerts").get_attribute("href") == "/manage?lang=en"
    )
    assert status.evaluate("s => s === document.activeElement"), "focus moves to the result"
    page.screenshot(path=str(artifacts / "chromium-subscribed.png"))
    assert page.get_by_role("button", name="Yes, Thanks").count() == 0

    row = reader_site.subscription(sub["endpoint"])
    assert row is not None
    assert row["topics"] == ["breaking", "sport"]
    assert row["auth"] == sub["keys"]["auth"] and row["p256dh"] == sub["keys"]["p256dh"]

    # subscribe() was asked for user-visible pushes with our VAPID key.
    calls = page.evaluate("window.__subscribeCalls")
    config = reader_site.api().get("/api/v1/config").json
    assert calls == [{"userVisibleOnly": True, "key": std_b64(config["vapidPublicKey"])}]
    scope = page.evaluate("navigator.serviceWorker.getRegistration().then(r => r && r.scope)")
    assert scope == reader_site.base + "/"

    page.get_by_role("button", name="Close").click()
    assert page.get_by_role("dialog").count() == 0
    # Next visit: no prompt, only a small way to manage alerts.
    assert reload(page) == "subscribed"
    assert page.get_by_role("dialog").count() == 0
    assert page.get_by_role("link", name="Manage alerts").is_visible()


def test_failures_are_explained_in_plain_words_and_leave_nothing_behind(
    chromium: Any, reader_site: ReaderSite
) -> None:
    page = open_page(chromium, reader_site.base + "/")
    assert widget_state(page) == "prompt"
    yes = page.get_by_role("button", name="Yes, Thanks")
    status = page.get_by_role("status")

    # Our server refuses it (an endpoint on no known push service).
    refused = fake_browser_subscription("https://push.evil.example/x")
    page.evaluate("s => { window.__nextSubscription = s; }", refused)
    yes.click()
    status.get_by_text("Our server couldn't sign you up").wait_for()
    assert reader_site.subscription(refused["endpoint"]) is None
    assert page.evaluate("localStorage.getItem('test:unsubscribed')") == refused["endpoint"]
    assert yes.is_enabled(), "the reader can try again"

    # The network fails.
    lost = fake_browser_subscription(new_endpoint())
    page.evaluate("s => { window.__nextSubscription = s; }", lost)
    page.route("**/api/v1/subscriptions", lambda route: route.abort("internetdisconnected"))
    yes.click()
    status.get_by_text("We couldn't reach our server").wait_for()
    page.unroute("**/api/v1/subscriptions")
    assert reader_site.subscription(lost["endpoint"]) is None

    # The reader blocks notifications in the browser's own dialog.
    page.evaluate("Notification.requestPermission = async () => 'denied'")
    yes.click()
    status.get_by_text("Notifications are blocked for this site").wait_for()
    assert page.get_by_role("button", name="Yes, Thanks").count() == 0
    page.get_by_role("button", name="Close").click()
    assert page.get_by_role("dialog").count() == 0


def test_browsers_that_cannot_or_may_not_push_see_nothing(
    chromium: Any, reader_site: ReaderSite
) -> None:
    page = open_page(chromium, reader_site.base + "/")
    assert widget_state(page) == "prompt"
    page.add_init_script("delete window.PushManager;")
    assert reload(page) == "unsupported"
    assert page.get_by_role("dialog").count() == 0

    other = chromium.new_page()
    cdp = chromium.new_cdp_session(other)
    cdp.send(
        "Browser.setPermission",
        {
            "permission": {"name": "notifications"},
            "setting": "denied",
            "origin": reader_site.base,
        },
    )
    other.goto(reader_site.base + "/")
    assert widget_state(other) == "denied"
    assert other.get_by_role("dialog").count() == 0
    assert other.get_by_role("link", name="Manage alerts").count() == 0


def test_manage_page_changes_topics_and_turns_alerts_off(
    chromium: Any, reader_site: ReaderSite, artifacts: Path
) -> None:
    page = open_page(chromium, reader_site.base + "/")
    sub = fake_browser_subscription(new_endpoint())
    page.evaluate("s => { window.__nextSubscription = s; }", sub)
    page.get_by_role("button", name="Yes, Thanks").click()
    page.get_by_role("status").get_by_text("You're signed up").wait_for()
    page.get_by_role("link", name="Manage alerts").click()
    page.wait_for_url(reader_site.base + "/manage?lang=en")

    state = page.locator("#nf-state")
    state.get_by_text("Alerts are on in this browser").wait_for()
    assert "Breaking news" in state.inner_text()
    assert page.get_by_label("Breaking news").is_checked()
    assert not page.get_by_label("Politics").is_checked()
    page.screenshot(path=str(artifacts / "chromium-manage.png"), full_page=True)

    page.get_by_label("Breaking news").uncheck()
    page.get_by_role("button", name="Save topics").click()
    page.get_by_text("Choose at least one topic").wait_for()
    assert reader_site.subscription(sub["endpoint"])["topics"] == ["breaking"]  # type: ignore[index]

    page.get_by_label("Politics").check()
    page.get_by_label("Business").check()
    page.get_by_role("button", name="Save topics").click()
    page.get_by_text("Saved. You will get alerts about: Politics and Business.").wait_for()
    assert reader_site.subscription(sub["endpoint"])["topics"] == ["politics", "business"]  # type: ignore[index]

    page.get_by_role("button", name="Turn off alerts").click()
    state.get_by_text("Alerts are off.").wait_for()
    assert reader_site.subscription(sub["endpoint"]) is None, "row gone at once"
    assert page.evaluate("localStorage.getItem('test:unsubscribed')") == sub["endpoint"]
    assert not page.get_by_role("button", name="Save topics").is_visible()
    page.reload()
    page.locator("#nf-state").get_by_text("Alerts are off in this browser").wait_for()


# The language the service worker keeps for the texts it writes itself (service/static/sw.js kv).
WORKER_LANG = """() => new Promise((resolve, reject) => {
  const open = indexedDB.open('newsflash', 1);
  open.onupgradeneeded = () => open.result.createObjectStore('kv');
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const req = open.result.transaction('kv').objectStore('kv').get('lang');
    req.onsuccess = () => { open.result.close(); resolve(req.result || null); };
    req.onerror = () => reject(req.error);
  };
})"""


def test_the_manage_page_keeps_the_readers_language_until_they_switch_it(
    chromium: Any, reader_site: ReaderSite
) -> None:
    """The page speaks the language stored for the reader's alerts whatever the link asked for,
    and each Save states it: a visit from a page in another language never switches their
    alerts by surprise. The reader switches with the page's own button, named in the language
    it leads to."""
    page = open_page(chromium, reader_site.base + "/")
    sub = fake_browser_subscription(new_endpoint())
    page.evaluate("s => { window.__nextSubscription = s; }", sub)
    page.get_by_role("button", name="Yes, Thanks").click()
    page.get_by_role("status").get_by_text("You're signed up").wait_for()
    assert reader_site.subscription(sub["endpoint"])["lang"] == "en"  # type: ignore[index]

    # A link from a Kiswahili page: the English reader gets their English page, and saves in it.
    page.goto(reader_site.base + "/manage?lang=sw")
    page.wait_for_url(reader_site.base + "/manage?lang=en")
    page.locator("#nf-state").get_by_text("Alerts are on in this browser").wait_for()
    page.locator("input[value=sport]").check()
    page.get_by_role("button", name="Save topics").click()
    page.get_by_text("Saved.").wait_for()
    row = reader_site.subscription(sub["endpoint"])
    assert row is not None and (row["lang"], row["topics"]) == ("en", ["breaking", "sport"])

    switch = page.get_by_role("button", name="Pokea arifa kwa Kiswahili")
    assert switch.get_attribute("lang") == "sw"
    switch.click()
    page.wait_for_url(reader_site.base + "/manage?lang=sw")
    page.locator("#nf-state").get_by_text("Arifa zimewashwa").wait_for()
    row = reader_site.subscription(sub["endpoint"])
    assert row is not None and (row["lang"], row["topics"]) == ("sw", ["breaking", "sport"])
    wait_until(lambda: page.evaluate(WORKER_LANG) == "sw", 5, "the service worker to keep sw")

    # The choices' Save states the page's language too: it stays Kiswahili.
    page.locator("#nf-choices").wait_for()
    page.get_by_label("Arifa za kawaida zisizozidi hizi kwa siku").select_option("3")
    page.get_by_role("button", name="Hifadhi saa za utulivu na kikomo").click()
    page.locator("#nf-choices-message").get_by_text("Imehifadhiwa.").wait_for()
    row = reader_site.subscription(sub["endpoint"])
    assert row is not None and (row["lang"], row["daily_cap"]) == ("sw", 3)

    page.get_by_role("button", name="Get alerts in English").click()
    page.wait_for_url(reader_site.base + "/manage?lang=en")
    page.locator("#nf-state").get_by_text("Alerts are on in this browser").wait_for()
    row = reader_site.subscription(sub["endpoint"])
    assert row is not None and (row["lang"], row["daily_cap"]) == ("en", 3)
    wait_until(lambda: page.evaluate(WORKER_LANG) == "en", 5, "the service worker to keep en")


# -- the service worker ---------------------------------------------------------------------


# In the worker: what would a click on the notification with this tag open (or focus)?
CLICK = """async (tag) => {
  const opened = [];
  self.clients.openWindow = async (url) => { opened.push(['open', url]); return null; };
  WindowClient.prototype.focus = async function () { opened.push(['focus', this.url]); return this; };
  const [n] = await self.registration.getNotifications({ tag });
  await openAlert(n);
  return opened;
}"""


def test_service_worker_shows_alerts_and_opens_only_the_publishers_urls(
    chromium: Any, reader_site: ReaderSite
) -> None:
    live = register_worker(chromium, reader_site)
    page, worker = live.page, live.worker
    article = reader_site.base + "/news/harbour-bridge"
    alert_id = reader_site.publish(title="Bridge reopens", body="Early finish.", url=article)
    tag = "nf" + uuid.uuid4().hex[:30]
    receipt = reader_site.delivered_receipt(alert_id)

    def message(title: str, body: str = "", url: str = article, tag: str = tag) -> Any:
        # What the fan-out sends: a Declarative Web Push message with our fields beside it.
        sent = payload_dict(alert_id, title, body, url, tag, int(time.time()), receipt=receipt)
        assert sent["web_push"] == 8030 and sent["notification"]["navigate"] == url
        return sent

    live.push(message("Bridge reopens", "Early finish."))
    shown = wait_until(lambda: notifications(page, tag), 10, "the notification")
    assert shown[0]["title"] == "Bridge reopens"
    assert shown[0]["body"] == "Early finish."
    assert shown[0]["tag"] == tag
    assert shown[0]["data"] == {"url": article, "id": alert_id, "d": receipt}
    assert shown[0]["renotify"] is False
    assert (shown[0]["lang"], shown[0]["dir"]) == ("en", "ltr")

    # A correction with the same tag replaces it, and alerts again.
    live.push(message("Correction: bridge reopens"))
    wait_until(
        lambda: [n["title"] for n in notifications(page, tag)] == ["Correction: bridge reopens"],
        10,
        "the correction to replace the first notification",
    )
    assert notifications(page, tag)[0]["renotify"] is True
    # Both displays are reported with the push's receipt; one browser counts once per alert.
    wait_until(
        lambda: reader_site.alert(alert_id)["counts"]["displayed"] == 1,
        10,
        "the display to be reported",
    )

    # A click opens the article (nothing was open on it) and is reported.
    assert worker.evaluate(CLICK, tag) == [["open", article]]
    wait_until(
        lambda: reader_site.alert(alert_id)["counts"]["clicked"] == 1, 10, "the click report"
    )
    # With the article already open in a tab, that tab is focused instead.
    live.push(message("Home", url=page.url, tag="nfhome"))
    wait_until(lambda: notifications(page, "nfhome"), 10, "the home notification")
    assert worker.evaluate(CLICK, "nfhome") == [["focus", page.url]]

    # Hostile or foreign URLs never open: the publisher's home page does (no tab has it now).
    page.goto(reader_site.base + "/manage")
    for index, url in enumerate(
        ["javascript:alert(document.cookie)", "https://evil.example/phish", "data:text/html,hi"]
    ):
        bad_tag = f"nfbad{index}"
        live.push(message("Bad", url=url, tag=bad_tag))
        wait_until(lambda t=bad_tag: notifications(page, t), 10, f"notification for {url}")
        assert worker.evaluate(CLICK, bad_tag) == [["open", reader_site.base + "/"]], url

    # A push the worker cannot read still shows a notification (never a silent push).
    live.push("not json at all")
    wait_until(
        lambda: any(n["title"] == "News alert" for n in notifications(page)),
        20,
        "a notification for an unreadable push",
    )


def test_a_correction_right_behind_its_story_replaces_it_and_alerts_again(
    chromium: Any, reader_site: ReaderSite
) -> None:
    """Both pushes arrive before the first is shown: the worker shows them in order, so the
    correction sees the story's notification, replaces it and alerts again (renotify)."""
    live = register_worker(chromium, reader_site)
    tag = "nf" + uuid.uuid4().hex[:30]
    story = {"id": "1", "url": reader_site.base + "/news/x", "tag": tag, "title": "Story"}
    live.deliver(json.dumps(story))
    live.deliver(json.dumps({**story, "title": "Correction: story"}))
    wait_until(lambda: len(live.shown()) == 2, 10, "both notifications to be shown")
    assert [title for _tag, title in live.shown()] == ["Story", "Correction: story"]
    shown = wait_until(lambda: notifications(live.page, tag), 10, "the notification")
    assert [(n["title"], n["renotify"]) for n in shown] == [("Correction: story", True)]


def test_a_display_reported_before_its_delivery_is_recorded_is_counted_on_retry(
    chromium: Any, reader_site: ReaderSite
) -> None:
    """The browser can show a push before the worker records it delivered: the server answers
    425 and the worker asks again, so the display is counted once the ledger has the row."""
    from flask import request, request_finished

    answers: list[int] = []

    def seen(sender: Any, response: Any, **_: Any) -> None:
        if request.path == "/api/v1/events":
            answers.append(response.status_code)

    request_finished.connect(seen, reader_site.app)
    try:
        live = register_worker(chromium, reader_site)
        article = reader_site.base + "/news/early"
        alert_id = reader_site.publish(title="Early", body="Shown first.", url=article)
        sub_id, receipt = reader_site.receipt(alert_id)
        tag = "nf" + uuid.uuid4().hex[:30]
        live.push({"id": alert_id, "title": "Early", "url": article, "tag": tag, "d": receipt})
        wait_until(lambda: 425 in answers, 10, "the report before the delivery is recorded")
        assert reader_site.alert(alert_id)["counts"]["displayed"] == 0
        reader_site.record_delivered(alert_id, sub_id)
        wait_until(
            lambda: reader_site.alert(alert_id)["counts"]["displayed"] == 1,
            15,
            "the display to be counted on the worker's retry",
        )
        # request_finished fires after the view committed: the count can be seen first.
        wait_until(lambda: answers[-1] == 202, 5, f"the retry's 202 (answers: {answers})")
    finally:
        request_finished.disconnect(seen, reader_site.app)


def test_pushsubscriptionchange_keeps_the_readers_topics(
    chromium: Any, reader_site: ReaderSite
) -> None:
    worker = register_worker(chromium, reader_site).worker
    old = fake_browser_subscription(new_endpoint())
    created = reader_site.api().post(
        "/api/v1/subscriptions", json={**old, "topics": ["politics", "sport"]}
    )
    assert created.status_code == 201
    new = fake_browser_subscription(new_endpoint())

    # The browser renewed the subscription and gives no oldSubscription (as Firefox does):
    # the worker uses what it remembered, and the push service's subscribe() is stubbed.
    status = worker.evaluate(
        """async ([old, next]) => {
          await kv('subscription', { endpoint: old.endpoint, auth: old.keys.auth });
          self.registration.pushManager.subscribe = async () => ({ toJSON: () => next });
          return resubscribe(null, null);
        }""",
        [old, new],
    )
    assert status == 201
    assert reader_site.subscription(old["endpoint"]) is None
    moved = reader_site.subscription(new["endpoint"])
    assert moved is not None and moved["topics"] == ["politics", "sport"]
    remembered = worker.evaluate("kv('subscription')")
    assert remembered == {"endpoint": new["endpoint"], "auth": new["keys"]["auth"]}


# -- helpers --------------------------------------------------------------------------------


def std_b64(b64url: str) -> str:
    return base64.b64encode(b64url_decode(b64url)).decode()


def contrast(fg: str, bg: str) -> float:
    """WCAG contrast ratio of two rgb()/rgba() CSS colors."""

    def luminance(css: str) -> float:
        parts = [float(x) for x in css[css.index("(") + 1 : -1].split(",")[:3]]
        linear = [
            c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
            for c in (p / 255 for p in parts)
        ]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (light + 0.05) / (dark + 0.05)
