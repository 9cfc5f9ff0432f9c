"""Alerts from a feed: feed settings, RSS 2.0 / Atom parsing (no DTDs, no entities), matching items.

A feed item's key is its guid (Atom: id), else its link: the key decides what is new, and the
alert it may become carries an idempotency key derived from it, so an item never makes two alerts
(not on a second poll, not when an editor sends the draft twice, not from two feeds).
"""

from __future__ import annotations

import codecs
import enum
import hashlib
import html
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from core.alerts import MAX_BODY, MAX_TITLE, check_public_url
from core.errors import ValidationError
from core.inputs import check_text

MAX_CATEGORY = 100
MAX_ITEMS = 200  # per poll; a feed listing more is read down to its newest 200
ATOM = "{http://www.w3.org/2005/Atom}"
FEED_ACTOR = "feed"
# editor.py turns the review form's key into the Idempotency-Key "newsroom:<key>"; an auto send
# uses the same full key, so whichever way an item goes out first, it goes out once.
ALERT_KEY_PREFIX = "newsroom:"


class FeedMode(enum.StrEnum):
    REVIEW = "review"  # each new breaking item waits in "From your feed" for an editor
    AUTO = "auto"  # sent at once, paced by NEWSFLASH_FEED_MIN_GAP_S


class ItemState(enum.StrEnum):
    SEEN = "seen"  # already in the feed when it was added: never an alert
    DRAFT = "draft"  # waiting for an editor
    QUEUED = "queued"  # auto feed: waiting for the minimum gap
    SENDING = "sending"
    SENT = "sent"
    DISMISSED = "dismissed"
    SKIPPED = "skipped"  # could not become an alert (note says why)


@dataclass(frozen=True)
class FeedInput:
    url: str
    category: str
    mode: FeedMode
    topics: tuple[str, ...]


@dataclass(frozen=True)
class Feed:
    id: int
    url: str
    category: str
    mode: FeedMode
    topics: tuple[str, ...]
    created_at: float
    created_by: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    primed: bool = False  # the first poll has recorded what was already there
    last_polled_at: float | None = None
    last_ok_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    next_poll_at: float = 0.0


@dataclass(frozen=True)
class ParsedItem:
    key: str  # the guid, else the link
    title: str
    summary: str
    link: str
    categories: tuple[str, ...]
    published_at: float | None


@dataclass(frozen=True)
class FeedItem:
    id: int
    feed_id: int
    key_hash: str
    title: str
    summary: str
    link: str
    state: ItemState
    seen_at: float
    published_at: float | None = None
    note: str | None = None
    alert_id: int | None = None
    sent_at: float | None = None

    @property
    def alert_key(self) -> str:
        """The review form's `key`: the newsroom makes it "newsroom:feed:<hash>"."""
        return f"feed:{self.key_hash[:40]}"

    @property
    def idempotency_key(self) -> str:
        return ALERT_KEY_PREFIX + self.alert_key


class FeedError(ValidationError):
    """The feed could not be read as RSS 2.0 or Atom; the message says what to fix."""


# -- the feed's settings --------------------------------------------------------------------
def parse_feed_input(
    body: Mapping[str, object],
    origins: Collection[str],
    topics: Collection[str],
    default_topics: Sequence[str],
) -> FeedInput:
    # "feed_url": the newsroom words "url" errors for the article's URL.
    url = _one_line(body.get("url"), "feed_url", 2048, "Enter the feed's address.")
    try:
        check_public_url(url, tuple(origins), "feed_url")
    except ValidationError:
        raise ValidationError(
            f"The feed must be an http(s) address on your own site ({', '.join(origins)}).",
            "feed_url",
        ) from None
    category = _one_line(
        body.get("category"),
        "category",
        MAX_CATEGORY,
        "Enter the category or tag that marks breaking items.",
    )
    try:
        mode = FeedMode(str(body.get("mode") or FeedMode.REVIEW.value))
    except ValueError:
        raise ValidationError("mode must be review or auto", "mode") from None
    chosen = body.get("topics") or list(default_topics)
    if isinstance(chosen, str):
        chosen = [chosen]
    if not isinstance(chosen, list) or not chosen:
        raise ValidationError("Choose at least one topic", "topics")
    unknown = [t for t in chosen if t not in topics]
    if unknown:
        raise ValidationError(f"unknown topic {unknown[0]!r}", "topics")
    return FeedInput(url, category, mode, tuple(dict.fromkeys(str(t) for t in chosen)))


def _one_line(value: object, field: str, limit: int, missing: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValidationError(missing, field)
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be text", field)
    value = check_text(value.strip(), field)
    if len(value) > limit:
        raise ValidationError(f"{field} must be at most {limit} characters", field)
    return value


# -- parsing -----------------------------------------------------------------------------------
def parse_feed(data: bytes, content_type: str | None = None) -> list[ParsedItem]:
    """RSS 2.0 or Atom 1.0 → items, newest first as the feed lists them (at most MAX_ITEMS).

    `content_type` is the HTTP header the feed came with: its charset decides the encoding."""
    document = _decoded(data, content_type)
    try:
        root = fromstring(document, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise FeedError("the feed declares a DTD or entities; refused") from None
    except ParseError as exc:
        if isinstance(document, bytes) and _undeclared_non_utf8(document):
            raise FeedError(
                "the feed is not UTF-8 text and names no other encoding "
                "(neither a charset in its Content-Type nor an encoding in its XML declaration)"
            ) from None
        line = getattr(exc, "position", (0, 0))[0]
        raise FeedError(f"the feed is not well-formed XML (line {line})") from None
    if root.tag == "rss":
        channel = root.find("channel")
        if channel is None:
            raise FeedError("an RSS feed without a <channel>")
        return [_rss_item(e) for e in channel.findall("item")[:MAX_ITEMS]]
    if root.tag == f"{ATOM}feed":
        return [_atom_entry(e) for e in root.findall(f"{ATOM}entry")[:MAX_ITEMS]]
    raise FeedError("not an RSS 2.0 or Atom feed")


_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# Browsers (WHATWG Encoding) read these labels as windows-1252, and so do the Windows tools that
# write such feeds: curly quotes and dashes come as 0x91-0x97, which Latin-1 makes controls.
_AS_WINDOWS_1252 = {"iso8859-1", "ascii"}


def _decoded(data: bytes, content_type: str | None) -> bytes | str:
    """RFC 7303: a byte order mark decides; else an XML media type's charset parameter; else the
    XML declaration (or UTF-8), which the parser applies itself to bytes."""
    charset = _xml_charset(content_type)
    if charset is None or data.startswith(_BOMS):
        return data
    shown = charset[:40]
    name = charset
    try:
        name = codecs.lookup(charset).name
        return data.decode("windows-1252" if name in _AS_WINDOWS_1252 else name)
    except LookupError:  # unknown, or a codec that is no character encoding (base64, rot13)
        raise FeedError(
            f"the feed's Content-Type names the charset {shown!r}, "
            "which is not a character encoding we know"
        ) from None
    except UnicodeDecodeError as exc:
        if name in _AS_WINDOWS_1252:  # one of the five bytes windows-1252 leaves undefined
            return data.decode("latin-1")
        raise FeedError(
            f"the feed is not {shown} text (byte {exc.start}), though its Content-Type says "
            f"charset={shown}"
        ) from None


def _xml_charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    header = Message()
    header["Content-Type"] = content_type
    media = header.get_content_type()
    if not (media in ("text/xml", "application/xml") or media.endswith("+xml")):
        return None  # RFC 7303 speaks for XML media types; others keep the XML's own rule
    charset = (header.get_content_charset() or "").strip()
    return charset or None


_DECLARED = re.compile(rb"^\s*<\?xml[^>]*\bencoding\s*=", re.I)


def _undeclared_non_utf8(data: bytes) -> bool:
    if data.startswith(_BOMS) or _DECLARED.match(data[:200]):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _text(element: Element | None) -> str:
    return "" if element is None else "".join(element.itertext()).strip()


def _rss_item(e: Element) -> ParsedItem:
    link = _text(e.find("link"))
    guid = _text(e.find("guid"))
    return ParsedItem(
        key=guid or link,
        title=plain(_text(e.find("title"))),
        summary=plain(_text(e.find("description"))),
        link=link,
        categories=tuple(_text(c) for c in e.findall("category") if _text(c)),
        published_at=_rfc822(_text(e.find("pubDate"))),
    )


def _atom_entry(e: Element) -> ParsedItem:
    link = ""
    for candidate in e.findall(f"{ATOM}link"):
        if candidate.get("rel", "alternate") == "alternate" and candidate.get("href"):
            link = candidate.get("href", "").strip()
            break
    summary = e.find(f"{ATOM}summary")
    if summary is None:
        summary = e.find(f"{ATOM}content")
    terms = [c.get("term") or c.get("label") or "" for c in e.findall(f"{ATOM}category")]
    return ParsedItem(
        key=_text(e.find(f"{ATOM}id")) or link,
        title=plain(_text(e.find(f"{ATOM}title"))),
        summary=plain(_text(summary)),
        link=link,
        categories=tuple(t.strip() for t in terms if t.strip()),
        published_at=_iso(_text(e.find(f"{ATOM}published")) or _text(e.find(f"{ATOM}updated"))),
    )


def _rfc822(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp() if value else None
    except (TypeError, ValueError):
        return None


def _iso(value: str) -> float | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None
    except ValueError:
        return None


class _Stripper(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain(text: str) -> str:
    """Feed text is often HTML (escaped or CDATA): tags out, entities decoded, spaces collapsed."""
    if "<" in text or "&" in text:
        stripper = _Stripper()
        stripper.feed(text)
        stripper.close()
        text = html.unescape("".join(stripper.parts))
    text = "".join(ch for ch in text if ch.isprintable() or ch in " \n\t")
    return re.sub(r"\s+", " ", text).strip()


# -- items → alerts ----------------------------------------------------------------------------
def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def matches(item: ParsedItem, category: str) -> bool:
    wanted = category.casefold()
    return any(c.casefold() == wanted for c in item.categories)


def shorten(text: str, limit: int) -> str:
    """Cut at a word boundary with an ellipsis: feed text is written for a page, not a push."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:.-")
    return (cut or text[: limit - 1]) + "…"


def alert_request(item: FeedItem, topics: Sequence[str]) -> dict[str, object]:
    """The body Newsroom.publish takes; the summary stands in for a missing one."""
    title = shorten(item.title or item.summary, MAX_TITLE)
    body = shorten(item.summary or item.title, MAX_BODY)
    return {"title": title, "body": body, "url": item.link, "topics": list(topics)}


def review_form(item: FeedItem, topics: Sequence[str]) -> dict[str, object]:
    """Hidden fields for the newsroom's review page (the compose form's names)."""
    request = alert_request(item, topics)
    return {
        "title": request["title"],
        "body": request["body"],
        "url": request["url"],
        "topics": list(topics),
        "key": item.alert_key,
        "when": "now",
        "wait_for_article": "yes",
    }
