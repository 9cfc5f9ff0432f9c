"""An editor on a phone when the database goes away (PostgreSQL dropped under the running web
app): the next page is the newsroom's "Briefly unavailable", readable at 390 and 1280 px with
the checks every newsroom page passes, a way to try again and nothing that needs the database
(not the bare "Internal Server Error" it was); when it turns read-only, ops on a phone see it on
/ops without Prometheus. Screenshots in var/test-artifacts (database-unavailable-*.png,
database-refuses-writes-*.png, ops-database-refuses-writes-*.png); docs/img refreshed with
NEWSFLASH_DOCS_SCREENSHOTS=1."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.accounts import Role
from core.adapters.telemetry import CACHE_PREFIX
from tests.support.browser import DOCS_IMG, checked_shots, newsroom_phone
from tests.support.live_stack import served_app
from tests.support.newsroom import PASSWORD
from tests.support.services import (
    create_pg_database,
    drop_pg_database,
    free_port,
    set_pg_read_only,
)
from workers.monitoring import run_alarm_round

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

EDITOR = "wanjiru@news.example"
OPS = "otieno@news.example"


@pytest.fixture
def phone(
    chromium_browser: Any,
    tmp_path: Path,
    vapid_pem: str,
    clean_redis: str,
    postgres_available: bool,
) -> Iterator[tuple[Any, str, str, Any]]:
    """A served app on a PostgreSQL database of its own, and an editor signed in on a 390 px
    phone: (the page, the app's base URL, the database's URL, the served stack)."""
    database = create_pg_database()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        with served_app(
            tmp_path, database, clean_redis, vapid_pem, port, PUBLIC_ORIGINS=base
        ) as live:
            live.create_user(EDITOR, PASSWORD, Role.EDITOR)
            page = newsroom_phone(chromium_browser, base, EDITOR, PASSWORD)
            try:
                yield page, base, database, live
            finally:
                page.context.close()
    finally:
        drop_pg_database(database)


def test_an_editor_whose_database_goes_away_sees_briefly_unavailable(
    phone: tuple[Any, str, str, Any], artifacts: Path
) -> None:
    page, base, database, _live = phone
    drop_pg_database(database)
    answer = page.goto(f"{base}/editor/scheduled")
    assert answer is not None and answer.status == 503
    assert answer.headers.get("retry-after") is not None
    assert page.locator("h1").inner_text() == "Briefly unavailable"
    assert "cannot reach its database" in page.locator("main").inner_text()
    again = page.locator("a:has-text('Try again')")
    assert again.get_attribute("href") == "/editor/scheduled?"
    assert page.locator(".nf-nav-new").count() == 0  # no signed-in navigation
    checked_shots(page, artifacts, "database-unavailable", docs=("390", "desktop"))


def test_an_editor_whose_database_turns_read_only_reads_on_and_is_told_nothing_was_saved(
    chromium_browser: Any, phone: tuple[Any, str, str, Any], artifacts: Path
) -> None:
    """A failover that pointed the app at a standby (the database read-only), met on a phone:
    the newsroom's pages still open; a Send answers "Cannot save right now", that nothing was
    saved, and the way back to the newsroom (before: "Briefly unavailable ... cannot reach its
    database", a PostgreSQL standby even a bare 500 "Internal Server Error"). Ops on their
    phone see it on /ops: the status pill at once, beat's alarm at its next round (before:
    "all clear", the database answering reads)."""
    page, base, database, live = phone
    live.create_user(OPS, PASSWORD, Role.OPS)
    ops_page = newsroom_phone(chromium_browser, base, OPS, PASSWORD)  # signed in beforehand
    page.goto(f"{base}/editor/new")
    set_pg_read_only(database, True)
    try:
        page.fill("#url", f"{base}/news/garissa-bridge")
        page.fill("#title", "Garissa bridge closed after the Tana rises")
        page.fill("#body", "Drivers are told to wait at Bangale until the water falls.")
        page.click("#review")
        page.wait_for_selector("#confirm-form")
        with page.expect_navigation():
            page.click("#send")
        assert page.locator("h1").inner_text() == "Cannot save right now"
        words = page.locator("main").inner_text()
        assert "nothing was saved" in words and "disk" not in words.lower()
        # A form sent: not "Try again" (it would not send it again), the newsroom's list.
        assert page.locator("a:has-text('Go to the newsroom')").count() == 1
        checked_shots(page, artifacts, "database-refuses-writes", docs=("390", "desktop"))
        answer = page.goto(f"{base}/editor/scheduled")  # reads go on
        assert answer is not None and answer.status == 200
        _ops_see_it(ops_page, base, live, artifacts)
    finally:
        set_pg_read_only(database, False)
        ops_page.context.close()


def _ops_see_it(page: Any, base: str, live: Any, artifacts: Path) -> None:
    """The status pill from the snapshot alone (no alarm round yet), then beat's alarm."""
    page.goto(f"{base}/ops")
    pill = page.locator("#health:has-text('refuses writes')")
    pill.wait_for(state="visible")
    assert pill.inner_text() == "database refuses writes: read-only"
    assert "pill-bad" in (pill.get_attribute("class") or "")
    run_alarm_round(live.app.extensions["newsflash"].container.ops, "test")
    kit = live.app.extensions["newsflash"].container.ops
    kit.telemetry.client.delete(CACHE_PREFIX + "snapshot")  # not the cached picture
    page.reload()
    alarm = page.locator(".alarm[data-kind='database_refuses_writes']")
    alarm.wait_for(state="visible")
    assert "it is read-only" in alarm.inner_text()
    checked_shots(page, artifacts, "ops-database-refuses-writes")
    if os.environ.get("NEWSFLASH_DOCS_SCREENSHOTS") == "1":  # the top of the page: pill, alarm
        page.screenshot(path=str(DOCS_IMG / "ops-database-refuses-writes-390.png"))
