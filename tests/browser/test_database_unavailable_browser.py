"""An editor on a phone when the database goes away (PostgreSQL dropped under the running web
app): the next page is the newsroom's "Briefly unavailable", readable at 390 and 1280 px with
the checks every newsroom page passes, a way to try again and nothing that needs the database
(not the bare "Internal Server Error" it was). Screenshots in var/test-artifacts
(database-unavailable-*.png); docs/img refreshed with NEWSFLASH_DOCS_SCREENSHOTS=1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.accounts import Role
from tests.support.browser import checked_shots, newsroom_phone
from tests.support.live_stack import served_app
from tests.support.newsroom import PASSWORD
from tests.support.services import create_pg_database, drop_pg_database, free_port

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

EDITOR = "wanjiru@news.example"


def test_an_editor_whose_database_goes_away_sees_briefly_unavailable(
    chromium_browser: Any,
    tmp_path: Path,
    vapid_pem: str,
    redis_url: str,
    artifacts: Path,
    postgres_available: bool,
) -> None:
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
            finally:
                page.context.close()
    finally:
        drop_pg_database(database)
