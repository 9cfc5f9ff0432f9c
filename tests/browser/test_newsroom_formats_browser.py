"""Templates, the duplicate guard and the correction review in a real Chromium, at 1280 px and on
a 390 px phone (no horizontal overflow): one tap on a template fills the form, a repeat asks for a
tick before it goes, a correction shows its before and after. The app on a real HTTP server; no
worker (alerts wait in the queue, which is all these screens need)."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from flask import Flask

from core.accounts import Role
from core.model import AlertStatus, LedgerStatus
from core.ports import LedgerEntry
from tests.support.browser import (
    CUT_PLACEHOLDERS_JS,
    DESK,
    LOOSE_BOX_TOPS_JS,
    OVERFLOW_JS,
    PHONE,
    SHORT_CELLS_JS,
    fake_browser_subscription,
    gap_below,
    screenshot_whole_page,
    sign_in,
)
from tests.support.live_stack import served_app
from tests.support.newsroom import PASSWORD
from tests.support.services import (
    TEST_REDIS_DB,
    free_port,
    new_vapid_pem,
    port_open,
    require_service,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
EDITOR = "desk@news.example"
ADMIN = "chief@news.example"


@dataclass
class Site:
    app: Flask
    base: str
    token: str

    def subscribe(self, count: int) -> list[int]:
        """Readers who signed up with the default topic (breaking); their ids."""
        ids = []
        for _ in range(count):
            sub = fake_browser_subscription(f"http://127.0.0.1:9/push/{uuid.uuid4().hex}")
            answer = self.app.test_client().post("/api/v1/subscriptions", json=sub)
            assert answer.status_code == 201, answer.json
            ids.append(int(answer.json["id"]))
        return ids

    def publish(self, **body: Any) -> int:
        answer = self.app.test_client().post(
            "/api/v1/alerts", json=body, headers={"Authorization": f"Bearer {self.token}"}
        )
        assert answer.status_code == 202, answer.json
        return int(answer.json["id"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_service("Redis", port_open("127.0.0.1", 6379), "127.0.0.1:6379")
    redis_url = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    redis_lib.Redis.from_url(redis_url).flushdb()
    tmp = tmp_path_factory.mktemp("formats-browser")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = f"sqlite:///{tmp}/newsflash.db"
    with served_app(
        tmp,
        url,
        redis_url,
        new_vapid_pem(),
        port,
        PUBLIC_ORIGINS=base,
        TOPICS="breaking:Breaking news:default,politics,business,sport",
        DUPLICATE_WINDOW_S="21600",
        UNDO_WINDOW_S="300",
        RATE_LIMIT_LOGIN="100000 per minute",
    ) as live:
        live.create_user(EDITOR, PASSWORD, Role.EDITOR)
        live.create_user(ADMIN, PASSWORD, Role.ADMIN)
        yield Site(live.app, base, live.token("formats-browser", Role.EDITOR))


def _page(browser: Any, site: Site, email: str) -> Any:
    context = browser.new_context(viewport=PHONE, device_scale_factor=1)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    sign_in(page, email, PASSWORD, site.base)
    return page


def _fits(page: Any, artifacts: Path, name: str, docs: bool = False) -> None:
    """No horizontal overflow and no placeholder cut at 390 or 1280 px, each table row's cells
    down to its border at 1280 px; screenshots of both (docs/img on request)."""
    for size, label in ((PHONE, "390"), (DESK, "1280")):
        page.set_viewport_size(size)
        assert page.evaluate(OVERFLOW_JS) == [], f"{name} overflows at {label} px"
        assert page.evaluate(CUT_PLACEHOLDERS_JS) == [], f"{name} at {label} px"
        loose = page.evaluate(LOOSE_BOX_TOPS_JS)
        assert loose == [], f"{name}: a box's first line lower than its padding: {loose}"
        if size == DESK:
            short = page.evaluate(SHORT_CELLS_JS)
            assert short == [], f"{name}: cells short of their row's border at {label} px: {short}"
        shot = artifacts / f"{name}-{label}.png"
        screenshot_whole_page(page, shot)
        if docs and label == "390" and os.environ.get("NEWSFLASH_DOCS_SCREENSHOTS") == "1":
            DOCS_IMG.mkdir(exist_ok=True)
            shutil.copy(shot, DOCS_IMG / shot.name)
    page.set_viewport_size(PHONE)


def test_one_tap_on_a_template_fills_the_compose_form(
    chromium_browser: Any, site: Site, artifacts: Path
) -> None:
    page = _page(chromium_browser, site, EDITOR)
    page.goto(site.base + "/editor/new")
    page.fill("#title", "Quake hits Nairobi")
    page.uncheck("input[name=topics][value=breaking]")
    page.check("input[name=topics][value=politics]")
    page.click("[data-format=breaking]")
    assert page.input_value("#title") == "BREAKING: Quake hits Nairobi"
    assert page.input_value("#urgency") == "high" and page.input_value("#ttl") == "3600"
    ticked = page.eval_on_selector_all(
        "input[name=topics]:checked", "boxes => boxes.map(b => b.value)"
    )
    assert ticked == ["breaking"]
    assert page.get_attribute("[data-format=breaking]", "aria-pressed") == "true"
    # Another template replaces the prefix instead of stacking a second one.
    page.click("[data-format=live]")
    assert page.input_value("#title") == "LIVE: Quake hits Nairobi"
    assert page.input_value("#ttl") == "14400" and page.input_value("#urgency") == "normal"
    assert "LIVE: Quake hits Nairobi" in (page.text_content("[data-preview=title]") or "")
    box = page.locator("[data-format=update]").bounding_box()
    assert box is not None and box["height"] >= 40  # a thumb-sized target on the phone
    _fits(page, artifacts, "templates-compose", docs=True)
    assert page.js_errors == []


def test_a_repeat_asks_for_a_tick_on_the_review_page(
    chromium_browser: Any, site: Site, artifacts: Path
) -> None:
    article = f"{site.base}/news/floods-{uuid.uuid4().hex[:6]}"
    earlier = site.publish(title="Floods close the Thika road", body="More soon", url=article)
    store = site.app.extensions["newsflash"].container.alerts
    store.set_status(earlier, AlertStatus.SENT, 0.0)  # as the worker would leave it
    site.subscribe(5)
    page = _page(chromium_browser, site, EDITOR)
    page.goto(site.base + "/editor/new")
    page.fill("#url", article)
    page.fill("#title", "Thika road closed by floods")
    page.fill("#body", "Drivers are told to use the bypass.")
    page.click("#review")
    warning = page.locator("#duplicate-warning")
    warning.wait_for()
    assert f"Alert #{earlier}" in (warning.text_content() or "")
    assert "already sent this article" in (warning.text_content() or "")
    assert "(Sent, " in (warning.text_content() or "")
    assert page.locator("#confirm-audience").text_content() == "5"
    assert gap_below(page, "#duplicate-warning", ".nf-facts") >= 8  # not glued to the facts
    _fits(page, artifacts, "duplicate-review", docs=True)
    page.click("#send")  # the browser holds it: the tick is required
    assert "/editor/new" in page.url and page.locator("#duplicate-warning").is_visible()
    page.check("#duplicate-ok")
    page.click("#send")
    page.wait_for_url(lambda url: "/editor/alerts/" in url)
    assert page.locator("#undo").is_visible()
    assert page.js_errors == []


def test_a_correction_shows_before_and_after_then_waits_for_undo(
    chromium_browser: Any, site: Site, artifacts: Path
) -> None:
    original = site.publish(
        title="Five killed in Thika crash",
        body="Police say a bus left the road near Juja before dawn.",
        url=f"{site.base}/news/crash",
    )
    container = site.app.extensions["newsflash"].container
    readers = [LedgerEntry(i, LedgerStatus.DELIVERED, 201, 1) for i in site.subscribe(3)]
    # As the worker would leave it: delivered to three readers, then sent.
    container.sql.ledger.record(original, readers, [], time.time())
    container.alerts.set_status(original, AlertStatus.SENT, 0.0)
    page = _page(chromium_browser, site, EDITOR)
    page.goto(f"{site.base}/editor/alerts/{original}/correct")
    page.fill("#title", "Four killed in Thika crash")
    page.click("#review-correction")
    diff = page.locator("[data-diff=headline]")
    diff.wait_for()
    assert page.locator("[data-diff=headline] del").text_content() == "Five"
    assert page.locator("[data-diff=headline] ins").text_content() == "Four"
    assert "for the 3 readers it reached" in (page.locator("main").text_content() or "")
    _fits(page, artifacts, "correction-review", docs=True)
    page.check("#confirm-correction")
    page.click("#send-correction")
    page.wait_for_url(lambda url: f"/alerts/{original}/" not in url)
    assert page.locator("#undo").is_visible()
    chain = page.locator("#correction-chain [data-chain-id]")
    assert chain.count() == 2
    _fits(page, artifacts, "correction-report")
    assert page.js_errors == []


def test_the_admins_template_page_fits_a_phone(
    chromium_browser: Any, site: Site, artifacts: Path
) -> None:
    page = _page(chromium_browser, site, ADMIN)
    page.goto(site.base + "/editor/templates")
    assert page.locator("[data-template]").count() >= 3
    _fits(page, artifacts, "templates-admin", docs=True)
    page.click("[data-template=update] a.nf-secondary")
    page.wait_for_url(lambda url: "/editor/templates/" in url)
    assert page.input_value("#name") == "update"
    page.fill("#prefix", "UPDATED:")
    page.click("#save-template")
    page.wait_for_url(lambda url: "notice=" in url)
    assert "UPDATED:" in (page.text_content("[data-template=update]") or "")
    assert page.js_errors == []
