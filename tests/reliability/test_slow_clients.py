"""Slow and idle clients against the real web server (`newsflash web`): others are still served.

Fifty clients send a request head and then one body byte every second, others send their head
a byte at a time, others connect and say nothing. While they hang on, /healthz and a subscribe
must answer within the issue's bound (1 s), and every one of them is cut off by the server's own
deadlines (NEWSFLASH_WEB_READ_TIMEOUT_S, NEWSFLASH_WEB_IDLE_TIMEOUT_S) instead of holding on.
Before waitress, two such clients stalled /healthz for 30 s (gunicorn's two sync workers).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.services import free_port, make_env
from tests.support.stack import Process, wait_until

pytestmark = pytest.mark.timeout(180)

SLOW_BODY_CLIENTS = 50
SLOW_HEAD_CLIENTS = 20
IDLE_CLIENTS = 20
READ_TIMEOUT_S = 4.0
IDLE_TIMEOUT_S = 4.0
BOUND_S = 1.0  # the bound for /healthz and a subscribe while the slow clients hang on


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _subscription() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    raw = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return json.dumps(
        {
            "endpoint": f"http://127.0.0.1:9/push/{_b64(os.urandom(12))}",
            "expirationTime": None,
            "keys": {"p256dh": _b64(raw), "auth": _b64(os.urandom(16))},
            "topics": ["breaking"],
        }
    ).encode()


@pytest.fixture(scope="module")
def web_process(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, vapid_pem: str
) -> Iterator[tuple[int, Process]]:
    """`newsflash web` as `make run` starts it (two processes), on a free loopback port."""
    tmp = tmp_path_factory.mktemp("slow")
    env = make_env(
        tmp / "var",
        f"sqlite:///{tmp}/nf.db",
        redis_url,
        vapid_pem,
        WEB_READ_TIMEOUT_S=str(READ_TIMEOUT_S),
        WEB_IDLE_TIMEOUT_S=str(IDLE_TIMEOUT_S),
        RATE_LIMIT_SUBSCRIBE="1000 per minute",
    )
    upgrade = Process("db-upgrade", ["db", "upgrade"], env, tmp / "logs")
    assert upgrade.proc.wait(timeout=60) == 0, upgrade.output()
    upgrade.stop()
    port = free_port()
    proc = Process("web", ["web", "--port", str(port), "--workers", "2"], env, tmp / "logs")
    try:
        wait_until(lambda: proc.output().count("serving on") >= 2 or not proc.alive(), 60, "web")
        assert proc.alive(), proc.output()
        yield port, proc
    finally:
        proc.stop()


@pytest.fixture
def web(web_process: tuple[int, Process]) -> int:
    return web_process[0]


@dataclass
class SlowClient:
    """One socket fed by a thread: a request head, then a byte per `interval_s`, until cut off."""

    port: int
    head: bytes
    drip: bytes
    interval_s: float = 1.0
    sock: socket.socket = field(init=False)
    cut_off_after_s: float | None = None

    def start(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.sock.sendall(self.head)
        self._started = time.monotonic()

    def dribble(self, stop: threading.Event) -> None:
        for byte in self.drip:
            if stop.wait(self.interval_s):
                return
            try:
                self.sock.sendall(bytes([byte]))
            except OSError:
                self._mark_cut_off()
                return
            if self._closed_by_server():
                self._mark_cut_off()
                return

    def _closed_by_server(self) -> bool:
        self.sock.setblocking(False)
        try:
            return self.sock.recv(1) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True
        finally:
            self.sock.setblocking(True)

    def _mark_cut_off(self) -> None:
        if self.cut_off_after_s is None:
            self.cut_off_after_s = time.monotonic() - self._started


def _slow_body(port: int) -> SlowClient:
    body = _subscription()
    head = (
        b"POST /api/v1/subscriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    return SlowClient(port, head, body)


def _slow_head(port: int) -> SlowClient:
    return SlowClient(
        port, b"G", b"ET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
    )


def _idle(port: int) -> SlowClient:
    return SlowClient(port, b"", b"", interval_s=0.5)


def _timed(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, float]:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        status = conn.getresponse().status
    finally:
        conn.close()
    return status, time.monotonic() - started


def test_slow_and_idle_clients_neither_stall_others_nor_hang_on(web: int) -> None:
    clients = (
        [_slow_body(web) for _ in range(SLOW_BODY_CLIENTS)]
        + [_slow_head(web) for _ in range(SLOW_HEAD_CLIENTS)]
        + [_idle(web) for _ in range(IDLE_CLIENTS)]
    )
    stop = threading.Event()
    threads = []
    for client in clients:
        client.start()
        thread = threading.Thread(target=client.dribble, args=(stop,), daemon=True)
        thread.start()
        threads.append(thread)
    try:
        time.sleep(1.5)  # every slow client has sent its head and a byte or two of what follows
        answers = [_timed(web, "GET", "/healthz") for _ in range(5)]
        answers += [_timed(web, "POST", "/api/v1/subscriptions", _subscription()) for _ in range(5)]
        print(
            f"\nwith {len(clients)} slow clients: "
            + ", ".join(f"{s} in {t * 1000:.0f} ms" for s, t in answers)
        )
        assert [s for s, _ in answers] == [200] * 5 + [201] * 5
        assert max(t for _, t in answers) < BOUND_S
        # Each slow client is cut off by a deadline (read or idle, plus the 1 s sweep), none
        # lasts: they would otherwise drip for the 100+ s their bytes take.
        bound_s = max(READ_TIMEOUT_S, IDLE_TIMEOUT_S) + 4
        wait_until(
            lambda: all(c.cut_off_after_s is not None for c in clients if c.drip),
            bound_s + 2,
            "the server to cut off every slow client",
        )
        for idle in (c for c in clients if not c.drip):
            assert idle.sock.recv(1) == b"", "an idle connection was not closed"
        slowest = max(c.cut_off_after_s or 0.0 for c in clients)
        print(f"slow clients cut off after {slowest:.1f} s at most")
        assert slowest <= bound_s
        assert _timed(web, "GET", "/healthz")[0] == 200
    finally:
        stop.set()
        for client in clients:
            client.sock.close()
        for thread in threads:
            thread.join(timeout=5)


def test_a_body_over_the_servers_limit_is_refused_before_it_is_read(web: int) -> None:
    """A client announcing a huge body is answered 413 at once, nothing buffered."""
    with socket.create_connection(("127.0.0.1", web), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/subscriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]


def test_idle_clients_get_no_thread_so_a_full_pool_still_answers(web: int, tmp_path: Path) -> None:
    """More idle connections than the server has threads (2 processes x 8): still answered."""
    socks = [socket.create_connection(("127.0.0.1", web), timeout=5) for _ in range(40)]
    try:
        status, took = _timed(web, "GET", "/healthz")
        assert status == 200 and took < BOUND_S
    finally:
        for sock in socks:
            sock.close()


def test_a_killed_web_process_is_replaced(web_process: tuple[int, Process]) -> None:
    port, proc = web_process
    children = psutil.Process(proc.pid).children()
    assert len(children) == 2, proc.output()
    time.sleep(5)  # past the start-up window in which a dying process stops the whole command
    children[0].kill()
    wait_until(
        lambda: (
            len(psutil.Process(proc.pid).children()) == 2
            and children[0].pid not in {c.pid for c in psutil.Process(proc.pid).children()}
        ),
        30,
        "a replacement web process",
    )
    wait_until(lambda: proc.output().count("serving on") >= 3, 30, "the replacement to serve")
    assert proc.alive()
    for _ in range(10):
        assert _timed(port, "GET", "/healthz")[0] == 200
