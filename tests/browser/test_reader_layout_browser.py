"""The demo site around the reader pages in a real Chromium: the section menu stays one row on a
phone (360 and 390 px, English and Kiswahili), and the manage page's footer does not link to
itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import DESK, OVERFLOW_JS, ReaderSite

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

# The top of each section link, in menu order.
MENU_ROWS = """() => [...document.querySelectorAll('nav.sections a')]
  .map(a => [a.textContent.trim(), Math.round(a.getBoundingClientRect().top)])"""
FOOTER_LINKS = """() => [...document.querySelectorAll('footer a')]
  .map(a => [a.textContent.trim(), new URL(a.href).pathname])"""

PAGES = (
    ("/", "article", "Alerts"),
    ("/manage?lang=en", "manage-en", "Alerts"),
    ("/manage?lang=sw", "manage-sw", "Arifa"),
)


@pytest.mark.parametrize("width", [360, 390, DESK["width"]])
def test_the_section_menu_is_one_row_with_alerts_in_it(
    chromium_browser: Any, reader_site: ReaderSite, artifacts: Path, width: int
) -> None:
    page = chromium_browser.new_page(viewport={"width": width, "height": 800})
    try:
        for path, name, alerts in PAGES:
            page.goto(reader_site.base + path)
            rows = page.evaluate(MENU_ROWS)
            page.screenshot(path=str(artifacts / f"reader-menu-{name}-{width}.png"))
            assert rows[-1][0] == alerts
            assert {top for _, top in rows} == {rows[0][1]}, f"{path} at {width} px: {rows}"
            assert page.evaluate(OVERFLOW_JS) == [], f"{path} at {width} px"
    finally:
        page.close()


def test_the_manage_footer_leads_home_and_the_article_footer_to_manage(
    chromium_browser: Any, reader_site: ReaderSite
) -> None:
    page = chromium_browser.new_page(viewport=DESK)
    try:
        for lang, home in (("en", "Back to the front page"), ("sw", "Rudi ukurasa wa mbele")):
            page.goto(f"{reader_site.base}/manage?lang={lang}")
            assert page.evaluate(FOOTER_LINKS) == [[home, "/"]]
        page.goto(reader_site.base + "/")
        assert page.evaluate(FOOTER_LINKS) == [["Manage your news alerts", "/manage"]]
    finally:
        page.close()
