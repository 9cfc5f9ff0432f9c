"""An alert in more than one language: its main language and the other languages' words.

API shape (chosen over `title_sw`/`body_sw` fields so a third language needs no new fields):
`"lang": "en"` (optional, the language `title` and `body` are in; default NEWSFLASH_DEFAULT_LANG)
and `"translations": {"sw": {"title": "...", "body": "..."}}` (optional, each language once,
never the main one). Each reader gets their language's words, else the main ones.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.errors import ValidationError
from core.inputs import check_text
from core.model import Translation
from core.subscriptions import READER_LANGUAGES

_LANGS = ", ".join(READER_LANGUAGES)


def parse_lang(body: Mapping[str, object], default_lang: str) -> str:
    lang = body.get("lang")
    if lang is None or lang == "":
        return default_lang
    if lang not in READER_LANGUAGES:
        raise ValidationError(f"lang must be one of {_LANGS} (or left out)", "lang")
    return str(lang)


def parse_translations(
    body: Mapping[str, object], main_lang: str, max_title: int, max_body: int
) -> tuple[Translation, ...]:
    value = body.get("translations")
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise ValidationError(
            'translations must be an object like {"sw": {"title": ..., "body": ...}}',
            "translations",
        )
    found: list[Translation] = []
    for lang, words in value.items():
        at = f"translations.{lang}"
        if lang not in READER_LANGUAGES:
            raise ValidationError(f"translations: languages are {_LANGS}", "translations")
        if lang == main_lang:
            raise ValidationError(f"{at}: {lang} is the alert's main language (title and body)", at)
        if not isinstance(words, Mapping):
            raise ValidationError(f"{at} must be an object with title and body", at)
        if not words.get("title") and not words.get("body"):
            continue  # an empty language tab: readers of it get the main words
        found.append(
            Translation(
                str(lang),
                _words(words, "title", max_title, at, multiline=False),
                _words(words, "body", max_body, at, multiline=True),
            )
        )
    return tuple(sorted(found, key=lambda t: t.lang))


def _words(words: Mapping[str, object], name: str, max_len: int, at: str, multiline: bool) -> str:
    field = f"{at}.{name}"
    value = words.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{field} is required (or leave the whole language out)", field)
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = check_text(value.strip(), field, multiline=multiline)
    if len(value) > max_len:
        raise ValidationError(
            f"{field} must be at most {max_len} characters (has {len(value)})", field
        )
    return value


def translations_json(translations: tuple[Translation, ...]) -> dict[str, dict[str, str]]:
    """How the alert stores and shows its translations."""
    return {t.lang: {"title": t.title, "body": t.body} for t in translations}


def translations_from_json(value: object) -> tuple[Translation, ...]:
    if not isinstance(value, Mapping):
        return ()
    return tuple(
        Translation(str(lang), str(w.get("title", "")), str(w.get("body", "")))
        for lang, w in sorted(value.items())
        if isinstance(w, Mapping)
    )
