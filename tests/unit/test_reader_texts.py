"""Reader texts: every table speaks both languages, and the Kiswahili words are not English ones
left untranslated (the iPhone's own button names, Share and Add to Home Screen, stay English
inside Kiswahili sentences: iOS has no Kiswahili)."""

from __future__ import annotations

import pytest

from service.choice_texts import _CHOICES
from service.texts import _CHROME, _MANAGE, _TEXTS


@pytest.mark.parametrize(
    "table", [_TEXTS, _MANAGE, _CHROME, _CHOICES], ids=["prompt", "manage", "chrome", "choices"]
)
def test_every_reader_text_is_written_in_both_languages(table: dict[str, dict[str, str]]) -> None:
    assert table["en"].keys() == table["sw"].keys()
    same = [k for k, v in table["sw"].items() if v == table["en"][k] and v.strip()]
    assert same == [], "untranslated"
    assert all(v.strip() for v in table["sw"].values())
