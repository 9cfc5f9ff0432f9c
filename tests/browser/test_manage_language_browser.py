"""Every way to the manage page leads a reader to the language of their alerts, in a real
Chromium: a Kiswahili reader reading an English page (in a browser that says English, as most
phones in Kenya do) follows the widget's Manage alerts link or the site's own link to /manage
and gets the Kiswahili page; a browser without a subscription gets the language it asked for."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.browser import (
    PUSH_STUB,
    ReaderSite,
    fake_browser_subscription,
    new_endpoint,
    widget_state,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


def kiswahili_article(page: Any, on: bool) -> None:
    """The demo article served as a Kiswahili publisher's page (`on`), or as it is (English)."""
    page.unroute("**/")
    if on:
        page.route(
            "**/",
            lambda route: route.fulfill(
                response=(answer := route.fetch()),
                body=answer.text().replace('<html lang="en">', '<html lang="sw">'),
            ),
        )


def test_a_kiswahili_reader_on_an_english_page_manages_alerts_in_kiswahili(
    chromium: Any, reader_site: ReaderSite
) -> None:
    page = chromium.pages[0]
    page.add_init_script(PUSH_STUB)
    kiswahili_article(page, on=True)
    page.goto(reader_site.base + "/")
    assert widget_state(page) == "prompt"
    sub = fake_browser_subscription(new_endpoint())
    page.evaluate("s => { window.__nextSubscription = s; }", sub)
    page.get_by_role("button", name="Ndiyo, Asante").click()
    page.get_by_role("status").get_by_text("Umejiandikisha").wait_for()
    assert reader_site.subscription(sub["endpoint"])["lang"] == "sw"  # type: ignore[index]

    # The next story they read is in English: the widget speaks English there, but its link
    # leads to the reader's Kiswahili page.
    kiswahili_article(page, on=False)
    page.goto(reader_site.base + "/")
    assert widget_state(page) == "subscribed"
    link = page.get_by_role("link", name="Manage alerts")
    page.wait_for_function(
        "() => document.querySelector('.nf-link').getAttribute('hreflang') === 'sw'"
    )
    assert link.get_attribute("href") == "/manage?lang=sw"
    link.click()
    page.locator("#nf-state").get_by_text("Arifa zimewashwa").wait_for()
    assert page.get_attribute("html", "lang") == "sw"

    # The site's own link names no language (the browser says English): the page finds the
    # reader's subscription and speaks their language, and its own links keep it.
    page.goto(reader_site.base + "/")
    page.get_by_role("link", name="Manage your news alerts").click()
    page.wait_for_url(reader_site.base + "/manage?lang=sw")
    page.locator("#nf-state").get_by_text("Arifa zimewashwa").wait_for()
    assert page.get_by_role("link", name="Arifa").get_attribute("href") == "/manage?lang=sw"
    # A Save there stays in Kiswahili.
    page.get_by_role("button", name="Hifadhi mada").click()
    page.locator("#nf-message").get_by_text("Imehifadhiwa.").wait_for()
    assert reader_site.subscription(sub["endpoint"])["lang"] == "sw"  # type: ignore[index]


def test_a_browser_without_alerts_gets_the_page_in_the_language_it_asked_for(
    chromium: Any, reader_site: ReaderSite
) -> None:
    page = chromium.pages[0]
    page.add_init_script(PUSH_STUB)
    for lang, words in (("sw", "Arifa zimezimwa"), ("en", "Alerts are off")):
        page.goto(f"{reader_site.base}/manage?lang={lang}")
        page.locator("#nf-state").get_by_text(words).wait_for()
        assert page.url == f"{reader_site.base}/manage?lang={lang}"
        assert page.locator("#nf-lang").is_hidden()
