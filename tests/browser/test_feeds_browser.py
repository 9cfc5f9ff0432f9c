"""The feeds page and the report's "Waiting for the article" box in a real Chromium, at 390 px and
1280 px: no horizontal overflow, no placeholder cut, each table row's cells down to its border,
feed addresses broken at their slashes (never inside the host), drafts with their one-click
review, a broken feed's error in words.
Screenshots land in var/test-artifacts (feeds-*.png); docs/img is refreshed only with
NEWSFLASH_DOCS_SCREENSHOTS=1, so a test run never changes tracked files."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.accounts import Role
from core.usecases.newsroom import Editor
from tests.support.browser import (
    BROKEN_TIMES_JS,
    CUT_PLACEHOLDERS_JS,
    DESK,
    LABELS_OFF_BASELINE_JS,
    OVERFLOW_JS,
    PHONE,
    SHORT_CELLS_JS,
    WRAPPED_SHORT_VALUES_JS,
    gap_below,
    rendered_lines,
    screenshot_whole_page,
    sign_in,
)
from tests.support.feedsite import FeedSite, Page, rss
from tests.support.live_stack import LiveStack, served_app
from tests.support.newsroom import ADMIN, PASSWORD
from tests.support.services import free_port

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
UPDATE_DOCS = os.environ.get("NEWSFLASH_DOCS_SCREENSHOTS") == "1"


@pytest.fixture(scope="module")
def feeds_site(
    tmp_path_factory: pytest.TempPathFactory, vapid_pem: str, redis_url: str
) -> Iterator[tuple[str, int]]:
    tmp = tmp_path_factory.mktemp("feeds-browser")
    publisher = FeedSite().start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    database_url = f"sqlite:///{tmp}/newsflash.db"
    origins = f"{base},{publisher.origin}"
    try:
        with served_app(
            tmp,
            database_url,
            redis_url,
            vapid_pem,
            port,
            PUBLIC_ORIGINS=origins,
            WAIT_FOR_ARTICLE="on",
        ) as live:
            live.create_user(ADMIN, PASSWORD, Role.ADMIN)
            yield base, _seed(live, publisher)
    finally:
        publisher.stop()


def _seed(live: LiveStack, publisher: FeedSite) -> int:
    """Two feeds (one broken) polled twice, and an alert held by the readiness gate (no beat
    here: it stays waiting); returns that alert's id."""
    c = live.app.extensions["newsflash"].container
    me = Editor(ADMIN)
    o = publisher.origin
    publisher.pages["/feed/"] = Page(body=rss())
    publisher.pages["/broken/"] = Page(body=rss())
    news = c.feeds.add(
        me, {"url": f"{o}/feed/", "category": "Breaking", "mode": "review", "topics": ["breaking"]}
    )
    broken = c.feeds.add(me, {"url": f"{o}/broken/", "category": "Urgent", "mode": "auto"})
    c.feeds.poll(me, news.id)
    c.feeds.poll(me, broken.id)
    publisher.pages["/feed/"] = Page(
        body=rss(
            (
                "wp-7",
                "Floods close Thika road and the Nairobi-Mombasa highway as the river rises",
                f"{o}/news/2026/11/30/floods-close-thika-road-and-the-highway-{'x' * 40}",
                ["Breaking", "Weather"],
            ),
            ("wp-6", "Parliament passes the budget", f"{o}/news/budget", ["breaking"]),
        )
    )
    publisher.pages["/broken/"] = Page(body=b"<rss><channel><item><title>cut")
    c.feeds.poll(me, news.id)
    c.feeds.poll(me, broken.id)
    waiting: int = c.newsroom.publish(
        me,
        {"title": "Evacuation ordered", "body": "Move now.", "url": f"{o}/news/not-yet"},
    ).alert.id
    return waiting


def _shoot(page: Any, artifacts: Path, name: str) -> None:
    for size, label in ((PHONE, "390"), (DESK, "desktop")):
        page.set_viewport_size(size)
        page.wait_for_load_state("load")
        assert page.evaluate(OVERFLOW_JS) == [], f"{name} overflows at {size['width']} px"
        assert page.evaluate(CUT_PLACEHOLDERS_JS) == [], f"{name} at {size['width']} px"
        broken = page.evaluate(BROKEN_TIMES_JS)
        assert broken == [], f"{name}: times broken inside at {size['width']} px: {broken}"
        if size == PHONE:
            off_line = page.evaluate(LABELS_OFF_BASELINE_JS)
            assert off_line == [], f"{name}: card labels off their value's line: {off_line}"
        if size == DESK:
            short = page.evaluate(SHORT_CELLS_JS)
            assert short == [], f"{name}: cells short of their row's border at 1280 px: {short}"
            wrapped = page.evaluate(WRAPPED_SHORT_VALUES_JS)
            assert wrapped == [], f"{name}: short values broken over lines at 1280 px: {wrapped}"
        shot = artifacts / f"{name}-{label}.png"
        screenshot_whole_page(page, shot)
        if UPDATE_DOCS:
            shutil.copy(shot, DOCS_IMG / shot.name)


def _hosts_on_one_line(page: Any, selector: str, width: int) -> None:
    """Each address may wrap at its slashes, never inside its host ("127.0.0." over "1:35867")."""
    cells = page.locator(selector)
    assert cells.count() >= 2, selector
    for i in range(cells.count()):
        host = re.search(r"127\.0\.0\.1:\d+", cells.nth(i).inner_text())
        assert host is not None, selector
        lines = rendered_lines(cells.nth(i))
        assert any(host[0] in line for line in lines), f"{selector} at {width} px: {lines}"


def test_the_feeds_page_and_the_waiting_report_fit_phone_and_desk(
    chromium_browser: Any, feeds_site: tuple[str, int], artifacts: Path
) -> None:
    base, waiting = feeds_site
    context = chromium_browser.new_context(viewport=PHONE, device_scale_factor=1)
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        sign_in(page, ADMIN, PASSWORD, base)
        page.goto(base + "/editor/feeds")
        drafts = page.locator("#feed-drafts tbody tr")
        assert drafts.count() == 2
        assert "not well-formed XML" in page.locator(".feed-error").inner_text()
        _shoot(page, artifacts, "feeds")
        for size in (PHONE, DESK):
            page.set_viewport_size(size)
            for cell in (
                "#feeds tr[data-feed-id] td.nf-title-cell",
                "#feed-drafts tr[data-item-id] td[data-label=From]",
                "#feed-drafts tr[data-item-id] td.nf-title-cell a",
            ):
                _hosts_on_one_line(page, cell, size["width"])
        # On a desk a feed's address reads on one line, in the drafts' From column and in the
        # feeds table ("127.0.0.1:38875/" over "feed/" while the other columns had room).
        page.set_viewport_size(DESK)
        for cell in (
            "#feed-drafts tr[data-item-id] td[data-label=From]",
            "#feeds tr[data-feed-id] td.nf-title-cell .nf-address",
        ):
            assert page.locator(cell).count() == 2, cell
            for line in page.locator(cell).all():
                assert len(rendered_lines(line)) == 1, (cell, rendered_lines(line))
        page.set_viewport_size(PHONE)
        # A failing feed's card: the error over its time, each as wide as the card allows (side
        # by side they squeezed the time into four lines and the error into five).
        checked = page.locator("#feeds tr[data-feed-id]", has=page.locator(".feed-error"))
        error = checked.locator(".feed-error").bounding_box()
        when = checked.locator("td[data-label='Last check'] .nf-muted").bounding_box()
        card = checked.bounding_box()
        assert error and when and card
        assert when["y"] >= error["y"] + error["height"], (error, when)
        assert error["width"] >= 0.8 * card["width"], (error, card)
        assert len(rendered_lines(checked.locator("td[data-label='Last check'] .nf-muted"))) == 1
        drafts.first.get_by_role("button", name="Review and send →").click()
        page.wait_for_url(base + "/editor/new")
        assert "Floods close Thika road" in page.locator(".nf-facts").inner_text()
        page.goto(f"{base}/editor/alerts/{waiting}")
        box = page.locator("#article-gate")
        assert "Waiting for the article" in box.inner_text()
        assert page.locator("#send-anyway").is_visible()
        for size in (PHONE, DESK):
            page.set_viewport_size(size)
            assert gap_below(page, "#article-gate", ".nf-report-actions") >= 8, size
        _shoot(page, artifacts, "report-waiting-for-article")
    finally:
        context.close()
