"""The newsroom's account page in a real Chromium on a 390 px phone: an editor whose other phone
is lost finds the page from the menu and signs every other device out; the lost phone's next
page is the login page, this one stays in. Screenshots land in var/test-artifacts
(account-*.png); docs/img is refreshed only with NEWSFLASH_DOCS_SCREENSHOTS=1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.accounts import Role
from tests.support.browser import (
    PHONE,
    checked_shots,
    newsroom_phone,
    rendered_lines,
    sign_in,
)
from tests.support.live_stack import served_on_sqlite
from tests.support.newsroom import EDITOR, PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

CHANGER = "wanjiru@news.example"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, vapid_pem: str, redis_url: str) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("account-browser")
    with served_on_sqlite(tmp, redis_url, vapid_pem) as (url, live):
        live.create_user(EDITOR, PASSWORD, Role.EDITOR)
        live.create_user(CHANGER, PASSWORD, Role.EDITOR)
        yield url


ANDROID_CHROME = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)
ANDROID_SAMSUNG = (
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36"
)


def _phone(browser: Any, base: str, email: str = EDITOR, user_agent: str = ANDROID_CHROME) -> Any:
    return newsroom_phone(browser, base, email, PASSWORD, user_agent)


def test_an_editor_signs_a_lost_phone_out_from_their_own_phone(
    chromium_browser: Any, base: str, artifacts: Path
) -> None:
    lost = _phone(chromium_browser, base, user_agent=ANDROID_SAMSUNG)
    page = _phone(chromium_browser, base)
    try:
        # Found from the menu: the editor's own name leads to the account page.
        page.click("[data-menu-toggle]")
        page.screenshot(path=str(artifacts / "account-menu-390.png"))
        page.click(f".nf-who-name:has-text('{EDITOR}')")
        page.wait_for_url(lambda url: url.endswith("/editor/account"))
        assert page.locator("#other-devices").inner_text() == (
            "Besides this one, you are signed in on 1 other device."
        )
        checked_shots(page, artifacts, "account", docs=("390",))
        # Each device by name: which one is lost is plain; its own Sign out on one line.
        this = page.locator("[data-device=this]")
        assert this.locator("strong").inner_text() == "Chrome on Android"
        other = page.locator("[data-device=other]")
        assert other.locator("strong").inner_text() == "Samsung Internet on Android"
        one = other.locator("button")
        box = one.bounding_box()
        assert box is not None and box["height"] >= 44 and len(rendered_lines(one)) == 1, box
        button = page.locator("#sign-out-others").bounding_box()
        assert button is not None and button["height"] >= 44, button
        assert button["width"] >= PHONE["width"] - 80, button  # a full-width thumb target

        page.click("#sign-out-others")
        page.wait_for_selector("#signed-out")
        assert page.locator("#signed-out").inner_text() == (
            "Signed out of 1 other device. This one stays signed in."
        )
        assert page.locator("#other-devices").inner_text() == (
            "You are signed in on this device only."
        )
        checked_shots(page, artifacts, "account-signed-out", docs=("390",))

        # The lost phone's next tap is the login page; this phone carries on.
        lost.goto(base + "/editor/")
        assert "/editor/login" in lost.url
        page.goto(base + "/editor/")
        assert "/editor/login" not in page.url
        # Reloading the account page does not say it again, nor sign anyone out.
        page.goto(base + "/editor/account")
        assert page.locator("#signed-out").count() == 0
    finally:
        lost.context.close()
        page.context.close()


def test_an_editor_changes_their_password_on_a_phone(
    chromium_browser: Any, base: str, artifacts: Path
) -> None:
    laptop = _phone(chromium_browser, base, CHANGER)
    page = _phone(chromium_browser, base, CHANGER)
    new = "jacaranda season in nairobi"
    try:
        page.goto(base + "/editor/account")
        for name in ("current_password", "new_password", "new_password_repeat"):
            box = page.locator(f"#{name}").bounding_box()
            assert box is not None and box["height"] >= 44, (name, box)
        # A wrong current password: said under that field, the typed passwords not kept.
        page.fill("#current_password", "not my password at all")
        page.fill("#new_password", new)
        page.fill("#new_password_repeat", new)
        page.click("#change-password")
        error = page.locator("[data-field-error=current_password]")
        error.wait_for()
        assert error.inner_text() == "The current password is wrong."
        assert page.locator("#current_password").get_attribute("aria-invalid") == "true"
        assert page.locator("#new_password").input_value() == ""
        checked_shots(page, artifacts, "account-password-wrong", docs=("390",))

        page.fill("#current_password", PASSWORD)
        page.fill("#new_password", new)
        page.fill("#new_password_repeat", new)
        page.click("#change-password")
        page.wait_for_selector("#password-changed")
        assert page.locator("#password-changed").inner_text() == (
            "Your password is changed. Signed out of 1 other device; this one stays signed in."
        )
        checked_shots(page, artifacts, "account-password-changed")

        laptop.goto(base + "/editor/")
        assert "/editor/login" in laptop.url
        sign_in(laptop, CHANGER, new)
        page.goto(base + "/editor/")
        assert "/editor/login" not in page.url
    finally:
        laptop.context.close()
        page.context.close()
