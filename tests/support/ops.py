"""Test helpers for ops: a webhook receiver, a TCP proxy that can be cut (all on loopback),
stopping processes side by side, promtool with the Prometheus rules it checks, and Debian's
Alertmanager tools."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

from tests.support.services import ROOT, require_service
from tests.support.stack import Process

RULES = ROOT / "deploy/prometheus/newsflash-rules.yml"
# promtool's unit tests for RULES: the stale-backup rule's hours of series have their own file,
# evaluated once a minute instead of every 5 s.
RULE_TESTS = (
    ROOT / "deploy/prometheus/newsflash-rules.test.yml",
    ROOT / "deploy/prometheus/newsflash-backup-rules.test.yml",
)


def rule_test_cases() -> list[dict[str, Any]]:
    """Every test group of every file in RULE_TESTS."""
    return [case for path in RULE_TESTS for case in yaml.safe_load(path.read_text())["tests"]]


class WebhookReceiver:
    """Collects the JSON bodies POSTed to it; `failing` makes it answer 500."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.failing = False
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if receiver.failing:
                    self.send_response(500)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alarms"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self, alarm: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                e
                for e in self.received
                if (alarm is None or e["alarm"] == alarm)
                and (status is None or e["status"] == status)
            ]


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a local service; cut() makes that service unreachable
    (listener closed, live connections dropped) and restore() brings it back on the same port."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        probe.close()
        self.listener: socket.socket | None = None
        self.conns: set[socket.socket] = set()
        self.lock = threading.Lock()

    def restore(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self.lock:
            conns, self.conns = self.conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=3)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                if self.listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self.conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self.lock:
                self.conns.discard(source)
                self.conns.discard(sink)


def stop_all(processes: Sequence[Process], grace_s: float = 10.0) -> None:
    """Stop processes side by side: each may take its whole grace period to shut down."""
    threads = [threading.Thread(target=p.stop, args=(grace_s,)) for p in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def promtool() -> str:
    found = shutil.which("promtool")
    require_service("promtool", found is not None, "make tools, or apt-get install prometheus")
    assert found is not None
    return found


def amtool() -> str:
    return _debian_tool("amtool")


def alertmanager() -> str:
    """The Alertmanager daemon (Debian names it prometheus-alertmanager)."""
    return _debian_tool("prometheus-alertmanager")


def _debian_tool(name: str) -> str:
    found = shutil.which(name)
    require_service(
        name, found is not None, "make tools, or apt-get install prometheus-alertmanager"
    )
    assert found is not None
    return found
