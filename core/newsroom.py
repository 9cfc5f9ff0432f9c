"""The newsroom: compose forms, undo windows, test sends, corrections, reports and article prefill."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from typing import Any, Protocol
from urllib.parse import urljoin

from core import alerts as alert_rules
from core.errors import Conflict, NotFound, ValidationError
from core.model import Alert, AlertCounts, AlertDraft, AlertKind, AlertStatus, Urgency

MILESTONES = (50, 90, 100)
TTL_CHOICES_S = (900, 3600, 4 * 3600, 12 * 3600, 86400)
MAX_ARTICLE_BYTES = 512 * 1024
# Open Graph tags live in <head>; a page that has not shown them by then never will.
_HEAD_END = "</head"
# How a page's <title> joins the headline and the site's name ("Headline | The Courier").
_TITLE_SEPARATORS = (" | ", " - ", " \u2013 ", " \u2014 ", " \u00b7 ", " :: ")


# -- compose ------------------------------------------------------------------------------
def request_from_form(form: Mapping[str, Any], topics: Sequence[str]) -> dict[str, Any]:
    """The compose form's fields → the JSON body the API takes (validation happens there).

    `topics` are the checked boxes (a form sends repeated fields). `when` is "now" or "later";
    a later `send_at` is the datetime-local text, read in the newsroom's time zone.
    """
    body: dict[str, Any] = {
        "title": _field(form, "title"),
        "body": _field(form, "body"),
        "url": _field(form, "url"),
        "topics": list(topics),
    }
    image = _field(form, "image")
    if image:
        body["image"] = image
    # The compose page's second-language tab (left empty: every reader gets the main words).
    title_tr, body_tr = _field(form, "title_tr"), _field(form, "body_tr")
    if title_tr or body_tr:
        body["translations"] = {_field(form, "tr_lang"): {"title": title_tr, "body": body_tr}}
    urgency = _field(form, "urgency")
    if urgency:
        body["urgency"] = urgency
    ttl = _field(form, "ttl")
    if ttl:
        try:
            body["ttl"] = int(ttl)
        except ValueError:
            raise ValidationError("ttl must be whole seconds", "ttl") from None
    if _field(form, "duplicate_ok") == "yes":
        body["duplicate_ok"] = True
    if _field(form, "wait_for_article") != "yes":
        body["wait_for_article"] = False  # the compose checkbox, unticked
    if _field(form, "followable") == "yes":
        body["followable"] = True
    if _field(form, "no_utm") == "yes":
        body["utm"] = False
    if _field(form, "when") == "later":
        send_at = _field(form, "send_at")
        if not send_at:
            raise ValidationError("choose the date and time to send at", "send_at")
        body["send_at"] = send_at
    return body


def _field(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def with_undo_window(draft: AlertDraft, now: float, undo_window_s: int) -> AlertDraft:
    """A send from the newsroom waits out the undo window as a scheduled alert: Undo = cancel."""
    if draft.send_at is not None or undo_window_s <= 0:
        return draft
    return replace(draft, send_at=now + undo_window_s)


def in_undo_window(alert: Alert, now: float, undo_window_s: int) -> bool:
    return (
        alert.status is AlertStatus.SCHEDULED
        and alert.send_at is not None
        and alert.send_at - alert.created_at <= undo_window_s + 1
        and alert.send_at > now
    )


def as_test_send(draft: AlertDraft, user_id: int) -> AlertDraft:
    """A test send: only the editor's own test devices, labelled, never the real send."""
    title = draft.title if draft.title.startswith("[TEST]") else "[TEST] " + draft.title
    return replace(
        draft,
        title=title[: alert_rules.MAX_TITLE],
        kind=AlertKind.TEST,
        article_id=None,
        idempotency_key=None,
        send_at=None,
        test_user_id=user_id,
    )


# -- schedule -----------------------------------------------------------------------------
def check_editable(alert: Alert | None) -> Alert:
    if alert is None:
        raise NotFound("no such alert", "id")
    if alert.status is not AlertStatus.SCHEDULED:
        raise Conflict(f"alert is already {alert.status.value}; only scheduled ones", "status")
    return alert


# -- report -------------------------------------------------------------------------------
class MilestoneStore(Protocol):
    def delivery_milestones(self, alert_id: int, ranks: Sequence[int]) -> dict[int, float]: ...


@dataclass(frozen=True)
class Milestone:
    percent: int
    deliveries: int  # how many deliveries make that share of the audience
    after_s: float | None  # seconds from release to that delivery; None = not reached


@dataclass(frozen=True)
class Report:
    alert: Alert
    counts: AlertCounts
    reachable: int
    click_through: float | None
    milestones: tuple[Milestone, ...]

    @property
    def called_off(self) -> bool:
        """Cancelled before a single push was attempted (Undo, or a cancelled schedule)."""
        return self.alert.status is AlertStatus.CANCELLED and self.alert.started_at is None

    @property
    def stopped_mid_send(self) -> bool:
        return self.alert.status is AlertStatus.CANCELLED and self.alert.started_at is not None


def audience_of(alert: Alert) -> AlertCounts:
    """Tests and corrections are addressed from a ledger, not topics: their audience is who was
    tried, so the numbers still add up."""
    c = alert.counts
    if alert.kind is not AlertKind.NORMAL and c.audience == 0:
        return replace(c, audience=c.delivered + c.gone + c.failed)
    return c


def build_report(alert: Alert, store: MilestoneStore) -> Report:
    """Counts, click-through and the time to reach 50/90/100 % of the reachable audience.

    Reachable = the audience minus gone subscriptions (browsers that unsubscribed); the n-th
    delivery is read by rank from the ledger, never by loading every row.
    """
    counts = audience_of(alert)
    reachable = max(0, counts.audience - counts.gone)
    ranks = {p: math.ceil(reachable * p / 100) for p in MILESTONES} if reachable else {}
    wanted = sorted({k for k in ranks.values() if 0 < k <= counts.delivered})
    times = store.delivery_milestones(alert.id, wanted) if wanted else {}
    origin = alert.queued_at or alert.started_at or alert.created_at
    milestones = tuple(
        Milestone(
            p,
            ranks.get(p, 0),
            None if ranks.get(p, 0) not in times else max(0.0, times[ranks[p]] - origin),
        )
        for p in MILESTONES
    )
    ctr = counts.clicked / counts.delivered if counts.delivered else None
    return Report(alert, counts, reachable, ctr, milestones)


# -- prefill from the article ---------------------------------------------------------------
@dataclass(frozen=True)
class ArticleMeta:
    title: str | None = None
    description: str | None = None
    image: str | None = None


class ArticleFetcher(Protocol):
    def fetch(self, url: str) -> str:
        """The page's HTML (at most MAX_ARTICLE_BYTES); raises ValidationError('url') if not."""
        ...


class _OpenGraph(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.in_title = False
        self.title = ""
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta":
            a = {k.lower(): v or "" for k, v in attrs}
            key = (a.get("property") or a.get("name") or "").lower().strip()
            if key and key not in self.meta and "content" in a:
                self.meta[key] = a["content"].strip()
        elif tag == "title":
            self.in_title = True
        elif tag == "body":
            self.done = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        elif tag == "head":
            self.done = True

    def handle_data(self, data: str) -> None:
        if self.in_title and not self.done:
            self.title += data


def parse_open_graph(html: str, page_url: str, site_names: Sequence[str] = ()) -> ArticleMeta:
    """og:title / og:description / og:image (with the usual fallbacks) from a page's head.

    A title ending in " | <site>" (or a hyphen, en or em dash, middle dot) loses that suffix
    when <site> is the page's og:site_name or application-name, or one of `site_names` (ours):
    that is the <title> of a page without og tags, and an alert already says who sent it.
    """
    parser = _OpenGraph()
    cut = html.lower().find(_HEAD_END)
    parser.feed(html if cut < 0 else html[: cut + len(_HEAD_END) + 1])
    meta = parser.meta

    def first(*keys: str) -> str | None:
        for key in keys:
            value = " ".join(meta.get(key, "").split())
            if value:
                return value
        return None

    title = first("og:title", "twitter:title") or (" ".join(parser.title.split()) or None)
    site = first("og:site_name", "application-name")
    image = first("og:image", "og:image:url", "og:image:secure_url", "twitter:image")
    return ArticleMeta(
        title=without_site_name(title, [site or "", *site_names]) if title else None,
        description=first("og:description", "twitter:description", "description"),
        image=urljoin(page_url, image) if image else None,
    )


def without_site_name(title: str, site_names: Sequence[str]) -> str:
    """`title` without a trailing site-name suffix; unchanged if nothing else would be left."""
    names = {" ".join(n.split()).casefold() for n in site_names if n.strip()}
    for sep in _TITLE_SEPARATORS:
        head, found, tail = title.rpartition(sep)
        if found and head.strip() and tail.strip().casefold() in names:
            return head.strip()
    return title


def prefill_from_article(
    url: str, origins: Sequence[str], fetcher: ArticleFetcher, site_names: Sequence[str] = ()
) -> dict[str, str]:
    """Suggested title/body/image for the compose form, cut to the limits.

    Only the publisher's own origins are ever fetched (checked before connecting); an image
    elsewhere is dropped, since an alert could not carry it anyway.
    """
    url = alert_rules.check_public_url(url.strip(), origins, "url")
    meta = parse_open_graph(fetcher.fetch(url), url, site_names)
    found: dict[str, str] = {"url": url}
    if meta.title:
        found["title"] = shorten(meta.title, alert_rules.MAX_TITLE)
    if meta.description:
        found["body"] = shorten(meta.description, alert_rules.MAX_BODY)
    if meta.image:
        with contextlib.suppress(ValidationError):
            found["image"] = alert_rules.check_public_url(meta.image, origins, "image")
    if len(found) == 1:
        raise ValidationError("the article page has no og:title or og:description", "url")
    return found


def shorten(text: str, limit: int) -> str:
    """Cut at a word boundary with an ellipsis (CMS and og text can run long)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


def urgency_default(topics: Sequence[str]) -> Urgency:
    return Urgency.HIGH if "breaking" in topics else Urgency.NORMAL
