"""A publisher's server that trickles its answer holds a fetch no longer than the whole-request
deadline: not while it drips the status line and headers (http.client reads those before our
body loop runs), not while it drips the body. Feeds, the readiness gate and prefill alike."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from core.adapters.articles import HttpArticleFetcher
from core.adapters.fetch import BoundedFetcher, FetchError
from core.errors import ValidationError

DRIP_S = 0.3  # well under the per-read timeout: each receive alone looks healthy
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"


class Trickler:
    """A loopback server that answers one header line (or body byte) every DRIP_S seconds."""

    def __init__(self, in_body: bool) -> None:
        self.in_body = in_body
        self.server = socket.create_server(("127.0.0.1", 0))
        self.origin = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                if self.in_body:
                    conn.sendall(HEAD + b"Content-Length: 200\r\n\r\n<html><head>")
                    drip = [b"x"] * 200
                else:
                    conn.sendall(HEAD)
                    drip = [b"X-Drip: %d\r\n" % i for i in range(90)]
                for piece in drip:
                    if self.stopped.is_set():
                        return
                    conn.sendall(piece)
                    time.sleep(DRIP_S)
                conn.sendall(b"\r\n")
            except OSError:
                return  # the client hung up: what the deadline is for

    def stop(self) -> None:
        self.stopped.set()
        self.server.close()


@pytest.fixture(params=[False, True], ids=["headers", "body"])
def trickler(request: pytest.FixtureRequest) -> Iterator[Trickler]:
    server = Trickler(in_body=request.param)
    yield server
    server.stop()


def _timed(call: Callable[[], object]) -> tuple[float, Exception | None]:
    started = time.monotonic()
    try:
        call()
    except Exception as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


def test_a_feed_fetch_gives_up_at_its_deadline(trickler: Trickler) -> None:
    fetcher = BoundedFetcher([trickler.origin], allow_loopback=True, timeout_s=2, deadline_s=1.5)
    took, error = _timed(lambda: fetcher.get(f"{trickler.origin}/feed"))
    assert isinstance(error, FetchError) and "in time" in error.message, error
    assert took < 4, f"held for {took:.1f} s past a 1.5 s deadline"


def test_a_readiness_probe_gives_up_at_its_deadline(trickler: Trickler) -> None:
    probe = BoundedFetcher([trickler.origin], allow_loopback=True, timeout_s=2, deadline_s=1.5)
    took, error = _timed(lambda: probe.status(f"{trickler.origin}/news/a"))
    if not trickler.in_body:  # a probe reads no body: a status in time is all it needs
        assert isinstance(error, FetchError) and "in time" in error.message, error
    assert took < 4, f"held for {took:.1f} s past a 1.5 s deadline"


def test_prefill_gives_up_at_its_deadline(trickler: Trickler) -> None:
    fetcher = HttpArticleFetcher(
        [trickler.origin], allow_loopback=True, timeout_s=2, deadline_s=1.5
    )
    took, error = _timed(lambda: fetcher.fetch(f"{trickler.origin}/story"))
    assert isinstance(error, ValidationError) and "in time" in error.message, error
    assert error.field == "url"
    assert took < 4, f"held for {took:.1f} s past a 1.5 s deadline"


class HangingResolver:
    """A DNS lookup that does not come back (a resolver dropping our queries)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, host: str, port: int) -> list[str]:
        self.release.wait(10)
        return ["127.0.0.1"]


@pytest.fixture
def hanging() -> Iterator[HangingResolver]:
    resolver = HangingResolver()
    yield resolver
    resolver.release.set()


def test_a_hanging_dns_lookup_is_held_to_the_deadline(hanging: HangingResolver) -> None:
    origin = "http://slow-dns.news.example"
    feed = BoundedFetcher([origin], allow_loopback=True, deadline_s=1, lookup=hanging)
    took, error = _timed(lambda: feed.get(f"{origin}/feed"))
    assert isinstance(error, FetchError) and "in time" in error.message, error
    assert took < 4, f"held for {took:.1f} s past a 1 s deadline"
    prefill = HttpArticleFetcher([origin], allow_loopback=True, deadline_s=1, lookup=hanging)
    took, error = _timed(lambda: prefill.fetch(f"{origin}/story"))
    assert isinstance(error, ValidationError) and "in time" in error.message, error
    assert took < 4, f"held for {took:.1f} s past a 1 s deadline"
