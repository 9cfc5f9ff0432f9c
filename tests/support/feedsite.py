"""A publisher's site on loopback for feed and readiness tests: pages that change on demand."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Page:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: str | None = None  # answered with 304 when If-None-Match matches
    chunked: bool = False  # no Content-Length: the size cap must hold while reading
    headers: dict[str, str] = field(default_factory=dict)


class FeedSite(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.pages: dict[str, Page] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> FeedSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def hits(self, path: str) -> list[dict[str, str]]:
        return [h for p, h in self.requests if p == path]


class _Handler(BaseHTTPRequestHandler):
    server: FeedSite

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append((self.path, dict(self.headers.items())))
        page = self.server.pages.get(self.path, Page(404, b"missing", "text/plain"))
        if page.etag is not None and self.headers.get("If-None-Match") == page.etag:
            self.send_response(304)
            self.send_header("ETag", page.etag)
            self.end_headers()
            return
        self.send_response(page.status)
        self.send_header("Content-Type", page.content_type)
        if page.etag is not None:
            self.send_header("ETag", page.etag)
            self.send_header("Last-Modified", formatdate(usegmt=True))
        for name, value in page.headers.items():
            self.send_header(name, value)
        if page.chunked:
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for start in range(0, len(page.body), 65536):
                    self.wfile.write(page.body[start : start + 65536])
            except OSError:
                pass  # the client stopped reading at its cap
            return
        self.send_header("Content-Length", str(len(page.body)))
        self.end_headers()
        self.wfile.write(page.body)


def rss(*items: tuple[str, str, str, list[str]], guid: bool = True) -> bytes:
    """items: (guid, title, link, categories) → an RSS 2.0 document as WordPress writes one."""
    parts = []
    for key, title, link, categories in items:
        cats = "".join(f"<category><![CDATA[{c}]]></category>" for c in categories)
        guid_el = f'<guid isPermaLink="false">{key}</guid>' if guid else ""
        parts.append(
            f"<item><title>{title}</title><link>{link}</link>{guid_el}"
            f"<pubDate>Mon, 30 Nov 2026 20:00:00 +0000</pubDate>{cats}"
            f"<description><![CDATA[<p>{title} &mdash; the full story.</p>]]></description></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        "<title>The Courier</title><link>https://news.example/</link>"
        + "".join(parts)
        + "</channel></rss>"
    ).encode()


def atom(*entries: tuple[str, str, str, list[str]]) -> bytes:
    parts = []
    for key, title, link, categories in entries:
        cats = "".join(f'<category term="{c}"/>' for c in categories)
        parts.append(
            f'<entry><id>{key}</id><title type="html">{title}</title>'
            f'<link rel="alternate" href="{link}"/><updated>2026-11-30T20:00:00Z</updated>'
            f"{cats}<summary>{title}: what we know.</summary></entry>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>The Courier</title><id>urn:courier</id><updated>2026-11-30T20:00:00Z</updated>"
        + "".join(parts)
        + "</feed>"
    ).encode()
