"""The feed, readiness and prefill fetchers refuse every target that is not the publisher's public
site, before any connection: off-origin URLs, private or mixed DNS answers, loopback unless
allowed, redirects off the origins. A guard refuses (and records) any non-loopback connect meanwhile."""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from core.adapters.articles import HttpArticleFetcher
from core.adapters.fetch import BoundedFetcher, FetchError
from core.errors import ValidationError
from tests.support.feedsite import FeedSite, Page, rss

_connects: list[Any] = []
_lock = threading.Lock()


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" or not isinstance(args[1], tuple):
        return
    with _lock:
        _connects.append(args[1])
    if not _loopback(str(args[1][0])):
        raise ConnectionRefusedError(f"feed SSRF guard: connect to {args[1][0]} blocked")


sys.addaudithook(_audit)


def _mark() -> int:
    with _lock:
        return len(_connects)


def _since(mark: int) -> list[Any]:
    with _lock:
        return _connects[mark:]


RESOLVES = {
    "news.example": ["10.1.2.3"],
    "meta.news.example": ["169.254.169.254"],
    "mapped.news.example": ["::ffff:127.0.0.1"],
    "nat64.news.example": ["64:ff9b::a9fe:a9fe"],
    "cgnat.news.example": ["100.64.0.1"],
    "zero.news.example": ["0.0.0.0"],
    "ula.news.example": ["fd12::1"],
    "loop.news.example": ["127.0.0.1"],
    # One public and one private answer: a guard that checked only the first would connect.
    "mixed.news.example": ["93.184.216.34", "192.168.1.1"],
    "nothing.news.example": [],
}


class FakeResolver:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        return RESOLVES.get(host, [])


@pytest.fixture(scope="module")
def site() -> Iterator[FeedSite]:
    s = FeedSite().start()
    s.pages["/feed/"] = Page(body=rss(("1", "T", "https://news.example/a", ["Breaking"])))
    yield s
    s.stop()


def test_names_resolving_to_private_addresses_are_refused_before_connecting() -> None:
    origins = [f"https://{name}" for name in RESOLVES]
    resolver = FakeResolver()
    fetcher = BoundedFetcher(origins, allow_loopback=False, lookup=resolver)
    mark = _mark()
    for name in RESOLVES:
        with pytest.raises(FetchError) as refused:
            fetcher.get(f"https://{name}/feed/")
        assert "refused" in refused.value.message or "reach" in refused.value.message, name
        with pytest.raises(FetchError):
            fetcher.status(f"https://{name}/news/a")
    assert _since(mark) == [], "a connection was attempted"
    assert set(resolver.asked) == set(RESOLVES)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/feed/",
        "http://169.254.169.254/latest/meta-data/",
        "https://news.example.evil.example/feed/",
        "https://user:pw@news.example/feed/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "http://[::1]/feed/",
        "http://2130706433/feed/",
    ],
)
def test_urls_off_the_origins_are_refused_before_resolving(url: str) -> None:
    resolver = FakeResolver()
    fetcher = BoundedFetcher(["https://news.example"], allow_loopback=True, lookup=resolver)
    mark = _mark()
    with pytest.raises(FetchError):
        fetcher.get(url)
    assert resolver.asked == [] and _since(mark) == []


def test_loopback_is_refused_unless_the_test_setting_allows_it(site: FeedSite) -> None:
    before = len(site.requests)
    strict = BoundedFetcher([site.origin], allow_loopback=False)
    mark = _mark()
    with pytest.raises(FetchError) as refused:
        strict.get(f"{site.origin}/feed/")
    assert "not public" in refused.value.message
    assert _since(mark) == [] and len(site.requests) == before
    loose = BoundedFetcher([site.origin], allow_loopback=True)
    assert loose.get(f"{site.origin}/feed/").status == 200


def test_a_redirect_off_the_origins_is_not_followed(site: FeedSite) -> None:
    site.pages["/moved"] = Page(302, b"", headers={"Location": "http://10.0.0.1/feed/"})
    fetcher = BoundedFetcher([site.origin], allow_loopback=True)
    mark = _mark()
    with pytest.raises(FetchError) as refused:
        fetcher.get(f"{site.origin}/moved")
    assert "redirects off" in refused.value.message
    assert all(_loopback(str(c[0])) for c in _since(mark))


def test_prefill_keeps_the_same_address_rules(site: FeedSite) -> None:
    """ "Prefill from article" fetches the same publisher's pages: the same refusals, before
    any connection, for private answers and (outside tests) for loopback."""
    resolver = FakeResolver()
    origins = [f"https://{name}" for name in RESOLVES]
    fetcher = HttpArticleFetcher(origins, allow_loopback=False, lookup=resolver)
    mark = _mark()
    for name in RESOLVES:
        with pytest.raises(ValidationError) as refused:
            fetcher.fetch(f"https://{name}/news/a")
        assert refused.value.field == "url", name
        assert "refused" in refused.value.message or "reach" in refused.value.message, name
    assert _since(mark) == [], "a connection was attempted"
    assert set(resolver.asked) == set(RESOLVES)

    site.pages["/story"] = Page(
        body=b"<html><head><title>T</title></head>", content_type="text/html"
    )
    before = len(site.requests)
    with pytest.raises(ValidationError) as refused:
        HttpArticleFetcher([site.origin], allow_loopback=False).fetch(f"{site.origin}/story")
    assert "not public" in refused.value.message and len(site.requests) == before
    page = HttpArticleFetcher([site.origin], allow_loopback=True).fetch(f"{site.origin}/story")
    assert "<title>T</title>" in page


def test_an_unreachable_first_address_falls_back_to_the_next_checked_one(site: FeedSite) -> None:
    """A name answering ::1 (AAAA, on a host where nothing listens there or without IPv6) before
    127.0.0.1 (A, where the site listens): the fetch goes on to the second checked address."""
    port = site.server_address[1]
    with pytest.raises(OSError):  # the premise: nothing on [::1] at the site's port
        socket.create_connection(("::1", port), timeout=1).close()
    origin = f"http://dual.news.example:{port}"
    answers = {"dual.news.example": ["::1", "127.0.0.1"]}
    site.pages["/story"] = Page(
        body=b"<html><head><title>T</title></head>", content_type="text/html"
    )

    def lookup(host: str, port: int) -> Sequence[str]:
        return answers[host]

    mark = _mark()
    feed = BoundedFetcher([origin], allow_loopback=True, lookup=lookup).get(f"{origin}/feed/")
    assert feed.status == 200 and b"<rss" in feed.body
    assert [c[0] for c in _since(mark)] == ["::1", "127.0.0.1"]
    page = HttpArticleFetcher([origin], allow_loopback=True, lookup=lookup).fetch(f"{origin}/story")
    assert "<title>T</title>" in page

    # Every answer is checked before the first connection: a private third answer refuses all.
    answers["dual.news.example"] = ["::1", "127.0.0.1", "10.1.2.3"]
    mark = _mark()
    with pytest.raises(FetchError) as refused:
        BoundedFetcher([origin], allow_loopback=True, lookup=lookup).get(f"{origin}/feed/")
    assert "not public" in refused.value.message and _since(mark) == []
