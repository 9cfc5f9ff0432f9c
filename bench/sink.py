"""A tiny, fast push sink on loopback: answers 201, counts, optional latency and TLS.

It stands in for a push service in the fan-out benchmark. It does not decrypt (the push
stand-in in standin/ does that for the tests); it checks the web-push headers are there,
counts every push by the subscriber index in its path (/push/<i>), and remembers when 50 %,
90 % and 100 % of the expected pushes had arrived. Pushes to /naive/<i> (the naive loop) are
counted apart. GET /_sink/stats answers JSON; POST /_sink/reset?expect=N starts a new round.

One asyncio process on raw protocols: about 20 µs of CPU per request, far below the sender's.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import json
import math
import os
import random
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs, urlsplit

from service.listeners import ListenError, open_listener

MARKS = (0.5, 0.9, 1.0)
HOST_MARKS = (0.5, 0.9, 0.99, 1.0)
CURVE_STEPS_PER_S = 4
# Answers due later are written per millisecond (Later): 200 slots a second (5 ms) cut the
# sink's CPU per answer by a sixth and raised the realistic rate 5 %, but bunched the answers
# into bursts that real push services do not send (docs/capacity.md); a millisecond does not.
LATER_SLOTS_PER_S = 1000
MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class HostProfile:
    """How one stand-in push service answers in the realistic profile."""

    name: str
    address: str
    share: float  # of the audience
    latency_s: float
    jitter_s: float  # answer time uniform in latency ± jitter
    tail: float = 0.01  # this share of answers takes TAIL_S
    unavailable: float = 0.005  # this share of answers is 503 (retried until delivered)
    throttles: bool = False  # answers 429 with Retry-After for THROTTLE_S mid-run


TAIL_S = 2.0
GONE_SHARE = 0.03
THROTTLE_S = 10.0
THROTTLE_AT = 0.5  # the throttling host answers 429 from the middle of the run (half arrived)
REALISTIC = (
    HostProfile("fcm", "127.0.0.2", 0.70, 0.060, 0.030),
    HostProfile("mozilla", "127.0.0.3", 0.15, 0.120, 0.060, throttles=True),
    HostProfile("apple", "127.0.0.4", 0.10, 0.200, 0.100),
    HostProfile("windows", "127.0.0.5", 0.05, 0.150, 0.080),
)


def _spread(index: int, salt: int) -> float:
    """A fixed pseudo-random number in [0, 1) per subscriber and salt (splitmix64), the same
    in the bench and the sink; independent across salts, so the expired subscriptions are
    spread over the push services like everyone else."""
    x = (index * 0x9E3779B97F4A7C15 + salt * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (x ^ (x >> 31)) / 2**64


def realistic_host(index: int) -> HostProfile:
    """Which push service subscriber `index` is on (audience shares as REALISTIC)."""
    at = _spread(index, 1)
    for profile in REALISTIC:
        if at < profile.share:
            return profile
        at -= profile.share
    return REALISTIC[-1]


def realistic_gone(index: int) -> bool:
    """GONE_SHARE of subscriptions are expired: their push service answers 410 every time."""
    return _spread(index, 2) < GONE_SHARE


DAY_S = 86400.0
# How long ago each subscription was last seen (subscribe, resubscribe, topic change):
# (share of the audience, from, to days).
AGES = ((0.35, 0.0, 7.0), (0.25, 8.0, 30.0), (0.40, 31.0, 365.0))
LIVE_DAYS = 30.0  # "live" readers: seen within this many days (the ones likely to see it)


def realistic_age_s(index: int) -> float:
    """Subscriber `index`'s last-seen age in seconds (the realistic profile's AGES)."""
    at = _spread(index, 3)
    for share, low, high in AGES:
        if at < share:
            return (low + (high - low) * _spread(index, 4)) * DAY_S
        at -= share
    low, high = AGES[-1][1:]
    return (low + (high - low) * _spread(index, 4)) * DAY_S


def realistic_live(index: int) -> bool:
    return realistic_age_s(index) <= LIVE_DAYS * DAY_S


class Counts:
    """What arrived this round."""

    def __init__(self, expect: int = 0, realistic: bool = False) -> None:
        self.realistic = realistic
        self.reset(expect)

    def reset(self, expect: int, held: int = 0) -> None:
        self.subscribers = expect
        # Realistic: the expired subscriptions are never delivered; the marks count the rest.
        # `held`: readers in their quiet hours (bench fanout --quiet-share) get it later.
        self.gone = bytearray(
            1 if self.realistic and realistic_gone(i) else 0 for i in range(max(expect, 0))
        )
        self.expect = (len(self.gone) - sum(self.gone) if self.realistic else expect) - held
        self.seen = bytearray(max(expect, 0))
        # Realistic: which subscribers are live (seen within LIVE_DAYS) and deliverable; the
        # live marks say when 50/90/100 % of them had their push.
        self.live = bytearray(
            1 if self.realistic and not self.gone[i] and realistic_live(i) else 0
            for i in range(max(expect, 0))
        )
        self.live_expect = sum(self.live)
        self.live_distinct = 0
        self.live_marks = Marks(self.live_expect)
        # Realistic: when 50/90/99/100 % of each push service's deliverable readers had their
        # push (how long a throttled service's readers wait after its hold ends).
        per_host: dict[str, int] = {p.name: 0 for p in REALISTIC} if self.realistic else {}
        if self.realistic:
            for i in range(len(self.gone)):
                if not self.gone[i]:
                    per_host[realistic_host(i).name] += 1
        self.host_marks = {name: Marks(n, HOST_MARKS) for name, n in per_host.items()}
        self.host_distinct = dict.fromkeys(per_host, 0)
        self.hosts: dict[str, dict[str, float | int | None]] = {
            p.name: {
                "delivered": 0,
                "gone": 0,
                "unavailable": 0,
                "throttled": 0,
                "tail": 0,
                "first_at": None,
                "last_at": None,
            }
            for p in REALISTIC
        }
        self.throttle_from: float | None = None
        self.arrived = 0  # answers begun: the throttle's "middle of the run" counts these
        self.received = 0
        self.distinct = 0
        self.duplicates = 0
        self.out_of_range = 0
        self.bad = 0
        self.naive = 0
        self.bytes = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.marks = Marks(self.expect)
        # First deliveries per 1/CURVE_STEPS_PER_S s from the first one: the rate curve.
        self.curve: list[int] = []
        self.started_at = time.time()

    def push(self, index: int, ok: bool, size: int, now: float | None = None) -> bool:
        """Count one push; True when it is this subscriber's first."""
        now = time.time() if now is None else now
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        self.received += 1
        self.bytes += size
        if not ok:
            self.bad += 1
        if 0 <= index < len(self.seen):
            if self.seen[index]:
                self.duplicates += 1
            else:
                self.seen[index] = 1
                self.distinct += 1
                self.marks.arrived(self.distinct, now)
                step = int((now - self.first_at) * CURVE_STEPS_PER_S)
                curve = self.curve
                while len(curve) <= step:
                    curve.append(0)
                curve[step] += 1
                if self.live[index]:
                    self.live_distinct += 1
                    self.live_marks.arrived(self.live_distinct, now)
                return True
        else:
            self.out_of_range += 1
        return False

    def answer(self, profile: HostProfile, index: int) -> tuple[bytes, float]:
        """The realistic answer for one well-formed push: (response, delay before it)."""
        now = time.time()
        host = self.hosts[profile.name]
        self.arrived += 1
        if profile.throttles:
            # By arrivals, not deliveries: with a full pipeline every push of a small run can
            # arrive before half are answered, and the throttle would then never start.
            if self.throttle_from is None and self.arrived >= THROTTLE_AT * self.expect > 0:
                self.throttle_from = now
            if self.throttle_from is not None and now - self.throttle_from < THROTTLE_S:
                host["throttled"] = int(host["throttled"] or 0) + 1
                return _THROTTLED, 0.0
        delay = profile.latency_s + random.uniform(-profile.jitter_s, profile.jitter_s)
        if random.random() < profile.tail:
            host["tail"] = int(host["tail"] or 0) + 1
            delay = TAIL_S
        if self.gone[index] if 0 <= index < len(self.gone) else realistic_gone(index):
            host["gone"] = int(host["gone"] or 0) + 1
            return _GONE, delay
        if random.random() < profile.unavailable:
            host["unavailable"] = int(host["unavailable"] or 0) + 1
            return _UNAVAILABLE, delay
        return _CREATED, delay

    def delivered(self, profile: HostProfile, index: int, size: int, ok: bool) -> None:
        """Counted when the 201 goes out (after the answer time), as a push service would."""
        host = self.hosts[profile.name]
        now = time.time()
        host["delivered"] = int(host["delivered"] or 0) + 1
        if host["first_at"] is None:
            host["first_at"] = now
        host["last_at"] = now
        if self.push(index, ok, size, now) and profile.name in self.host_marks:
            self.host_distinct[profile.name] += 1
            self.host_marks[profile.name].arrived(self.host_distinct[profile.name], now)

    def as_json(self) -> dict[str, object]:
        return {
            "subscribers": self.subscribers,
            "realistic": self.realistic,
            "hosts": self.hosts if self.realistic else {},
            "throttle_from": self.throttle_from,
            "expect": self.expect,
            "received": self.received,
            "distinct": self.distinct,
            "duplicates": self.duplicates,
            "out_of_range": self.out_of_range,
            "bad": self.bad,
            "naive": self.naive,
            "bytes": self.bytes,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "marks": self.marks,
            "curve": self.curve,
            "live_expect": self.live_expect,
            "live_distinct": self.live_distinct,
            "live_marks": self.live_marks,
            "host_marks": self.host_marks,
            "started_at": self.started_at,
            "pid": os.getpid(),
        }


class Marks(dict[str, float]):
    """When 50, 90 and 100 % (or `marks`) of `expect` had arrived ("50": time, ...)."""

    def __init__(self, expect: int, marks: tuple[float, ...] = MARKS) -> None:
        super().__init__()
        self._todo = [(str(int(mark * 100)), mark * expect) for mark in marks]

    def arrived(self, count: int, now: float) -> None:
        while self._todo and count >= self._todo[0][1]:
            self[self._todo.pop(0)[0]] = now


class Later:
    """Answers due later, grouped per millisecond: one timer per millisecond that has answers
    instead of one per answer. The stand-in's CPU is taken from the workers it measures, and a
    real push service's timers are not on the sender's machine; a millisecond is far below
    the answer times' jitter."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.due: dict[int, list[tuple[Callable[..., None], tuple[object, ...]]]] = {}

    def call(self, delay_s: float, callback: Callable[..., None], *args: object) -> None:
        slot = math.ceil((self.loop.time() + delay_s) * LATER_SLOTS_PER_S)
        bucket = self.due.get(slot)
        if bucket is None:
            bucket = self.due[slot] = []
            self.loop.call_at(slot / LATER_SLOTS_PER_S, self._fire, slot)
        bucket.append((callback, args))

    def _fire(self, slot: int) -> None:
        for callback, args in self.due.pop(slot, ()):
            callback(*args)


_CREATED = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nLocation: /m/1\r\n\r\n"
_GONE = b"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n"
_UNAVAILABLE = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
_THROTTLED = (
    b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: %d\r\nContent-Length: 0\r\n\r\n"
    % int(THROTTLE_S)
)
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def _header(head: bytes, name: bytes) -> bytes | None:
    """A header's value from a lower-cased request head (first occurrence), or None."""
    at = head.find(b"\r\n" + name + b":")
    if at < 0:
        return None
    start = at + len(name) + 3
    stop = head.find(b"\r\n", start)
    return head[start : stop if stop >= 0 else len(head)].strip()


class SinkProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, just enough of it for web push and the control calls.

    The sink shares the machine's cores with the workers it measures, so it reads only what it
    checks: the request line and four headers, found in the lower-cased head."""

    def __init__(
        self,
        counts: Counts,
        latency_s: float,
        profile: HostProfile | None = None,
        later: Later | None = None,
    ) -> None:
        self.counts = counts
        self.latency_s = latency_s
        self.profile = profile
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.later = later or Later(asyncio.get_running_loop())

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self._reply(_BAD, close=True)
                return
            head = bytes(buffer[:end]).lower()
            raw_length = _header(head, b"content-length")
            if raw_length is None:
                raw_length = b"0"
            length = int(raw_length) if raw_length.isdigit() else -1
            if not 0 <= length <= MAX_BODY:
                self._reply(_BAD, close=True)
                return
            if len(buffer) < end + 4 + length:
                return
            del buffer[: end + 4 + length]
            line_end = head.find(b"\r\n")
            parts = (head[:line_end] if line_end >= 0 else head).split(b" ")
            if len(parts) != 3:
                self._reply(_BAD, close=True)
                return
            self._handle(parts[0], parts[1].decode("latin-1"), head, length)

    def _handle(self, method: bytes, target: str, head: bytes, length: int) -> None:
        if target.startswith("/push/") or target.startswith("/naive/"):
            ttl = _header(head, b"ttl")
            ok = (
                method == b"post"
                and _header(head, b"content-encoding") == b"aes128gcm"
                and (_header(head, b"authorization") or b"").startswith(b"vapid t=")
                and ttl is not None
                and ttl.isdigit()
                and int(ttl) > 0
                and 0 < length <= 4096
            )
            if target.startswith("/naive/"):
                self.counts.naive += 1
                if not ok:
                    self.counts.bad += 1
            else:
                try:
                    index = int(target[6:])
                except ValueError:
                    index = -1
                if self.profile is not None and ok:
                    raw, delay = self.counts.answer(self.profile, index)
                    if raw is _CREATED:
                        self.later.call(delay, self._deliver, index, length)
                    elif delay > 0:
                        self.later.call(delay, self._reply, raw)
                    else:
                        self._reply(raw)
                    return
                self.counts.push(index, ok, length)
            if self.latency_s > 0:
                self.later.call(self.latency_s, self._reply, _CREATED)
            else:
                self._reply(_CREATED)
            return
        if target.startswith("/_sink/stats"):
            self._json(200, self.counts.as_json())
            return
        if target.startswith("/_sink/reset") and method == b"post":
            query = parse_qs(urlsplit(target).query)
            self.counts.reset(int(query.get("expect", ["0"])[0]), int(query.get("held", ["0"])[0]))
            self._json(200, self.counts.as_json())
            return
        self._reply(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    def _deliver(self, index: int, length: int) -> None:
        assert self.profile is not None
        self.counts.delivered(self.profile, index, length, True)
        self._reply(_CREATED)

    def _json(self, status: int, data: dict[str, object]) -> None:
        raw = json.dumps(data).encode()
        self._reply(
            f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(raw)}\r\n\r\n".encode()
            + raw
        )

    def _reply(self, raw: bytes, close: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(raw)
        if close:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (the workers trust it as a CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "newsflash bench sink")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "sink-cert.pem"
    key_path = directory / "sink-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _factory(counts: Counts, profile: HostProfile, later: Later) -> Callable[[], SinkProtocol]:
    return lambda: SinkProtocol(counts, 0.0, profile, later)


async def serve(
    sock: socket.socket,
    latency_s: float,
    cert: Path | None,
    key: Path | None,
    expect: int,
    hosts: list[tuple[socket.socket, HostProfile]] | None = None,
) -> None:
    hosts = hosts or []
    counts = Counts(expect, realistic=bool(hosts))
    context = None
    if cert is not None and key is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    later = Later(loop)
    servers = [
        await loop.create_server(
            lambda: SinkProtocol(counts, latency_s, None, later),
            sock=sock,
            ssl=context,
            backlog=2048,
        )
    ]
    for host_sock, profile in hosts:
        servers.append(
            await loop.create_server(
                _factory(counts, profile, later), sock=host_sock, ssl=context, backlog=2048
            )
        )
    host, port = sock.getsockname()[:2]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    names = "".join(f", {p.name} on {p.address}" for _s, p in hosts)
    print(f"sink listening on {host}:{port}{names} tls={context is not None}", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument(
        "--profile",
        choices=["plain", "realistic"],
        default="plain",
        help="realistic: four push services on 127.0.0.2-5 (same port), see REALISTIC",
    )
    args = parser.parse_args(argv)
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        print(
            f"sink: --host {args.host} is not a loopback address; the sink listens on loopback only",
            file=sys.stderr,
        )
        return 2
    try:
        sock = open_listener(args.host, args.port, "pass --port", backlog=2048)
    except ListenError as exc:
        print(f"sink: {exc}", file=sys.stderr)
        return 2
    hosts: list[tuple[socket.socket, HostProfile]] = []
    if args.profile == "realistic":
        port = sock.getsockname()[1]
        try:
            for profile in REALISTIC:
                hosts.append((open_listener(profile.address, port, "pass --port", 2048), profile))
        except ListenError as exc:
            print(f"sink: {exc}", file=sys.stderr)
            return 2
    run = asyncio.run
    try:  # the sink's own CPU is taken from the workers it measures: the leaner loop
        import uvloop

        run = uvloop.run
    except ImportError:
        pass
    run(
        serve(
            sock,
            args.latency_ms / 1000.0,
            Path(args.cert) if args.cert else None,
            Path(args.key) if args.key else None,
            args.expect,
            hosts,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
