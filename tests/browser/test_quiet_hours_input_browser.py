"""Quiet hours the server cannot take, in a real Chromium: the manage page says what to change,
never "try again later" (which would fail again), in English and in Kiswahili."""

from __future__ import annotations

from typing import Any

import pytest

from service.choice_texts import _CHOICES
from tests.support.browser import ReaderSite, subscribed_page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


def test_every_choice_text_exists_in_both_languages() -> None:
    assert _CHOICES["en"].keys() == _CHOICES["sw"].keys()
    assert all(_CHOICES["en"][k] != _CHOICES["sw"][k] for k in ("quietSame", "quietMissing"))


@pytest.mark.parametrize(
    ("lang", "start", "end", "words"),
    [
        ("en", "22:00", "22:00", "an end time different from the start time"),
        ("sw", "22:00", "22:00", "saa ya mwisho tofauti na saa ya kuanza"),
        ("en", "", "06:00", "Choose both times"),
    ],
)
def test_quiet_hours_the_server_would_refuse_are_explained(
    chromium: Any, reader_site: ReaderSite, lang: str, start: str, end: str, words: str
) -> None:
    page = subscribed_page(chromium, reader_site, lang=lang)
    page.goto(f"{reader_site.base}/manage?lang={lang}")
    page.locator("#nf-choices").wait_for()
    page.locator("#nf-quiet-on").check()
    page.locator("#nf-quiet-start").fill(start)
    page.locator("#nf-quiet-end").fill(end)
    page.locator("#nf-choices-save").click()
    message = page.locator("#nf-choices-message")
    message.get_by_text(words).wait_for()
    row = reader_site.subscription(page.__sub["endpoint"])
    assert row is not None and row["quiet_start"] is None
