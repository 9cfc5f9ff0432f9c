"""The duplicate guard: the same article, or nearly the same headline, sent again within a window.

The rule (one place, every entry point): an alert is a likely duplicate of an earlier one,
created within `NEWSFLASH_DUPLICATE_WINDOW_S` and not called off (nobody received it), when

- the article URLs are the same, compared without the fragment, a trailing slash, `utm_*`
  parameters, and with the scheme and host lower-cased; or
- the headlines have nearly the same words: each is normalised (Unicode NFKC, case-folded,
  punctuation and symbols become spaces, runs of whitespace collapse) and split into a set of
  words, and (shared words) / (all words of either) (Jaccard token-set similarity) is at least 0.9. For headlines
  under ten words that means the same words in any order; a longer one may differ by a word.

Test sends never count. Corrections are not guarded (they mean to repeat the story).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from core.errors import Conflict
from core.model import Alert, AlertDraft, AlertKind, AlertStatus

HEADLINE_SIMILARITY = 0.9
# Enough for any newsroom's six hours; the guard never scans an unbounded history.
MAX_CANDIDATES = 1000


class RecentAlerts(Protocol):
    def alerts_since(self, since: float, limit: int) -> list[Alert]:
        """Alerts created at or after `since` (tests excluded), newest first."""
        ...


class DuplicateAlert(Conflict):
    """The draft looks like an alert sent a moment ago: publishing needs `duplicate_ok`."""

    code = "duplicate"

    def __init__(self, earlier: Alert, reason: str) -> None:
        super().__init__(
            f"alert #{earlier.id} “{earlier.title}” {reason}; send with duplicate_ok to "
            "publish it anyway",
            "duplicate_ok",
        )
        self.earlier = earlier
        self.reason = reason


def headline_words(title: str) -> frozenset[str]:
    text = unicodedata.normalize("NFKC", title).casefold()
    kept = "".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text)
    return frozenset(kept.split())


def headline_similarity(a: str, b: str) -> float:
    wa, wb = headline_words(a), headline_words(b)
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / len(wa | wb)


def article_key(url: str) -> str:
    """The URL as the same article: no fragment, no utm_*, no trailing slash, host lower-cased."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    query = [(k, v) for k, v in query if not k.lower().startswith("utm_")]
    path = parts.path.rstrip("/") or "/"
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), path, urlencode(sorted(query)), "")
    )


def _called_off(alert: Alert) -> bool:
    return alert.status is AlertStatus.CANCELLED and alert.started_at is None


def earlier_duplicate(draft: AlertDraft, recent: Sequence[Alert]) -> tuple[Alert, str] | None:
    """The newest recent alert this draft repeats, with why in words; None if there is none."""
    key = article_key(draft.url)
    for alert in recent:
        if alert.kind is AlertKind.TEST or _called_off(alert):
            continue
        if article_key(alert.url) == key:
            return alert, "already sent this article"
        if headline_similarity(alert.title, draft.title) >= HEADLINE_SIMILARITY:
            return alert, "has nearly the same headline"
    return None


def check_not_duplicate(draft: AlertDraft, store: RecentAlerts, now: float, window_s: int) -> None:
    """Raise DuplicateAlert if the draft repeats an alert of the last `window_s` seconds."""
    if window_s <= 0 or draft.kind is not AlertKind.NORMAL:
        return
    found = earlier_duplicate(draft, store.alerts_since(now - window_s, MAX_CANDIDATES))
    if found is not None:
        raise DuplicateAlert(*found)
