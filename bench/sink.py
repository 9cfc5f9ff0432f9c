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
import os
import signal
import socket
import ssl
import sys
import time
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs, urlsplit

from service.listeners import ListenError, open_listener

MARKS = (0.5, 0.9, 1.0)
MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024


class Counts:
    """What arrived this round."""

    def __init__(self, expect: int = 0) -> None:
        self.reset(expect)

    def reset(self, expect: int) -> None:
        self.expect = expect
        self.seen = bytearray(max(expect, 0))
        self.received = 0
        self.distinct = 0
        self.duplicates = 0
        self.out_of_range = 0
        self.bad = 0
        self.naive = 0
        self.bytes = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.marks: dict[str, float] = {}
        self.started_at = time.time()

    def push(self, index: int, ok: bool, size: int) -> None:
        now = time.time()
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
                for mark in MARKS:
                    key = str(int(mark * 100))
                    if key not in self.marks and self.distinct >= mark * self.expect:
                        self.marks[key] = now
        else:
            self.out_of_range += 1

    def as_json(self) -> dict[str, object]:
        return {
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
            "started_at": self.started_at,
            "pid": os.getpid(),
        }


_CREATED = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nLocation: /m/1\r\n\r\n"
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

    def __init__(self, counts: Counts, latency_s: float) -> None:
        self.counts = counts
        self.latency_s = latency_s
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()

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
                self.counts.push(index, ok, length)
            if self.latency_s > 0:
                self.loop.call_later(self.latency_s, self._reply, _CREATED)
            else:
                self._reply(_CREATED)
            return
        if target.startswith("/_sink/stats"):
            self._json(200, self.counts.as_json())
            return
        if target.startswith("/_sink/reset") and method == b"post":
            query = parse_qs(urlsplit(target).query)
            self.counts.reset(int(query.get("expect", ["0"])[0]))
            self._json(200, self.counts.as_json())
            return
        self._reply(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

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


async def serve(
    sock: socket.socket, latency_s: float, cert: Path | None, key: Path | None, expect: int
) -> None:
    counts = Counts(expect)
    context = None
    if cert is not None and key is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SinkProtocol(counts, latency_s), sock=sock, ssl=context, backlog=2048
    )
    host, port = sock.getsockname()[:2]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"sink listening on {host}:{port} tls={context is not None}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--expect", type=int, default=0)
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
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
