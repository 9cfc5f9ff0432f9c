"""The web server (`newsflash web`): waitress processes sharing one socket, reading whole requests first.

Why waitress and not gunicorn's workers: a sync or gthread worker gives a client its thread
from the first byte of a request to the last, so a few clients sending a byte every few seconds
hold every thread and the app stops answering. Waitress reads and buffers each request on its
event loop, and only a request that has fully arrived is handed to a thread; a slow or idle
client costs a socket and a small buffer, never a thread. On top of waitress' idle timeout a
request must arrive whole within NEWSFLASH_WEB_READ_TIMEOUT_S of its first byte, so a client
that drips bytes forever is cut off too. Several processes accept on one socket bound by the
parent (one per core; each connects at boot), and a process that dies is replaced.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections import deque
from typing import Any

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from config.settings import Settings

# Request heads and bodies are small here (JSON bodies are capped at 8 KB by the app, which
# answers its own JSON 413 up to this size); anything bigger is refused before it is buffered.
MAX_HEADER_BYTES = 32 * 1024
MAX_BODY_BYTES = 64 * 1024
# A process that dies this soon after starting is failing at boot: stop instead of looping.
MIN_CHILD_LIFE_S = 5.0
# What stops the web server, each process finishing the requests in hand.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class DeadlineChannel(HTTPChannel):  # type: ignore[misc]
    """A connection that remembers when the request it is reading began to arrive."""

    reading_since: float | None = None

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.reading_since = time.time()
        result: bool = super().received(data)
        if self.request is None:
            self.reading_since = None
        return result


class DeadlineServer(TcpWSGIServer):  # type: ignore[misc]
    """waitress' server, also closing connections whose request is not whole by the deadline."""

    channel_class = DeadlineChannel
    read_timeout_s = 10.0

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # closes connections idle for longer than channel_timeout
        cutoff = now - self.read_timeout_s
        for channel in list(self.active_channels.values()):
            since = getattr(channel, "reading_since", None)
            if since is not None and since < cutoff and not channel.requests:
                channel.will_close = True


# Requests taken before readers' when a web process's threads are all busy: the newsroom, its
# API and CMS hooks, ops, and what load balancers and Prometheus ask. Readers' requests wait for
# what their table holds (a lock, a slow disk) on the threads; without lanes a surge of them
# queued the newsroom's publish behind it (13 s with a table locked and forty readers retrying).
AHEAD_PATHS = (
    "/editor",
    "/api/v1/alerts",
    "/api/v1/hooks",
    "/api/v1/ops",
    "/ops",
    "/healthz",
    "/readyz",
    "/metrics",
)
# Except the sign-in form's POST: a password hash is the costliest thing an outsider can ask.
NOT_AHEAD = ("/editor/login",)


def goes_ahead(path: str) -> bool:
    """A path at or under one of AHEAD_PATHS (whole segments: /editorial is not /editor)."""

    def under(prefixes: tuple[str, ...]) -> bool:
        return any(path == p or path.startswith(p + "/") for p in prefixes)

    return under(AHEAD_PATHS) and not under(NOT_AHEAD)


class Lanes:
    """waitress' task queue in two lanes (it only appends, pops from the left and counts):
    requests for AHEAD_PATHS are taken first, each lane in arrival order. A task is a
    connection whose first waiting request is the one to serve."""

    def __init__(self) -> None:
        self.ahead: deque[Any] = deque()
        self.rest: deque[Any] = deque()

    def append(self, channel: Any) -> None:
        requests = getattr(channel, "requests", None) or [None]
        path = getattr(requests[0], "path", "") or ""
        (self.ahead if goes_ahead(path) else self.rest).append(channel)

    def popleft(self) -> Any:
        return self.ahead.popleft() if self.ahead else self.rest.popleft()

    def __len__(self) -> int:
        return len(self.ahead) + len(self.rest)


def build_server(app: Any, sock: socket.socket, settings: Settings) -> DeadlineServer:
    adj = Adjustments(
        sockets=[sock],
        threads=settings.web_threads,
        channel_timeout=settings.web_idle_timeout_s,
        cleanup_interval=1,
        connection_limit=settings.web_connection_limit,
        max_request_header_size=MAX_HEADER_BYTES,
        max_request_body_size=MAX_BODY_BYTES,
        # X-Forwarded-* is the app's business (ProxyFix, NEWSFLASH_PROXY_HOPS): pass it through.
        clear_untrusted_proxy_headers=False,
        # poll(), not select(): select() fails once a process has more than 1024 descriptors.
        asyncore_use_poll=True,
        ident="newsflash",
    )
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.queue = Lanes()
    dispatcher.set_thread_count(adj.threads)
    server = DeadlineServer(
        app,
        map={},
        _sock=sock,
        dispatcher=dispatcher,
        adj=adj,
        bind_socket=False,
        sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()),
    )
    server.read_timeout_s = settings.web_read_timeout_s
    return server


def access_logged(app: Any) -> Any:
    """One line per request (address, method, path without the query, status, ms), as before."""
    log = logging.getLogger("newsflash.access")

    def logged(environ: dict[str, Any], start_response: Any) -> Any:
        started = time.perf_counter()
        status = ["-"]

        def start(code: str, headers: Any, exc_info: Any = None) -> Any:
            status[0] = code.split(" ", 1)[0]
            return start_response(code, headers, exc_info)

        try:
            return app(environ, start)
        finally:
            log.info(
                '%s "%s %s" %s %.0fms',
                environ.get("REMOTE_ADDR", "-"),
                environ.get("REQUEST_METHOD", "-"),
                environ.get("PATH_INFO", "-"),
                status[0],
                (time.perf_counter() - started) * 1000,
            )

    return logged


def serve_here(sock: socket.socket, settings: Settings) -> int:
    """Import the app (it connects at boot), then serve on `sock` until SIGTERM, SIGINT or
    SIGHUP (a closed terminal; nothing here reloads)."""
    for stop in STOP_SIGNALS:
        signal.signal(stop, _exit_quietly)
    from service.wsgi import app

    server = build_server(access_logged(app), sock, settings)
    host, port = sock.getsockname()[:2]
    print(
        f"web process {os.getpid()} serving on http://{host}:{port} "
        f"({settings.web_threads} threads)",
        flush=True,
    )
    server.run()  # returns once SystemExit has stopped the loop and the threads
    return 0


def _exit_quietly(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def serve(sock: socket.socket, settings: Settings, processes: int) -> int:
    """Run `processes` server processes on the bound socket; replace one that dies."""
    if processes <= 1:
        return serve_here(sock, settings)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    children: dict[int, float] = {}
    for stop in STOP_SIGNALS:  # sent to this process alone too (`kill -HUP $MAINPID`)
        signal.signal(stop, on_signal)
    for _ in range(processes):
        pid, started = _fork_server(sock, settings)
        children[pid] = started
    status = 0
    while children:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        started = children.pop(pid)
        if stopping:
            continue
        if time.monotonic() - started < MIN_CHILD_LIFE_S:
            print(
                f"newsflash: web process {pid} exited at start-up (status {code}); stopping",
                file=sys.stderr,
            )
            status = 1
            on_signal(signal.SIGTERM, None)
            continue
        new_pid, new_started = _fork_server(sock, settings)
        children[new_pid] = new_started
    return status


def _fork_server(sock: socket.socket, settings: Settings) -> tuple[int, float]:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = serve_here(sock, settings)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid, time.monotonic()
