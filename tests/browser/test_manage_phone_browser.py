"""The manage page's choices as a reader meets them on a phone, in a real Chromium: what each
Save answers appears where the reader pressed it, and a choice the page's controls do not list
is shown as it is, not lost at the next Save."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    OVERFLOW_JS,
    PHONE,
    ReaderSite,
    keep,
    subscribed_page,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

# How far below the pressed button its answer starts (px), and whether it is on the screen.
NEAR = """([button, answer]) => {
  const b = document.querySelector(button).getBoundingClientRect();
  const a = [...document.querySelectorAll('[role=status]')]
    .find(e => e.textContent.includes(answer)).getBoundingClientRect();
  return [Math.round(a.top - b.bottom), a.top >= -1 && a.bottom <= innerHeight + 1];
}"""


def test_each_save_answers_next_to_its_button_on_a_phone(
    chromium: Any, reader_site: ReaderSite, artifacts: Path
) -> None:
    page = subscribed_page(chromium, reader_site, lang="sw")
    page.set_viewport_size(PHONE)
    page.goto(reader_site.base + "/manage?lang=sw")
    page.locator("#nf-choices").wait_for()
    assert page.evaluate(OVERFLOW_JS) == []

    page.get_by_label("Tumia saa za utulivu").check()
    page.get_by_label("Arifa za kawaida zisizozidi hizi kwa siku").select_option("3")
    page.get_by_role("button", name="Hifadhi saa za utulivu na kikomo").click()
    page.get_by_text("Imehifadhiwa. Utulivu kuanzia 22:00 hadi 06:00.").wait_for()
    gap, seen = page.evaluate(NEAR, ["#nf-choices-save", "Utulivu kuanzia"])
    assert 0 <= gap < 40 and seen, f"the answer is {gap} px below the button"
    keep(page, artifacts, "manage-choices-saved-kiswahili-390.png")

    page.locator("input[value=sport]").check()
    page.get_by_role("button", name="Hifadhi mada").click()
    page.get_by_text("Imehifadhiwa. Utapokea arifa kuhusu").wait_for()
    gap, seen = page.evaluate(NEAR, ["#nf-save", "Utapokea arifa kuhusu"])
    assert 0 <= gap < 40 and seen, f"the answer is {gap} px below the button"


def test_a_daily_cap_the_list_does_not_offer_is_shown_and_kept(
    chromium: Any, reader_site: ReaderSite
) -> None:
    """The API takes caps up to 50 (any client may set one); the page lists 1 to 10."""
    page = subscribed_page(chromium, reader_site)
    sub = page.__sub
    proof = {"endpoint": sub["endpoint"], "auth": sub["keys"]["auth"]}
    answer = reader_site.api().put(
        "/api/v1/subscriptions/preferences", json={**proof, "quietHours": None, "dailyCap": 20}
    )
    assert answer.status_code == 200, answer.json
    page.goto(reader_site.base + "/manage")
    page.locator("#nf-choices").wait_for()
    cap = page.get_by_label("At most this many routine alerts a day")
    assert cap.input_value() == "20"
    page.get_by_label("Use quiet hours").check()
    page.get_by_role("button", name="Save quiet hours and limit").click()
    page.get_by_text("At most 20 routine alerts a day.").wait_for()
    row = reader_site.subscription(sub["endpoint"])
    assert row is not None and row["daily_cap"] == 20
