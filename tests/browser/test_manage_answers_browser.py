"""What the manage page and an article's Follow button answer a reader, in a real Chromium: in the
page's language, where a screen reader announces it, with the keyboard kept where the reader was
and no button left that cannot work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    OVERFLOW_JS,
    PHONE,
    PUSH_STUB,
    ReaderSite,
    fake_browser_subscription,
    keep,
    new_endpoint,
    subscribed_page,
    widget_state,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

# The buttons a reader can still see and press on the manage page.
LIVE_BUTTONS = """() => [...document.querySelectorAll('#nf-manage button')]
  .filter(b => b.offsetParent !== null && !b.disabled).map(b => b.textContent.trim())"""
FOCUSED = "() => document.activeElement.id"
# What a screen reader says the focused element is: its accessible name, roughly.
FOCUSED_NAME = """() => { const e = document.activeElement;
  return e === document.body ? "(the page)" : e.getAttribute("aria-label") || e.textContent.trim(); }"""

BLOCKED = {
    "en": ("Turn on alerts", "Notifications are blocked for this site"),
    "sw": ("Washa arifa", "Arifa zimezuiwa kwa tovuti hii"),
}
CANNOT = {
    "en": ("Turn on alerts", "This browser can't receive news alerts."),
    "sw": ("Washa arifa", "Kivinjari hiki hakiwezi kupokea arifa za habari."),
}


def manage_page(chromium: Any, site: ReaderSite, lang: str, breakage: str) -> Any:
    page = chromium.pages[0]
    page.add_init_script(PUSH_STUB)
    page.add_init_script(breakage)
    page.set_viewport_size(PHONE)
    page.goto(f"{site.base}/manage?lang={lang}")
    return page


@pytest.mark.parametrize(
    ("lang", "breakage", "words"),
    [
        ("en", "Notification.requestPermission = async () => 'denied';", BLOCKED["en"]),
        ("sw", "Notification.requestPermission = async () => 'denied';", BLOCKED["sw"]),
        (
            "sw",
            "PushManager.prototype.subscribe = async () => "
            "{ throw new DOMException('no', 'NotSupportedError'); };",
            CANNOT["sw"],
        ),
    ],
)
def test_a_turn_on_that_cannot_work_here_says_why_and_leaves_no_button_to_press_again(
    chromium: Any, reader_site: ReaderSite, lang: str, breakage: str, words: tuple[str, str]
) -> None:
    button, why = words
    page = manage_page(chromium, reader_site, lang, breakage)
    page.get_by_role("button", name=button).focus()
    page.keyboard.press("Enter")
    state = page.locator("#nf-state")
    state.get_by_text(why).wait_for()
    # Before: the state line still said "choose topics and turn them on below" over a Turn on
    # button that could only repeat the refusal, with the refusal in the message under it.
    assert page.evaluate(LIVE_BUTTONS) == []
    assert page.locator("#nf-message").inner_text() == ""
    assert page.evaluate(FOCUSED) == "nf-state", "the keyboard stays where the answer is"


@pytest.mark.parametrize(
    ("lang", "server", "why"),
    [
        ("sw", "offline", "Hatukuweza kufikia seva yetu"),
        ("en", "offline", "We couldn't reach our server"),
        ("sw", 503, "Seva yetu haikuweza kukusajili"),
    ],
)
def test_a_turn_on_our_server_cannot_answer_blames_our_server_and_can_be_tried_again(
    chromium: Any, reader_site: ReaderSite, lang: str, server: str | int, why: str
) -> None:
    page = manage_page(chromium, reader_site, lang, "")
    button = page.get_by_role("button", name=BLOCKED[lang][0])
    button.wait_for()

    def answer(route: Any) -> None:
        if server == "offline":
            route.abort("internetdisconnected")
        else:
            route.fulfill(status=int(server), json={"error": {"code": "unavailable"}})

    page.route("**/api/v1/config**", answer)
    button.click()
    # Before: "Your browser's push service didn't answer", which no reader can do anything about.
    page.locator("#nf-message").get_by_text(why).wait_for()
    page.unroute("**/api/v1/config**")
    assert button.is_visible() and button.is_enabled()


def press(page: Any, name: str) -> None:
    """What a keyboard reader does: Tab to the button, Enter."""
    page.get_by_role("button", name=name, exact=True).focus()
    page.keyboard.press("Enter")


def test_the_keyboard_stays_on_each_button_that_waits_for_our_server(
    chromium: Any, reader_site: ReaderSite
) -> None:
    """Before, each of these buttons was disabled while its request ran, which drops the focus
    to the page's top: the next Tab went to "Skip to content"."""
    reader_site.open_story("Live: Mombasa port strike")
    page = subscribed_page(chromium, reader_site, lang="sw")
    page.set_viewport_size(PHONE)
    page.goto(reader_site.base + "/manage?lang=sw")
    page.locator("#nf-stories").wait_for()

    press(page, "Hifadhi saa za utulivu na kikomo")
    page.get_by_text("Imehifadhiwa. Hakuna saa za utulivu.").wait_for()
    assert page.evaluate(FOCUSED_NAME) == "Hifadhi saa za utulivu na kikomo"

    press(page, "Fuatilia: Live: Mombasa port strike")
    stop = page.get_by_role("button", name="Acha kufuatilia: Live: Mombasa port strike")
    stop.wait_for()
    assert page.evaluate(FOCUSED_NAME) == "Acha kufuatilia: Live: Mombasa port strike"

    # Offline: the answer says so and the same button can be pressed again.
    page.route("**/api/v1/stories/**", lambda route: route.abort("internetdisconnected"))
    page.route("**/api/v1/subscriptions/stories", lambda route: route.abort("internetdisconnected"))
    page.keyboard.press("Enter")
    page.locator("#nf-stories-message").get_by_text("Hatukuweza kuhifadhi hilo").wait_for()
    assert stop.is_enabled(), "a failed Stop following must not stay disabled"
    assert page.evaluate(FOCUSED_NAME) == "Acha kufuatilia: Live: Mombasa port strike"
    page.unroute("**/api/v1/stories/**")
    page.unroute("**/api/v1/subscriptions/stories")

    # The language switch, offline: it says so and the keyboard is still on it.
    page.route("**/api/v1/subscriptions", lambda route: route.abort("internetdisconnected"))
    press(page, "Get alerts in English")
    page.locator("#nf-message").get_by_text("Hatukuweza kubadilisha lugha").wait_for()
    assert page.evaluate(FOCUSED_NAME) == "Get alerts in English"
    page.unroute("**/api/v1/subscriptions")

    # Turn off, then Turn on again by keyboard: the button goes, the keyboard reaches the answer.
    press(page, "Zima arifa")
    page.locator("#nf-message").get_by_text("Arifa zimezimwa.").wait_for()
    sub = fake_browser_subscription(new_endpoint())
    page.evaluate("s => { window.__nextSubscription = s; }", sub)
    press(page, "Washa arifa")
    page.locator("#nf-message").get_by_text("Umejiandikisha.").wait_for()
    assert page.evaluate(FOCUSED) == "nf-message"


def test_the_keyboard_stays_on_an_articles_follow_button(
    chromium: Any, reader_site: ReaderSite
) -> None:
    key = reader_site.open_story("Live: the Safari Rally")
    page = subscribed_page(chromium, reader_site, lang="sw")
    article = f"""<!doctype html><html lang="sw"><head><title>Safari Rally</title></head>
      <body><h1>Safari Rally</h1><div id="newsflash-follow"></div>
      <script src="/newsflash.js" data-story="{key}"></script></body></html>"""
    page.route("**/live/rally", lambda route: route.fulfill(body=article, content_type="text/html"))
    page.goto(reader_site.base + "/live/rally")
    press(page, "Fuatilia habari hii")
    page.get_by_role("button", name="Unafuatilia habari hii \u2713").wait_for()
    assert page.evaluate(FOCUSED_NAME) == "Unafuatilia habari hii \u2713"


def test_a_follow_that_fails_on_an_article_is_announced_beside_its_button(
    chromium: Any, reader_site: ReaderSite, artifacts: Path
) -> None:
    key = reader_site.open_story("Live: the Mashujaa Day parade")
    page = subscribed_page(chromium, reader_site, lang="sw")
    page.set_viewport_size(PHONE)
    article = f"""<!doctype html><html lang="sw"><head><title>Mashujaa</title></head>
      <body><h1>Mashujaa</h1><div id="newsflash-follow"></div>
      <script src="/newsflash.js" data-story="{key}"></script></body></html>"""
    page.route(
        "**/live/parade", lambda route: route.fulfill(body=article, content_type="text/html")
    )
    page.goto(reader_site.base + "/live/parade")
    page.get_by_role("button", name="Fuatilia habari hii").wait_for()
    page.route("**/api/v1/stories/*/follow", lambda route: route.abort("internetdisconnected"))
    press(page, "Fuatilia habari hii")
    # Before: the button's own name became the error, announced by nothing, and a reader then
    # saw a button called "We couldn't change that just now".
    page.get_by_role("status").get_by_text("Hatukuweza kubadilisha hilo sasa hivi.").wait_for()
    button = page.get_by_role("button", name="Fuatilia habari hii", exact=True)
    assert button.get_attribute("aria-pressed") == "false" and button.is_enabled()
    assert page.evaluate(OVERFLOW_JS) == []
    keep(page, artifacts, "article-follow-failed-kiswahili-390.png", full_page=False)

    page.unroute("**/api/v1/stories/*/follow")
    press(page, "Fuatilia habari hii")
    page.get_by_role("button", name="Unafuatilia habari hii \u2713").wait_for()
    assert page.locator(".nf-follow-note").inner_text() == ""


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (503, "Hatukuweza kufikia seva yetu"),
        (429, "Hatukuweza kufikia seva yetu"),
        (404, "hatuna mada zako"),
    ],
)
def test_a_failing_lookup_is_not_taken_for_a_browser_we_do_not_know(
    chromium: Any, reader_site: ReaderSite, status: int, said: str
) -> None:
    """Before, any answer but 200 said "we have no topics on record for it" and offered a Save
    that signed the reader up afresh; only a 404 means that."""
    page = subscribed_page(chromium, reader_site, lang="sw")
    page.route(
        "**/api/v1/subscriptions/lookup",
        lambda route: route.fulfill(status=status, json={"error": {"code": "x", "field": None}}),
    )
    page.goto(reader_site.base + "/manage?lang=sw")
    page.locator("#nf-state").get_by_text(said).wait_for()
    assert page.locator("#nf-form").is_visible() == (status == 404)


@pytest.mark.parametrize("where", ["prompt", "manage"])
def test_a_worker_script_that_does_not_arrive_is_a_connection_to_try_again(
    chromium: Any, reader_site: ReaderSite, where: str
) -> None:
    """A phone's data dropping while the browser fetches /sw.js: before, the prompt said this
    browser can't receive alerts and took Yes, Thanks away (the manage page blamed the push
    service)."""
    page = chromium.pages[0]
    page.add_init_script(PUSH_STUB)
    page.set_viewport_size(PHONE)
    # The browser fetches a worker's script itself: only the context sees that request.
    chromium.route("**/sw.js*", lambda route: route.abort("internetdisconnected"))
    try:
        offline_then_online(chromium, reader_site, page, where)
    finally:
        chromium.unroute("**/sw.js*")


def offline_then_online(chromium: Any, reader_site: ReaderSite, page: Any, where: str) -> None:
    if where == "prompt":

        def kiswahili(route: Any) -> None:
            answer = route.fetch()
            body = answer.text().replace('<html lang="en">', '<html lang="sw">')
            route.fulfill(response=answer, body=body)

        page.route("**/", kiswahili)
        page.goto(reader_site.base + "/")
        button = page.get_by_role("button", name="Ndiyo, Asante")
    else:
        page.goto(reader_site.base + "/manage?lang=sw")
        button = page.get_by_role("button", name="Washa arifa")
    page.evaluate(
        "s => { window.__nextSubscription = s; }", fake_browser_subscription(new_endpoint())
    )
    button.click()
    page.get_by_role("status").get_by_text("Hatukuweza kufikia seva yetu").first.wait_for()
    assert button.is_visible() and button.is_enabled(), "the reader can try again"

    chromium.unroute("**/sw.js*")
    button.click()
    page.get_by_role("status").get_by_text("Umejiandikisha").first.wait_for()


def test_a_story_that_cannot_be_read_leaves_a_subscribed_reader_subscribed(
    chromium: Any, reader_site: ReaderSite
) -> None:
    """Before, the failed story fetch reached the widget's last resort, which marked the page
    data-newsflash="quiet" under a reader whose Manage alerts link was on the screen."""
    key = reader_site.open_story("Live: the Nairobi marathon")
    page = subscribed_page(chromium, reader_site, lang="sw")
    article = f"""<!doctype html><html lang="sw"><head><title>Marathon</title></head>
      <body><h1>Marathon</h1><div id="newsflash-follow"></div>
      <script src="/newsflash.js" data-story="{key}"></script></body></html>"""
    page.route(
        "**/live/marathon", lambda route: route.fulfill(body=article, content_type="text/html")
    )
    page.route(f"**/api/v1/stories/{key}", lambda route: route.abort("internetdisconnected"))
    page.goto(reader_site.base + "/live/marathon")
    page.get_by_role("link", name="Dhibiti arifa").wait_for()
    page.wait_for_load_state("networkidle")
    assert widget_state(page) == "subscribed"
    assert page.locator(".nf-follow").count() == 0
