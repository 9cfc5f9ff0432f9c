"""The manage page as a Kiswahili reader gets it: the whole document says it is Kiswahili (screen
readers, the browser's translate offer) and the page's own links speak it too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.reader_api import Api, build_api, dispose_api


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, vapid_pem: str, redis_url: str) -> Iterator[Api]:
    tmp: Path = tmp_path_factory.mktemp("manage-lang")
    built = build_api(tmp / "var", f"sqlite:///{tmp}/newsflash.db", vapid_pem)
    try:
        yield built
    finally:
        dispose_api(built)


def _html_lang(page: str) -> str:
    found = re.search(r"<html lang=\"([^\"]+)\">", page)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize(
    ("query", "header", "lang", "skip", "footer"),
    [
        ("?lang=sw", None, "sw", "Ruka hadi maudhui", "Rudi ukurasa wa mbele"),
        ("", "sw-KE,sw;q=0.9", "sw", "Ruka hadi maudhui", "Rudi ukurasa wa mbele"),
        ("?lang=en", None, "en", "Skip to content", "Back to the front page"),
    ],
)
def test_the_manage_page_is_one_language_from_its_html_element_down(
    site: Api, query: str, header: str | None, lang: str, skip: str, footer: str
) -> None:
    headers = {"Accept-Language": header} if header else {}
    page = site.client.get("/manage" + query, headers=headers)
    assert page.status_code == 200
    assert _html_lang(page.text) == lang
    assert f">{skip}</a>" in page.text
    assert f">{footer}</a>" in page.text
    other = {"sw": "Skip to content", "en": "Ruka hadi maudhui"}[lang]
    assert other not in page.text


def test_the_demo_article_stays_english_whatever_the_reader_asks(site: Api) -> None:
    # The sample story is written in English: its page says so, even for a Kiswahili browser.
    page = site.client.get("/", headers={"Accept-Language": "sw"})
    assert _html_lang(page.text) == "en"


def _site_words(page: str) -> str:
    """The words of the site around the page (skip link, masthead, navigation, footer) and the
    names a screen reader reads there (aria-label). The topics are the publisher's setting."""
    parts = re.findall(
        r'<a class="skip".*?</a>|<header.*?</header>|<footer.*?</footer>', page, re.S
    )
    around = " ".join(parts)
    labels = " ".join(re.findall(r'aria-label="([^"]*)"', around))
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", around)) + " " + labels


def test_a_kiswahili_manage_page_has_no_english_around_it(site: Api) -> None:
    page = site.client.get("/manage?lang=sw").text
    words = _site_words(page)
    for english in ("News", "Politics", "Business", "Sport", "Alerts", "Sections", "Saturday"):
        assert not re.search(rf"\b{english}\b", words), english
    assert "demo page" not in words
    for kiswahili in ("Habari", "Siasa", "Biashara", "Michezo", "Sehemu", "Jumamosi", "maonyesho"):
        assert kiswahili in words
    # Its link to the manage page keeps the reader on Kiswahili; the footer leads home, not to
    # the page itself.
    assert re.findall(r'href="(/manage[^"]*)"', page) == ["/manage?lang=sw"]
