"""UTM tags on click-through URLs, so push traffic shows in the publisher's own analytics.

utm_source and utm_medium come from the settings, utm_campaign names the alert ("alert-<id>").
The tags are appended to the query as it is: existing parameters keep their bytes and order, a
tag the URL already carries is not added again (the editor's own value wins), and the fragment
stays last. Test sends are never tagged (their clicks are the newsroom's, not readers').
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, urlencode

from core.model import Alert, AlertKind

CAMPAIGN_PREFIX = "alert-"


@dataclass(frozen=True)
class UtmTags:
    source: str = "newsflash"
    medium: str = "push"


def with_utm(url: str, tags: UtmTags, campaign: str) -> str:
    """`url` with utm_source, utm_medium and utm_campaign added where it lacks them."""
    base, hash_mark, fragment = url.partition("#")
    path, _, query = base.partition("?")
    present = {key for key, _ in parse_qsl(query, keep_blank_values=True)}
    wanted = [
        ("utm_source", tags.source),
        ("utm_medium", tags.medium),
        ("utm_campaign", campaign),
    ]
    added = urlencode([(k, v) for k, v in wanted if k not in present])
    if not added:
        return url
    joiner = "" if not query or query.endswith("&") else "&"
    return f"{path}?{query}{joiner}{added}{hash_mark}{fragment}"


def campaign_of(alert: Alert) -> str:
    return f"{CAMPAIGN_PREFIX}{alert.id}"


def click_through(alert: Alert, tags: UtmTags | None) -> Alert:
    """The alert as its payload is built: its URL tagged, unless tags are off (by setting or
    for this alert) or it is a test send."""
    if tags is None or not alert.utm or alert.kind is AlertKind.TEST:
        return alert
    return replace(alert, url=with_utm(alert.url, tags, campaign_of(alert)))
