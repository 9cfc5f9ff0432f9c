"""Every control a reader can tap is big enough for a finger on a phone, in a real Chromium: at
390 px, in English and Kiswahili, each link, button and form field of the reader pages (the
article with its prompt and Manage alerts link, the manage page subscribed and not) is at least
44 x 44 CSS px (WCAG 2.5.5, Apple's HIG; Android asks 48 dp). Screenshots at 390 px and desktop."""

from __future__ import annotations

from pathlib import Path
from pprint import pformat
from typing import Any

import pytest

from tests.support.browser import (
    DESK,
    PHONE,
    PUSH_STUB,
    ReaderSite,
    fake_browser_subscription,
    keep,
    new_endpoint,
    widget_state,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

MIN_PX = 44
# Every control on the page that is shown, with the box a finger hits: a checkbox's or radio's
# is its label's (a tap on the words ticks it); anything else's is its own. Listed as
# [what, width, height], only those under MIN_PX either way.
SMALL_TARGETS = """(min) => {
  const picks = 'a[href], button, input:not([type=hidden]), select, textarea, summary, [role=button], [tabindex]:not([tabindex="-1"])';
  const small = [];
  for (const el of document.querySelectorAll(picks)) {
    if (!el.getClientRects().length || getComputedStyle(el).visibility === 'hidden') continue;
    const label = el.matches('input[type=checkbox], input[type=radio]') &&
      (el.closest('label') || (el.id && document.querySelector('label[for="' + el.id + '"]')));
    const r = (label || el).getBoundingClientRect();
    if (r.width + 0.5 < min || r.height + 0.5 < min) {
      const name = (el.getAttribute('aria-label') || el.textContent || el.value || el.type || '').trim();
      small.push([el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' ' + name.slice(0, 40),
                  Math.round(r.width), Math.round(r.height)]);
    }
  }
  return small;
}"""
# How many controls were measured (a page that failed to show them would pass trivially).
COUNT_TARGETS = """() => [...document.querySelectorAll('a[href], button, input:not([type=hidden]), select')]
  .filter(e => e.getClientRects().length).length"""


def small_targets(page: Any) -> list[list[Any]]:
    return list(page.evaluate(SMALL_TARGETS, MIN_PX))


def article_in(page: Any, lang: str, story: str | None = None) -> None:
    """The demo article as a publisher in `lang` serves it, naming an open story if given."""

    def serve(route: Any) -> None:
        answer = route.fetch()
        body = answer.text().replace('<html lang="en">', f'<html lang="{lang}">')
        if story:
            body = body.replace(
                "</head>", f'<meta name="newsflash:story" content="{story}"></head>'
            )
        route.fulfill(response=answer, body=body)

    page.route("**/", serve)


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_every_control_on_the_reader_pages_is_big_enough_for_a_finger(
    chromium: Any, reader_site: ReaderSite, artifacts: Path, lang: str
) -> None:
    story = reader_site.open_story(f"Live: county budget ({lang})")
    page = chromium.pages[0]
    page.set_viewport_size(PHONE)
    page.add_init_script(PUSH_STUB)
    article_in(page, lang, story)
    found: dict[str, list[list[Any]]] = {}

    # The article with the prompt open and its topics shown.
    page.goto(reader_site.base + "/")
    assert widget_state(page) == "prompt"
    page.locator(".nf-more").click()
    assert page.evaluate(COUNT_TARGETS) > 15
    found["article, prompt"] = small_targets(page)
    keep(page, artifacts, f"tap-article-prompt-{lang}-390.png", full_page=False)

    # Signed up: the prompt's answer with its Manage alerts link, then the next visit.
    page.evaluate(
        "s => { window.__nextSubscription = s; }", fake_browser_subscription(new_endpoint())
    )
    page.locator(".nf-yes").click()
    page.locator(".nf-status a").wait_for()
    found["article, signed up"] = small_targets(page)
    page.reload()
    assert widget_state(page) == "subscribed"
    page.locator(".nf-follow").wait_for()
    found["article, subscribed"] = small_targets(page)
    keep(page, artifacts, f"tap-article-subscribed-{lang}-390.png")

    # The manage page of a subscribed reader, with a story to follow.
    page.goto(f"{reader_site.base}/manage?lang={lang}")
    page.locator("#nf-story-list button").first.wait_for()
    page.locator("#nf-quiet-on").check()
    found["manage, subscribed"] = small_targets(page)
    keep(page, artifacts, f"tap-manage-{lang}-390.png")
    page.set_viewport_size(DESK)
    keep(page, artifacts, f"tap-manage-{lang}-desktop.png")
    page.set_viewport_size(PHONE)

    # Turned off: the page offers to turn alerts on again.
    page.locator("#nf-off-button").click()
    page.locator("#nf-on").wait_for()
    found["manage, turned off"] = small_targets(page)

    too_small = {where: small for where, small in found.items() if small}
    assert too_small == {}, pformat(too_small, width=100)
