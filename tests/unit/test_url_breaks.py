"""The nf_url filter: an address shown with line breaks allowed between its parts, escaped (the
item links on the feeds page come from someone else's feed)."""

from __future__ import annotations

from service.editor import url_with_breaks


def test_breaks_come_after_the_host_and_each_slash_of_the_path_and_before_the_query() -> None:
    assert url_with_breaks("https://news.example:8443/category/breaking/feed/?paged=2&x=1") == (
        "https://news.example:8443/<wbr>category/<wbr>breaking/<wbr>feed/<wbr>?paged=2<wbr>&amp;x=1"
    )
    assert url_with_breaks("127.0.0.1:8080/feed/") == "127.0.0.1:8080/<wbr>feed/"


def test_markup_in_an_address_is_shown_as_text() -> None:
    shown = url_with_breaks('http://x.example/"><script>alert(1)</script>')
    assert "<script>" not in shown
    assert "&lt;script&gt;" in shown and "&#34;&gt;" in shown
