"""An editor on a phone when the database goes away (PostgreSQL dropped under the running web
app): the next page is the newsroom's "Briefly unavailable", readable at 390 and 1280 px with
the checks every newsroom page passes, a way to try again and nothing that needs the database
(not the bare "Internal Server Error" it was). Screenshots in var/test-artifacts
(database-unavailable-*.png); docs/img refreshed with NEWSFLASH_DOCS_SCREENSHOTS=1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.accounts import Role
from tests.support.browser import checked_shots, newsroom_phone
from tests.support.live_stack import served_app
from tests.support.newsroom import PASSWORD
from tests.support.services import (
    create_pg_database,
    drop_pg_database,
    free_port,
    set_pg_read_only,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

EDITOR = "wanjiru@news.example"


@pytest.fixture
def phone(
    chromium_browser: Any,
    tmp_path: Path,
    vapid_pem: str,
    redis_url: str,
    postgres_available: bool,
) -> Iterator[tuple[Any, str, str]]:
    """A served app on a PostgreSQL database of its own, and an editor signed in on a 390 px
    phone: (the page, the app's base URL, the database's URL)."""
    database = create_pg_database()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        with served_app(
            tmp_path, database, redis_url, vapid_pem, port, PUBLIC_ORIGINS=base
        ) as live:
            live.create_user(EDITOR, PASSWORD, Role.EDITOR)
            page = newsroom_phone(chromium_browser, base, EDITOR, PASSWORD)
            try:
                yield page, base, database
            finally:
                page.context.close()
    finally:
        drop_pg_database(database)


def test_an_editor_whose_database_goes_away_sees_briefly_unavailable(
    phone: tuple[Any, str, str], artifacts: Path
) -> None:
    page, base, database = phone
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
    phone: tuple[Any, str, str], artifacts: Path
) -> None:
    """A failover that pointed the app at a standby (the database read-only), met on a phone:
    the newsroom's pages still open; a Send answers "Cannot save right now", that nothing was
    saved, and the way back to the newsroom (before: "Briefly unavailable ... cannot reach its
    database", a PostgreSQL standby even a bare 500 "Internal Server Error")."""
    page, base, database = phone
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
    finally:
        set_pg_read_only(database, False)
