"""The soft prompt as a reader on a phone, by keyboard or screen reader, in Kiswahili, and with a
phone whose clock was wrong, in a real Chromium."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.browser import (
    PUSH_STUB,
    ReaderSite,
    fake_browser_subscription,
    new_endpoint,
    open_page,
    widget_state,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

ACTIVE = "e => e === document.activeElement"
# Every part of the prompt, brought into view the way a reader scrolls to it: is it then
# inside the viewport? A fixed box taller than the screen cannot be scrolled by the page.
REACHABLE = """() => [...document.querySelectorAll('.nf-title, .nf-body, .nf button, .nf label')]
  .map(e => { e.scrollIntoView({block: 'nearest'}); const r = e.getBoundingClientRect();
              return [e.textContent.trim(), r.top >= 0 && r.bottom <= innerHeight]; })
  .filter(([, seen]) => !seen).map(([text]) => text)"""


def kiswahili_page(page: Any, script_attrs: str = "", html_lang: str = "sw") -> None:
    """The demo article as a Kiswahili publisher serves it (or an English page whose widget
    is told data-lang="sw")."""

    def serve(route: Any) -> None:
        answer = route.fetch()
        body = answer.text().replace('<html lang="en">', f'<html lang="{html_lang}">')
        body = body.replace(
            '<script src="/newsflash.js"', f'<script src="/newsflash.js" {script_attrs}'
        )
        route.fulfill(response=answer, body=body)

    page.route("**/", serve)


def test_after_a_failed_yes_thanks_the_keyboard_stays_in_the_prompt(
    chromium: Any, reader_site: ReaderSite
) -> None:
    page = open_page(chromium, reader_site.base + "/")
    page.add_init_script(
        "PushManager.prototype.subscribe = async () => { throw new DOMException('x', 'AbortError'); };"
    )
    page.reload()
    assert widget_state(page) == "prompt"
    yes = page.get_by_role("button", name="Yes, Thanks")
    status = page.get_by_role("status")
    yes.focus()
    page.keyboard.press("Enter")
    status.get_by_text("push service didn't answer").wait_for()
    # Focus is where the reader left it, so Enter tries again and Escape is still Not now.
    assert yes.evaluate(ACTIVE), "focus was lost to the page"

    page.evaluate("Notification.requestPermission = async () => 'denied'")
    page.keyboard.press("Enter")
    status.get_by_text("Notifications are blocked").wait_for()
    # Yes, Thanks is gone (it cannot work now): focus goes to what is left, Close.
    assert page.get_by_role("button", name="Close").evaluate(ACTIVE), "focus was lost"
    page.keyboard.press("Escape")
    assert page.get_by_role("dialog").count() == 0


@pytest.mark.parametrize(
    "viewport",
    [
        {"width": 740, "height": 290},  # a phone on its side, the browser's bars shown
        {"width": 320, "height": 300},  # a small phone with the keyboard or a large font
    ],
)
def test_a_prompt_taller_than_the_screen_can_be_scrolled(
    chromium: Any, reader_site: ReaderSite, viewport: dict[str, int]
) -> None:
    page = open_page(chromium, reader_site.base + "/")
    page.set_viewport_size(viewport)
    page.reload()
    assert widget_state(page) == "prompt"
    page.get_by_role("button", name="Choose topics").click()
    assert page.evaluate(REACHABLE) == []
    box = page.get_by_role("dialog").bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"]


def test_a_kiswahili_reader_manages_alerts_in_kiswahili(
    chromium: Any, reader_site: ReaderSite
) -> None:
    """The browser says English (as most phones in Kenya do); the reader chose a Kiswahili
    page: the Manage alerts link keeps their language."""
    page = chromium.pages[0]
    page.add_init_script(PUSH_STUB)
    kiswahili_page(page)
    page.goto(reader_site.base + "/")
    assert widget_state(page) == "prompt"
    page.evaluate(
        "s => { window.__nextSubscription = s; }", fake_browser_subscription(new_endpoint())
    )
    page.get_by_role("button", name="Ndiyo, Asante").click()
    page.get_by_role("status").get_by_role("link", name="Dhibiti arifa").click()
    page.get_by_role("heading", name="Arifa zako za habari").wait_for()
    page.locator("#nf-state").get_by_text("Arifa zimewashwa").wait_for()

    # An English page whose widget is told to speak Kiswahili: its words say which language
    # they are in, so a screen reader does not read them with English sounds.
    kiswahili_page(page, 'data-lang="sw"', html_lang="en")
    page.goto(reader_site.base + "/")
    assert widget_state(page) == "subscribed"
    link = page.get_by_role("link", name="Dhibiti arifa")
    assert link.get_attribute("lang") == "sw"
    link.click()
    page.get_by_role("heading", name="Arifa zako za habari").wait_for()


def test_the_topics_a_reader_chose_are_listed_in_their_language(
    chromium: Any, reader_site: ReaderSite
) -> None:
    """Before, every list was joined by commas alone ("Habari za dharura, Siasa, Michezo")."""
    page = chromium.pages[0]
    page.add_init_script(PUSH_STUB)
    kiswahili_page(page)
    page.goto(reader_site.base + "/")
    assert widget_state(page) == "prompt"
    page.evaluate(
        "s => { window.__nextSubscription = s; }", fake_browser_subscription(new_endpoint())
    )
    page.get_by_role("button", name="Chagua mada").click()
    page.get_by_label("Siasa").check()
    page.get_by_label("Michezo").check()
    page.get_by_role("button", name="Ndiyo, Asante").click()
    chosen = "Habari za dharura, Siasa na Michezo."
    page.get_by_role("status").get_by_text(f"Tutakutumia arifa kuhusu {chosen}").wait_for()

    page.goto(reader_site.base + "/manage?lang=sw")
    page.locator("#nf-state").get_by_text(f"Unapokea arifa kuhusu: {chosen}").wait_for()
    page.get_by_label("Siasa").uncheck()
    page.get_by_role("button", name="Hifadhi mada").click()
    page.get_by_text("Utapokea arifa kuhusu: Habari za dharura na Michezo.").wait_for()


def test_a_wrong_phone_clock_never_snoozes_longer_than_the_reask_delay(
    chromium: Any, reader_site: ReaderSite
) -> None:
    """A phone whose clock ran a month ahead (it happens after a flat battery) when the reader
    said Not now, then set right: asked again 7 days after, not 37."""
    now = datetime.now(UTC)
    page = chromium.pages[0]
    page.clock.set_system_time(now + timedelta(days=30))
    page = open_page(chromium, reader_site.base + "/")
    assert widget_state(page) == "prompt"
    page.get_by_role("button", name="Not now").click()
    page.clock.set_system_time(now)
    page.reload()
    assert widget_state(page) == "snoozed"
    page.clock.set_system_time(now + timedelta(days=6))
    page.reload()
    assert widget_state(page) == "snoozed"
    page.clock.set_system_time(now + timedelta(days=7, hours=1))
    page.reload()
    assert widget_state(page) == "prompt"


def test_a_wrong_phone_clock_never_stops_the_daily_check_in(
    chromium: Any, reader_site: ReaderSite
) -> None:
    """Signed up with the clock a month ahead, then set right: the widget still tells the
    server each day that this browser is here, or the server would forget it."""
    now = datetime.now(UTC)
    page = chromium.pages[0]
    page.clock.set_system_time(now + timedelta(days=30))
    page = open_page(chromium, reader_site.base + "/")
    assert widget_state(page) == "prompt"
    sub = fake_browser_subscription(new_endpoint())
    page.evaluate("s => { window.__nextSubscription = s; }", sub)
    page.get_by_role("button", name="Yes, Thanks").click()
    page.get_by_role("status").get_by_text("You're signed up").wait_for()

    page.clock.set_system_time(now)
    page.reload()
    assert widget_state(page) == "subscribed"
    page.clock.set_system_time(now + timedelta(days=1, hours=1))
    with page.expect_request(lambda r: r.method == "POST" and "/subscriptions" in r.url):
        page.reload()
    assert widget_state(page) == "subscribed"


def test_what_yes_thanks_answers_is_on_the_screen_of_a_phone_on_its_side(
    chromium: Any, reader_site: ReaderSite
) -> None:
    page = open_page(chromium, reader_site.base + "/")
    page.set_viewport_size({"width": 740, "height": 290})
    page.add_init_script(
        "PushManager.prototype.subscribe = async () => { throw new DOMException('x', 'AbortError'); };"
    )
    page.reload()
    assert widget_state(page) == "prompt"
    page.get_by_role("button", name="Choose topics").click()
    page.get_by_role("button", name="Yes, Thanks").click()
    status = page.get_by_role("status")
    status.get_by_text("push service didn't answer").wait_for()
    box = status.bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 291, box
