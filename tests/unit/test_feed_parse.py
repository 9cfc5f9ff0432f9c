"""Feed parsing: RSS 2.0 and Atom read safely (no DTDs, no entities), items matched and shaped."""

from __future__ import annotations

import pytest

from core.errors import ValidationError
from core.feeds import (
    FeedError,
    FeedItem,
    ItemState,
    alert_request,
    matches,
    parse_feed,
    parse_feed_input,
    plain,
    shorten,
)
from tests.support.feedsite import atom, rss

SITE = "https://news.example"


def test_rss_items_with_guid_categories_and_html_descriptions() -> None:
    items = parse_feed(
        rss(
            ("wp-101", "Bridge closed", f"{SITE}/a", ["Breaking", "City"]),
            ("wp-100", "Weather", f"{SITE}/b", ["Weather"]),
        )
    )
    assert [i.key for i in items] == ["wp-101", "wp-100"]
    assert items[0].title == "Bridge closed"
    assert items[0].summary == "Bridge closed — the full story."
    assert items[0].categories == ("Breaking", "City")
    assert items[0].published_at is not None
    assert matches(items[0], "breaking") and not matches(items[1], "Breaking")


def test_an_rss_item_without_guid_is_keyed_by_its_link() -> None:
    (item,) = parse_feed(rss(("x", "T", f"{SITE}/only-link", ["Breaking"]), guid=False))
    assert item.key == f"{SITE}/only-link"


def test_atom_entries() -> None:
    (entry,) = parse_feed(atom(("urn:uuid:1", "Polls &amp; results", f"{SITE}/e", ["breaking"])))
    assert entry.key == "urn:uuid:1"
    assert entry.title == "Polls & results"
    assert entry.link == f"{SITE}/e"
    assert entry.categories == ("breaking",)


@pytest.mark.parametrize(
    "document",
    [
        # billion laughs
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><rss><channel><item>'
        b"<title>&b;</title></item></channel></rss>",
        # an external entity reading a local file
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<rss><channel><item><title>&x;</title></item></channel></rss>",
    ],
)
def test_dtds_and_entities_are_refused(document: bytes) -> None:
    with pytest.raises(FeedError) as refused:
        parse_feed(document)
    assert "DTD" in refused.value.message


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (b"<rss><channel><item><title>cut", "not well-formed XML (line 1)"),
        (b"<html><body>not a feed</body></html>", "not an RSS 2.0 or Atom feed"),
        (b"", "not well-formed XML"),
    ],
)
def test_what_is_not_a_feed_says_so(document: bytes, words: str) -> None:
    with pytest.raises(FeedError) as refused:
        parse_feed(document)
    assert words in refused.value.message


LATIN = (
    '<?xml version="1.0"?><rss version="2.0"><channel><item><title>\u201cHabari\u201d za caf\u00e9'
    "</title><guid>k</guid></item></channel></rss>"
).encode("windows-1252")


def test_the_charset_of_an_xml_content_type_decides_the_encoding() -> None:
    """RFC 7303: for XML media types the HTTP charset wins over the XML declaration's default."""
    for content_type in (
        "text/xml; charset=windows-1252",
        'application/rss+xml; charset="Windows-1252"',
        "application/xml;charset=iso-8859-1",  # labelled Latin-1, written as windows-1252
    ):
        (item,) = parse_feed(LATIN, content_type)
        assert item.title == "\u201cHabari\u201d za caf\u00e9", content_type
    declared = LATIN.replace(b'version="1.0"', b'version="1.0" encoding="utf-8"')
    (item,) = parse_feed(declared, "application/rss+xml; charset=windows-1252")
    assert item.title == "\u201cHabari\u201d za caf\u00e9"


def test_a_byte_order_mark_outranks_the_charset() -> None:
    document = (
        "<rss><channel><item><title>Caf\u00e9 \u201cwazi\u201d</title></item></channel></rss>"
    )
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le")):
        data = bom + document.encode(codec)
        (item,) = parse_feed(data, "text/xml; charset=windows-1252")
        assert item.title == "Caf\u00e9 \u201cwazi\u201d", codec


@pytest.mark.parametrize(
    ("content_type", "words"),
    [
        ("text/xml; charset=x-klingon", "charset 'x-klingon'"),
        ("text/xml; charset=base64", "charset 'base64'"),  # a codec, not a text encoding
        ("text/xml; charset=utf-8", "not utf-8 text"),
        (None, "not UTF-8"),
    ],
)
def test_a_wrong_or_missing_charset_is_named_not_called_bad_xml(
    content_type: str | None, words: str
) -> None:
    with pytest.raises(FeedError) as refused:
        parse_feed(LATIN, content_type)
    assert words in refused.value.message
    assert "not well-formed" not in refused.value.message


def test_plain_text_and_shortening() -> None:
    assert plain("<p>A &amp; B</p>\n<script>x</script>  C") == "A & B x C"
    assert shorten("one two three", 9) == "one two…"
    assert len(shorten("x" * 500, 120)) == 120


def test_an_item_becomes_a_request_within_the_limits() -> None:
    item = FeedItem(1, 1, "h" * 64, "T " * 100, "S " * 300, f"{SITE}/a", ItemState.DRAFT, 0.0)
    body = alert_request(item, ["breaking"])
    assert len(str(body["title"])) <= 120 and len(str(body["body"])) <= 300
    assert item.idempotency_key == "newsroom:feed:" + "h" * 40


def test_feed_settings_are_checked_naming_the_field() -> None:
    ok = parse_feed_input(
        {"url": f"{SITE}/feed/", "category": "Breaking"}, [SITE], {"breaking"}, ["breaking"]
    )
    assert ok.mode.value == "review" and ok.topics == ("breaking",)
    for body, field in [
        ({"url": "https://elsewhere.example/feed", "category": "B"}, "feed_url"),
        ({"url": "", "category": "B"}, "feed_url"),
        ({"url": f"{SITE}/feed/", "category": " "}, "category"),
        ({"url": f"{SITE}/feed/", "category": "B", "mode": "often"}, "mode"),
        ({"url": f"{SITE}/feed/", "category": "B", "topics": ["nope"]}, "topics"),
    ]:
        with pytest.raises(ValidationError) as refused:
            parse_feed_input(body, [SITE], {"breaking"}, ["breaking"])
        assert refused.value.field == field
