"""The Team page in a real Chromium, as an admin uses it from a phone when someone joins or
leaves the newsroom: add a person (the issued password shown once, readable and whole), disable
someone who left (confirmed first; their phone is signed out at once), at 390 and 1280 px with
the page checks every newsroom page passes. Screenshots land in var/test-artifacts (team-*.png);
docs/img is refreshed only with NEWSFLASH_DOCS_SCREENSHOTS=1."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.accounts import Role
from tests.support.browser import PHONE, checked_shots, newsroom_phone, rendered_lines
from tests.support.live_stack import served_on_sqlite
from tests.support.newsroom import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

ADMIN = "amina@news.example"
LEAVER = "otieno.odhiambo.night-desk@news.example"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, vapid_pem: str, redis_url: str) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("team-browser")
    with served_on_sqlite(tmp, redis_url, vapid_pem) as (url, live):
        live.create_user(ADMIN, PASSWORD, Role.ADMIN)
        live.create_user(LEAVER, PASSWORD, Role.EDITOR)
        live.create_user("ops@news.example", PASSWORD, Role.OPS)
        yield url


def test_an_admin_adds_a_reporter_and_disables_one_who_left_from_a_phone(
    chromium_browser: Any, base: str, artifacts: Path
) -> None:
    leaver = newsroom_phone(chromium_browser, base, LEAVER, PASSWORD)
    page = newsroom_phone(chromium_browser, base, ADMIN, PASSWORD)
    try:
        page.click("[data-menu-toggle]")
        page.click(".nf-nav a:has-text('Team')")
        page.wait_for_url(lambda url: url.endswith("/editor/team"))
        row = page.locator(f"tr[data-person='{ADMIN}']")
        assert row.locator("form").count() == 0  # nothing to change on one's own row
        assert "you" in row.inner_text()
        checked_shots(page, artifacts, "team")

        page.fill("#email", "Wanjiku@News.Example")
        page.select_option("#role", "editor")
        page.click("#add-person")
        page.wait_for_selector("#issued")
        assert page.locator("#team-notice").inner_text() == "wanjiku@news.example can log in now."
        issued = page.locator("#issued-password")
        password = issued.inner_text()
        assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){3}", password), password
        # One line, whole, in the phone's width: read out over the phone without guessing.
        assert len(rendered_lines(issued)) == 1
        box = issued.bounding_box()
        assert box is not None and box["x"] + box["width"] <= PHONE["width"], box
        checked_shots(page, artifacts, "team-issued", docs=("390",))

        # Someone left: disabling asks first; dismissing it changes nothing.
        leaving = page.locator(f"tr[data-person='{LEAVER}']")
        page.once("dialog", lambda dialog: dialog.dismiss())
        leaving.locator("button", has_text="Disable").click()
        page.wait_for_timeout(300)
        assert page.locator("#team-notice").inner_text() == "wanjiku@news.example can log in now."
        button = leaving.locator("button", has_text="Disable").bounding_box()
        assert button is not None and button["height"] >= 44, button
        page.once("dialog", lambda dialog: dialog.accept())
        leaving.locator("button", has_text="Disable").click()
        page.wait_for_selector(f"#team-notice:has-text('{LEAVER} cannot log in any more')")
        assert page.locator("#issued").count() == 0  # the password is not shown again
        assert "disabled" in page.locator(f"tr[data-person='{LEAVER}']").inner_text()
        checked_shots(page, artifacts, "team-disabled", docs=("desktop",))

        leaver.goto(base + "/editor/")
        assert "/editor/login" in leaver.url
    finally:
        leaver.context.close()
        page.context.close()
