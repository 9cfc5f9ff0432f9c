"""/ops's audience-health view and its per-day table in a real Chromium, over weeks of sends,
displays, clicks, 410s and renewals written through the store with a chosen clock; screenshots
for docs/audience-health.md and docs/ops.md."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis as redis_lib

from core.accounts import Role
from core.adapters.stores_sql import SqlStores
from core.adapters.telemetry import CACHE_PREFIX
from core.model import LossReason, SubscriptionInput
from core.tombstones import endpoint_digest
from tests.support.audience import MOVED, RESTORED, seed_falling_engagement
from tests.support.browser import TALL_HEADERS_JS, rendered_lines, sign_in
from tests.support.live_stack import served_app
from tests.support.services import free_port

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

OPS = "ops@news.example"
PASSWORD = "correct horse battery staple"
# The screenshots in docs/ are refreshed on purpose (NEWSFLASH_DOCS_SCREENSHOTS=1), not by every run:
# a test run must not change tracked files.
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
UPDATE_DOCS = os.environ.get("NEWSFLASH_DOCS_SCREENSHOTS") == "1"


@pytest.fixture(scope="module")
def ops_site(
    tmp_path_factory: pytest.TempPathFactory, vapid_pem: str, redis_url: str
) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("ops-health")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    database_url = f"sqlite:///{tmp}/newsflash.db"
    with served_app(tmp, database_url, redis_url, vapid_pem, port, PUBLIC_ORIGINS=base) as live:
        live.create_user(OPS, PASSWORD, Role.OPS)
        token = live.token("ops-health", Role.OPS)
        container = live.app.extensions["newsflash"].container
        seed_falling_engagement(container.sql, time.time(), container.settings.timezone)
        client = redis_lib.Redis.from_url(redis_url)
        for key in client.scan_iter(CACHE_PREFIX + "audience_health*"):
            client.delete(key)  # another test's answer, cached for a minute, is not this database's
        yield base, token


def test_ops_shows_the_audience_health_warnings_on_desktop_and_phone(
    chromium_browser: Any, ops_site: tuple[str, str], artifacts: Path
) -> None:
    base, _token = ops_site
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        page.goto(base + "/ops")
        assert "/editor/login" in page.url  # ops log in like editors do
        page.fill("#email", OPS)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(base + "/ops")
        # The pending alarm's rule as beat judges it (core/alarms.py), not the age alone: a big
        # send older than 2 minutes that keeps its pace pages nobody.
        page.wait_for_function("document.getElementById('pending').textContent.includes('alarm')")
        assert (
            page.locator("#pending")
            .inner_text()
            .endswith("(alarm at 2 min if 200/s or fewer are delivered, at 30 min in any case)")
        )
        section = page.locator("#audience")
        warnings = section.locator(".audience-warnings").inner_text()
        assert "Readers got" in warnings and "alerts a day" in warnings
        assert "clicks fell from 8.1 % to 1.6 %" in warnings
        assert "came back 404/410" in warnings
        assert f"{RESTORED} readers a 404/410 removed came back" in warnings
        rows = section.locator("table.audience-weeks tbody tr")
        assert rows.count() == 8
        heads = section.locator("table.audience-weeks thead th").all_inner_texts()
        assert heads[-1] == "Renewed"
        renewed = rows.nth(1).locator("td").last.inner_text()  # last week
        assert renewed == f"{MOVED + RESTORED} ({RESTORED} after 410)"
        assert "moves to a new endpoint" not in section.inner_text()
        hosts = section.locator(".audience-split").inner_text()
        assert "updates.push.services.mozilla.com" in hosts  # last week's: none yet this week
        # On a desk each push host reads on one line ("fcm.googleapis." over "com" did not).
        for cell in section.locator(".audience-split td.host").all():
            assert len(rendered_lines(cell)) == 1, rendered_lines(cell)
        section.screenshot(path=str(artifacts / "ops-health.png"))
        if UPDATE_DOCS:
            section.screenshot(path=str(DOCS_IMG / "ops-health.png"))

        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        assert "Readers got" in page.locator("#audience .audience-warnings").inner_text()
        # Nothing wider than the phone: the week table scrolls inside its card.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # Each column header reads on at most two lines ("Alerts / reader / day" took four).
        assert page.evaluate(TALL_HEADERS_JS) == []
        page.locator("#audience").screenshot(path=str(artifacts / "ops-health-390.png"))
        if UPDATE_DOCS:
            page.locator("#audience").screenshot(path=str(DOCS_IMG / "ops-health-390.png"))
    finally:
        context.close()


def test_the_api_gives_the_same_view_as_json(ops_site: tuple[str, str]) -> None:
    import json
    import urllib.request

    base, token = ops_site

    def get(path: str) -> tuple[int, Any]:
        request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, health = get("/api/v1/ops/health")
    assert status == 200
    assert [w["rule"] for w in health["warnings"]] == ["volume_up_clicks_down", "gone_rising"]
    assert health["weeks"][-2]["lost"]["purged"] == 3
    assert health["weeks"][-2]["renewed"] == {"moved": MOVED, "restored": RESTORED}
    status, body = get("/api/v1/ops/health?weeks=99")
    assert status == 400 and body["error"]["field"] == "weeks"
    status, body = get("/api/v1/ops/health?weeks=%C2%B2")  # '²': isdigit() yes, int() no
    assert status == 400 and body["error"]["field"] == "weeks"


def _reader(n: int) -> SubscriptionInput:
    return SubscriptionInput(
        f"https://fcm.googleapis.com/push/day-{n}", "BAAA", f"a{n}", ("breaking",)
    )


def seed_renewal_days(store: SqlStores, now: float, tz: ZoneInfo) -> None:
    """Three days ago 8 readers sign up, 2 are deleted as gone (410) and 1 unsubscribes; two days
    ago 2 sign up and 2 browsers renew (moved); yesterday 1 renews (moved), both gone readers
    come back from their tombstones (restored, which takes their losses back from three days
    ago) and 1 unsubscribes."""
    today = datetime.fromtimestamp(now, tz).date()

    def at(days_ago: int, hour: int) -> float:
        day = today - timedelta(days=days_ago)
        return datetime(day.year, day.month, day.day, hour, tzinfo=tz).timestamp()

    subs = store.subscriptions
    ids = [subs.upsert(_reader(n), at(3, 10))[0].id for n in range(8)]
    subs.delete_ids(ids[0:2], LossReason.GONE, now=at(3, 12))
    subs.delete_ids([ids[2]], now=at(3, 16))
    for n in (8, 9):
        subs.upsert(_reader(n), at(2, 9))
    for n, sid in enumerate(ids[3:5]):
        subs.replace(sid, _reader(100 + n), at(2, 11))
    subs.replace(ids[5], _reader(102), at(1, 10))
    for n in (0, 1):
        stone = subs.find_tombstone(endpoint_digest(_reader(n).endpoint))
        assert stone is not None
        subs.restore(stone, _reader(200 + n), at(1, 11))
    subs.delete_ids([ids[6]], now=at(1, 18))


@pytest.fixture(scope="module")
def days_site(
    tmp_path_factory: pytest.TempPathFactory, vapid_pem: str, redis_url: str
) -> Iterator[tuple[str, list[str]]]:
    """A database of its own (the audience seed's renewals fall on a weekday-dependent day),
    with /ops's cache off so no other site's snapshot answers; yields the base URL and the
    days the table shows, today first."""
    tmp = tmp_path_factory.mktemp("ops-days")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    database_url = f"sqlite:///{tmp}/newsflash.db"
    with served_app(
        tmp, database_url, redis_url, vapid_pem, port, PUBLIC_ORIGINS=base, OPS_CACHE_S="0"
    ) as live:
        live.create_user(OPS, PASSWORD, Role.OPS)
        container = live.app.extensions["newsflash"].container
        tz = container.settings.timezone
        now = time.time()
        seed_renewal_days(container.sql, now, tz)
        today = datetime.fromtimestamp(now, tz).date()
        yield base, [(today - timedelta(days=n)).isoformat() for n in range(7)]


def test_ops_per_day_table_shows_renewals_apart_from_new_and_lost(
    chromium_browser: Any, days_site: tuple[str, list[str]], artifacts: Path
) -> None:
    base, days = days_site
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        sign_in(page, OPS, PASSWORD, base)
        page.wait_for_url(base + "/ops")
        card = page.locator("section[aria-labelledby=h-days]")
        for width in (1280, 390):
            page.set_viewport_size({"width": width, "height": 900 if width > 390 else 844})
            page.reload()
            heads = card.locator("thead th").all_inner_texts()
            assert heads == ["Day", "New", "Lost", "Renewed"]
            rows = [r.locator("td").all_inner_texts() for r in card.locator("tbody tr").all()]
            # Newest first; renewals are the same readers: not in New, and a restore takes its
            # 410 back from the day it was lost (3 left three days ago, 1 is still gone).
            assert rows == [
                [days[0], "0", "0", "0"],
                [days[1], "0", "1", "3 (2 after 410)"],
                [days[2], "2", "0", "2"],
                [days[3], "8", "1", "0"],
                *([day, "0", "0", "0"] for day in days[4:]),
            ]
            # Gains minus losses are the audience's change: 10 new, 2 lost, 8 readers.
            assert page.locator("#subs-total").inner_text() == "8"
            # Nothing wider than the page; the table's last column is inside its card.
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            assert card.get_attribute("tabindex") == "0"  # a card that scrolls can take focus
            cell = card.locator("tbody tr").nth(1).locator("td").last
            cell.scroll_into_view_if_needed()
            box, frame = cell.bounding_box(), card.bounding_box()
            assert box is not None and frame is not None
            assert frame["x"] >= 0 and frame["x"] + frame["width"] <= width
            assert box["x"] >= frame["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"]
            assert cell.evaluate("c => c.scrollWidth <= c.clientWidth")  # not cut off
            # The header's tooltip is out of a phone's reach: a note under the table says it.
            note = card.locator("table + p.note")
            assert note.is_visible()
            said = note.inner_text()
            assert said.startswith("Renewed = a reader's browser replaced its subscription")
            assert "counted neither as new nor as lost" in said
            assert "after 410: restored after the push service said the old one was gone" in said
            box = note.bounding_box()
            assert box is not None and box["x"] >= frame["x"]
            assert box["x"] + box["width"] <= frame["x"] + frame["width"]
            name = f"ops-days-renewed-{width}.png"
            card.screenshot(path=str(artifacts / name))
            if UPDATE_DOCS and width == 390:
                card.screenshot(path=str(DOCS_IMG / name))
    finally:
        context.close()
