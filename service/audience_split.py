"""The audience split for editors and ops: the newsroom's two languages on the compose and
review pages (which one the second tab is, readers per language), and readers per platform on
an alert's report and on /ops."""

from __future__ import annotations

from typing import Any

from core.adapters.audience_split_sql import SqlAudienceSplits
from core.model import AlertDraft
from core.platforms import LABELS, PLATFORM_ORDER, count_platforms
from core.subscriptions import READER_LANGUAGES

NAMES = {"en": "English", "sw": "Kiswahili"}


def other_language(main: str) -> str:
    return next(lang for lang in READER_LANGUAGES if lang != main)


def compose_languages(main: str) -> dict[str, Any]:
    other = other_language(main)
    return {
        "main": main,
        "main_name": NAMES[main],
        "other": other,
        "other_name": NAMES[other],
        "names": NAMES,
    }


def audience_by_language(container: Any, draft: AlertDraft) -> list[tuple[str, int, str]]:
    """(readers' language, how many, the language they will get) for the draft's topics."""
    main = draft.lang or container.settings.default_lang
    written = {main} | {t.lang for t in draft.translations}
    counts = SqlAudienceSplits(container.engine).language_counts(
        container.sql.topics.mask_of(draft.topics), container.settings.default_lang
    )
    order = sorted(counts, key=lambda lang: (lang != main, lang))
    return [(lang, counts[lang], lang if lang in written else main) for lang in order]


def platform_rows(container: Any, alert_id: int | None = None) -> list[dict[str, Any]]:
    """[{platform, label, count}] for every reader (alert_id None) or one alert's delivered."""
    groups = SqlAudienceSplits(container.engine).platform_groups(alert_id)
    counts = count_platforms(groups)
    return [{"platform": p, "label": LABELS[p], "count": counts[p]} for p in PLATFORM_ORDER]
