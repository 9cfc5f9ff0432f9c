"""Reaching every reader in a real Chromium: iPhone Home Screen steps, Kiswahili, no dead ends."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    PUSH_STUB,
    ReaderSite,
    fake_browser_subscription,
    keep,
    new_endpoint,
    notifications,
    register_worker,
    widget_state,
)
from tests.support.stack import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
# Safari in a normal iOS tab: an iPhone user agent and no PushManager (nor Notification).
IOS_TAB = f"""
Object.defineProperty(navigator, 'userAgent', {{ get: () => {IPHONE_UA!r} }});
Object.defineProperty(navigator, 'maxTouchPoints', {{ get: () => 5 }});
delete window.PushManager; delete window.Notification;
"""
# The same iPhone, opened from the Home Screen: Safari's navigator.standalone, push available.
IOS_HOME_SCREEN = f"""
Object.defineProperty(navigator, 'userAgent', {{ get: () => {IPHONE_UA!r} }});
Object.defineProperty(navigator, 'standalone', {{ get: () => true }});
"""


def fresh_page(chromium: Any, *scripts: str, width: int = 390, height: int = 844) -> Any:
    page = chromium.pages[0] if chromium.pages else chromium.new_page()
    page.set_viewport_size({"width": width, "height": height})
    for script in scripts:
        page.add_init_script(script)
    return page


def test_iphone_safari_tab_shows_home_screen_steps_not_a_prompt_that_cannot_work(
    chromium: Any, reader_site: ReaderSite, artifacts: Path
) -> None:
    page = fresh_page(chromium, IOS_TAB)
    page.goto(reader_site.base + "/")
    assert widget_state(page) == "homescreen"
    steps = page.get_by_role("dialog", name="Be the first to know.")
    text = steps.inner_text()
    assert "Home Screen" in text and "Share" in text
    assert [li.inner_text() for li in steps.get_by_role("listitem").all()] == [
        "Tap Share (the square with an arrow).",
        "Choose \u201cAdd to Home Screen\u201d, then Add.",
        "Open us from your Home Screen and tap \u201cYes, Thanks\u201d.",
    ]
    assert page.get_by_role("button", name="Yes, Thanks").count() == 0
    keep(page, artifacts, "ios-tab-home-screen-steps-390.png", full_page=False)
    page.set_viewport_size({"width": 1280, "height": 720})
    keep(page, artifacts, "ios-tab-home-screen-steps-desktop.png", full_page=False)

    # The manage page gives the same steps, not a dead end.
    page.goto(reader_site.base + "/manage")
    page.locator("#nf-state").get_by_text("added to your Home Screen").wait_for()
    assert page.locator("#nf-steps li").count() == 3
    page.goto(reader_site.base + "/")

    # Not now snoozes the steps like the prompt.
    page.get_by_role("button", name="Not now").click()
    assert page.get_by_role("dialog").count() == 0
    page.reload()
    assert widget_state(page) == "snoozed"


def test_iphone_home_screen_app_runs_the_normal_yes_thanks_flow(
    chromium: Any, reader_site: ReaderSite, artifacts: Path
) -> None:
    page = fresh_page(chromium, IOS_HOME_SCREEN, PUSH_STUB)
    page.goto(reader_site.base + "/")
    assert widget_state(page) == "prompt"
    assert page.get_by_role("button", name="Yes, Thanks").is_visible()
    keep(page, artifacts, "ios-home-screen-prompt-390.png", full_page=False)
    sub = fake_browser_subscription(new_endpoint())
    page.evaluate("s => { window.__nextSubscription = s; }", sub)
    page.get_by_role("button", name="Yes, Thanks").click()
    page.get_by_role("status").get_by_text("You're signed up").wait_for()
    assert reader_site.subscription(sub["endpoint"]) is not None


def test_a_home_screen_app_never_shows_the_add_to_home_screen_steps(
    chromium: Any, reader_site: ReaderSite
) -> None:
    # Opened from the Home Screen (display-mode standalone) on an iOS too old for web push:
    # sending the reader to the Home Screen again would be a loop, so the widget stays quiet.
    standalone = """
    const real = window.matchMedia.bind(window);
    window.matchMedia = (q) => q.includes('display-mode: standalone')
      ? { matches: true, media: q, addEventListener() {}, removeEventListener() {} } : real(q);
    """
    page = fresh_page(chromium, IOS_TAB, standalone)
    page.goto(reader_site.base + "/")
    assert widget_state(page) == "unsupported"
    assert page.get_by_role("dialog").count() == 0


def swahili_page(page: Any) -> None:
    """A Kiswahili publisher's article: the same page with <html lang="sw">."""

    def serve(route: Any) -> None:
        answer = route.fetch()
        route.fulfill(
            response=answer, body=answer.text().replace('<html lang="en">', '<html lang="sw">')
        )

    page.route("**/", serve)


def test_a_kiswahili_page_asks_in_kiswahili_and_stores_the_readers_language(
    chromium: Any, reader_site: ReaderSite, artifacts: Path
) -> None:
    page = fresh_page(chromium, PUSH_STUB)
    swahili_page(page)
    page.goto(reader_site.base + "/")
    assert widget_state(page) == "prompt"
    prompt = page.get_by_role("dialog", name="Kuwa wa kwanza kujua.")
    assert prompt.get_attribute("lang") == "sw"
    assert page.get_by_role("button", name="Ndiyo, Asante").is_visible()
    assert page.get_by_role("button", name="Sio sasa").is_visible()
    page.get_by_role("button", name="Chagua mada").click()
    assert page.get_by_label("Habari za dharura").is_checked()
    keep(page, artifacts, "kiswahili-prompt-390.png", full_page=False)

    sub = fake_browser_subscription(new_endpoint())
    page.evaluate("s => { window.__nextSubscription = s; }", sub)
    page.get_by_role("button", name="Ndiyo, Asante").click()
    page.get_by_role("status").get_by_text("Umejiandikisha").wait_for()
    row = reader_site.subscription(sub["endpoint"])
    assert row is not None and row["lang"] == "sw"

    # Escape after signing up closes the message; it does not mark the reader as declined.
    page.keyboard.press("Escape")
    assert page.get_by_role("dialog").count() == 0
    assert widget_state(page) == "subscribed"
    assert page.evaluate("localStorage.getItem('newsflash:dismissedAt')") is None


def test_manage_offers_turn_on_and_the_widget_stays_quiet_after_turn_off(
    chromium: Any, reader_site: ReaderSite, artifacts: Path
) -> None:
    # A fresh browser on /manage: not subscribed, so it can turn alerts on right there.
    page = fresh_page(chromium, PUSH_STUB, width=1280, height=900)
    page.goto(reader_site.base + "/manage")
    state = page.locator("#nf-state")
    state.get_by_text("Alerts are off in this browser").wait_for()
    sub = fake_browser_subscription(new_endpoint())
    page.evaluate("s => { window.__nextSubscription = s; }", sub)
    page.get_by_label("Sport").check()
    page.get_by_role("button", name="Turn on alerts").click()
    state.get_by_text("Alerts are on in this browser").wait_for()
    assert reader_site.subscription(sub["endpoint"])["topics"] == ["breaking", "sport"]  # type: ignore[index]

    page.get_by_role("button", name="Turn off alerts").click()
    state.get_by_text("Alerts are off.").wait_for()
    assert reader_site.subscription(sub["endpoint"]) is None
    assert page.get_by_role("button", name="Turn on alerts").is_visible(), "never a dead end"
    keep(page, artifacts, "manage-turned-off-desktop.png", full_page=False)

    # The widget leaves a reader who turned alerts off alone for 90 days.
    page.goto(reader_site.base + "/")
    assert widget_state(page) == "turned-off"
    assert page.get_by_role("dialog").count() == 0
    page.evaluate(
        "ms => localStorage.setItem('newsflash:offAt', String(Date.now() - ms))", 91 * 86_400_000
    )
    page.reload()
    assert widget_state(page) == "prompt"


def test_manage_in_kiswahili(chromium: Any, reader_site: ReaderSite, artifacts: Path) -> None:
    page = fresh_page(chromium, PUSH_STUB)
    page.goto(reader_site.base + "/manage?lang=sw")
    page.locator("#nf-state").get_by_text("Arifa zimezimwa kwenye kivinjari hiki").wait_for()
    assert page.get_by_role("heading", level=1).inner_text() == "Arifa zako za habari"
    assert page.get_by_role("button", name="Washa arifa").is_visible()
    assert page.get_by_label("Habari za dharura").is_visible()
    keep(page, artifacts, "manage-kiswahili-390.png", full_page=False)


@pytest.mark.parametrize(
    ("name", "message", "words"),
    [
        ("NotAllowedError", "raw", "private or incognito window"),
        # What Chrome says in a private window (the report).
        ("AbortError", "Registration failed - permission denied", "private or incognito window"),
        ("AbortError", "raw", "push service didn't answer"),
        ("InvalidStateError", "raw", "Reload the page"),
        ("NotSupportedError", "raw", "can't receive news alerts"),
        ("TimeoutError", "raw", "took too long"),
    ],
)
def test_browser_errors_are_plain_words_never_raw(
    chromium: Any, reader_site: ReaderSite, name: str, message: str, words: str
) -> None:
    page = fresh_page(chromium, PUSH_STUB, width=1280, height=720)
    page.add_init_script(
        "PushManager.prototype.subscribe = async () => { throw new DOMException("
        f"'{message}', '{name}'); }};"
    )
    page.goto(reader_site.base + "/")
    assert widget_state(page) == "prompt"
    page.get_by_role("button", name="Yes, Thanks").click()
    status = page.get_by_role("status")
    status.get_by_text(words).wait_for()
    assert message not in status.inner_text() and name not in status.inner_text()


def test_an_unreadable_push_is_titled_in_the_readers_language(
    chromium: Any, reader_site: ReaderSite
) -> None:
    live = register_worker(chromium, reader_site)
    # What the widget tells the worker after a Kiswahili reader signs up.
    live.page.evaluate(
        "navigator.serviceWorker.ready.then(r => r.active.postMessage("
        "{type: 'newsflash:remember', lang: 'sw'}))"
    )
    wait_until(lambda: live.worker.evaluate("kv('lang')") == "sw", 10, "the worker to keep it")
    live.push("not json at all")
    wait_until(
        lambda: any(n["title"] == "Arifa ya habari" for n in notifications(live.page)),
        20,
        "a Kiswahili notification for an unreadable push",
    )
    # Anything but a language we write in is ignored.
    live.page.evaluate(
        "navigator.serviceWorker.ready.then(r => r.active.postMessage("
        "{type: 'newsflash:remember', lang: '<b>'}))"
    )
    live.page.wait_for_timeout(300)
    assert live.worker.evaluate("kv('lang')") == "sw"
    live.cdp.detach()


def test_a_slow_browser_shows_progress(chromium: Any, reader_site: ReaderSite) -> None:
    page = fresh_page(chromium, PUSH_STUB, width=1280, height=720)
    page.add_init_script("PushManager.prototype.subscribe = () => new Promise(() => {});")
    page.goto(reader_site.base + "/")
    assert widget_state(page) == "prompt"
    page.get_by_role("button", name="Yes, Thanks").click()
    status = page.get_by_role("status")
    assert status.inner_text() == "Turning on alerts\u2026"
    status.get_by_text("Still waiting for your browser").wait_for(timeout=10_000)
    assert page.get_by_role("button", name="Yes, Thanks").is_disabled()


def test_a_kiswahili_alert_arrives_in_kiswahili_and_in_english_for_an_english_reader(
    chromium: Any, reader_site: ReaderSite
) -> None:
    """One alert in both languages: each reader's push carries their language's words (with
    lang and dir), built the way the fan-out builds it, and the worker shows it so."""
    from core.delivery import _messages
    from core.model import Target

    container = reader_site.app.extensions["newsflash"].container
    readers = []
    for lang in ("sw", "en"):
        sub = fake_browser_subscription(new_endpoint())
        answer = reader_site.api().post("/api/v1/subscriptions", json={**sub, "lang": lang})
        assert answer.status_code == 201, answer.json
        readers.append(reader_site.subscription(sub["endpoint"]))
    article = reader_site.base + "/news/daraja"
    alert_id = reader_site.publish(
        title="Harbour bridge reopens",
        body="Traffic flows again from 6 pm.",
        url=article,
        lang="en",
        translations={"sw": {"title": "Daraja la bandari lafunguliwa", "body": "Magari yanapita."}},
    )
    alert = container.alerts.get_alert(int(alert_id))
    targets = [
        Target(r["id"], r["endpoint"], r["p256dh"], r["auth"], r["topic_mask"], lang=r["lang"])
        for r in readers
    ]
    messages = _messages(alert, targets, container.receipts, int(time.time()), "en")
    live = register_worker(chromium, reader_site)
    shown_as = []
    for message in messages:
        live.push(json.loads(message.payload))
        shown = wait_until(lambda: notifications(live.page, alert.story_key), 10, "the alert")
        shown_as.append((shown[0]["title"], shown[0]["body"], shown[0]["lang"], shown[0]["dir"]))
    assert shown_as == [
        ("Daraja la bandari lafunguliwa", "Magari yanapita.", "sw", "ltr"),
        ("Harbour bridge reopens", "Traffic flows again from 6 pm.", "en", "ltr"),
    ]
    live.cdp.detach()
