"""The HTTP/1.1 push sender against the real push stand-in: it decrypts what we send, reuses
connections, speaks TLS, signs VAPID once per origin, and keeps every request bounded."""

from __future__ import annotations

import functools
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core import outcomes
from core.adapters import webpush
from core.adapters.webpush import Http11PushSender, SenderConfig, VapidSigner
from core.base64url import b64url_decode, b64url_encode
from core.ports import PushMessage, PushResult
from standin.server import PushStandin


@pytest.fixture(autouse=True, params=["uvloop", "asyncio"])
def event_loop_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every sender test runs on both loops NEWSFLASH_EVENT_LOOP offers."""
    monkeypatch.setattr(
        sys.modules[__name__],
        "SenderConfig",
        functools.partial(webpush.SenderConfig, event_loop=request.param),
    )
    return str(request.param)


@pytest.fixture(scope="module")
def signer() -> VapidSigner:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return VapidSigner(pem.decode(), "mailto:ops@news.example")


@pytest.fixture(scope="module")
def standin() -> Iterator[PushStandin]:
    s = PushStandin().start()
    yield s
    s.stop()


def message(sub: dict[str, Any], n: int = 1) -> PushMessage:
    data = json.dumps({"id": str(n), "title": f"t{n}"}).encode()
    return PushMessage(
        n, sub["endpoint"], sub["keys"]["p256dh"], sub["keys"]["auth"], data, 120, "high", "story1"
    )


def send(sender: Http11PushSender, messages: Sequence[PushMessage]) -> list[PushResult]:
    results: list[PushResult] = []
    sender.send_all(messages, results.append, lambda: False)
    return results


def test_every_push_arrives_decryptable_with_the_wire_headers(
    standin: PushStandin, signer: VapidSigner
) -> None:
    standin.reset()
    sender = Http11PushSender(signer, SenderConfig(concurrency=8, allow_loopback=True))
    subs = standin.create_subscriptions(30)
    first = send(sender, [message(s, i) for i, s in enumerate(subs)])
    # A second round reuses the kept-alive connections (no new handshake needed to work).
    second = send(sender, [message(s, 100 + i) for i, s in enumerate(subs)])
    sender.close()
    assert sorted(r.status for r in first + second) == [201] * 60
    got = sorted(int(r.payload["id"]) for r in standin.received if r.payload)
    assert got == list(range(30)) + list(range(100, 130))
    for r in standin.received:
        assert r.headers["content-encoding"] == "aes128gcm"
        assert r.headers["ttl"] == "120" and r.headers["urgency"] == "high"
        assert r.headers["topic"] == "story1"
        assert r.vapid_sub == "mailto:ops@news.example"


def test_tls_push_service_with_our_ca(signer: VapidSigner) -> None:
    tls = PushStandin(tls=True).start()
    try:
        sub = tls.create_subscription()
        trusting = Http11PushSender(signer, SenderConfig(allow_loopback=True, ca_file=tls.ca_file))
        [ok] = send(trusting, [message(sub, 1)])
        trusting.close()
        untrusting = Http11PushSender(signer, SenderConfig(allow_loopback=True))
        [refused] = send(untrusting, [message(sub, 2)])
        untrusting.close()
        assert ok.status == 201
        assert refused.status is None and refused.error == "connect"
        assert [r.payload["id"] for r in tls.received if r.payload] == ["1"]
    finally:
        tls.stop()


def test_answers_map_to_status_and_retry_after(standin: PushStandin, signer: VapidSigner) -> None:
    standin.reset()
    sender = Http11PushSender(signer, SenderConfig(allow_loopback=True))
    gone = standin.create_subscription("gone410")
    throttled = standin.create_subscription("throttle", retry_after=7, times=5)
    results = {
        r.subscription_id: r for r in send(sender, [message(gone, 1), message(throttled, 2)])
    }
    sender.close()
    assert results[1].status == 410
    assert results[2].status == 429 and results[2].retry_after == "7"


def test_a_hanging_or_flooding_push_service_is_bounded(
    standin: PushStandin, signer: VapidSigner
) -> None:
    standin.reset()
    sender = Http11PushSender(
        signer, SenderConfig(allow_loopback=True, read_timeout_s=1.0, deadline_s=1.5)
    )
    hang = standin.create_subscription("hang")
    flood = standin.create_subscription("trickle")
    ok = standin.create_subscription()
    started = time.monotonic()
    results = {
        r.subscription_id: r
        for r in send(sender, [message(hang, 1), message(flood, 2), message(ok, 3)])
    }
    elapsed = time.monotonic() - started
    sender.close()
    assert elapsed < 5
    assert results[1].status is None and results[1].error == "timeout"
    assert results[3].status == 201
    assert results[2].status == 200 or results[2].error == "timeout"


def test_a_request_loop_goes_on_after_a_timeout(standin: PushStandin, signer: VapidSigner) -> None:
    # One request loop: the hanging push is cut at its deadline and the same loop then
    # sends the next push (the timeout is the request's, never the whole batch's).
    standin.reset()
    sender = Http11PushSender(
        signer, SenderConfig(concurrency=1, allow_loopback=True, read_timeout_s=0.5, deadline_s=5)
    )
    hang = standin.create_subscription("hang")
    ok = standin.create_subscription()
    started = time.monotonic()
    results = send(sender, [message(hang, 1), message(ok, 2)])
    elapsed = time.monotonic() - started
    sender.close()
    assert [(r.subscription_id, r.status, r.error) for r in results] == [
        (1, None, "timeout"),
        (2, 201, None),
    ]
    assert 0.5 <= results[0].elapsed_s < 1.5 and elapsed < 3
    assert [r.payload["id"] for r in standin.received if r.payload] == ["2"]


def test_redirects_are_never_followed(standin: PushStandin, signer: VapidSigner) -> None:
    standin.reset()
    sender = Http11PushSender(signer, SenderConfig(allow_loopback=True))
    sub = standin.create_subscription("redirect")
    [result] = send(sender, [message(sub)])
    sender.close()
    assert result.status is not None and 300 <= result.status < 400
    assert standin.redirects_followed == 0


def test_names_resolving_to_private_addresses_are_refused_before_connecting(
    signer: VapidSigner,
) -> None:
    asked: list[str] = []

    def lookup(host: str, port: int) -> list[str]:
        # The resolver is the port boundary: this "DNS" answers with private addresses.
        asked.append(host)
        return {"fcm.googleapis.com": ["10.0.0.7"]}.get(host, ["169.254.169.254"])

    sender = Http11PushSender(signer, SenderConfig(allow_loopback=False), lookup=lookup)
    subs = [
        {"endpoint": "https://fcm.googleapis.com/fcm/send/x", "keys": _keys()},
        {"endpoint": "https://updates.push.services.mozilla.com/wpush/v2/x", "keys": _keys()},
        {"endpoint": "https://10.1.2.3/push/x", "keys": _keys()},
    ]
    results = send(sender, [message(s, i) for i, s in enumerate(subs)])
    sender.close()
    assert [r.error for r in sorted(results, key=lambda r: r.subscription_id)] == [
        "refused_address"
    ] * 3
    assert set(asked) == {"fcm.googleapis.com", "updates.push.services.mozilla.com"}


def test_loopback_is_refused_unless_allowed(standin: PushStandin, signer: VapidSigner) -> None:
    standin.reset()
    sub = standin.create_subscription()
    by_name = dict(sub, endpoint=sub["endpoint"].replace("127.0.0.1", "localhost"))
    sender = Http11PushSender(signer, SenderConfig(allow_loopback=False))
    results = send(sender, [message(sub, 1), message(by_name, 2)])
    sender.close()
    assert {r.error for r in results} == {"refused_address"}
    assert standin.attempts == [] and standin.rejected == []


def test_an_endpoint_that_would_inject_headers_is_not_sent(
    standin: PushStandin, signer: VapidSigner
) -> None:
    standin.reset()
    sub = standin.create_subscription()
    evil = dict(sub, endpoint=sub["endpoint"] + " HTTP/1.1\r\nX-Evil: 1")
    userinfo = dict(sub, endpoint=sub["endpoint"].replace("://", "://user:secret@"))
    sender = Http11PushSender(signer, SenderConfig(allow_loopback=True))
    results = send(sender, [message(evil, 1), message(userinfo, 2)])
    sender.close()
    assert [r.error for r in results] == ["invalid", "invalid"] and standin.attempts == []


def _keys() -> dict[str, str]:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    raw = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {
        "p256dh": b64url_encode(raw),
        "auth": b64url_encode(os.urandom(16)),
    }


def test_signer_caches_per_origin_and_renews_before_expiry() -> None:
    now = [1_000_000.0]
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    s = VapidSigner(pem.decode(), "mailto:ops@news.example", clock=lambda: now[0])
    a1 = s.header("https://fcm.googleapis.com")
    assert s.header("https://fcm.googleapis.com") == a1
    b = s.header("https://updates.push.services.mozilla.com")
    assert b != a1

    def claims(header: str) -> dict[str, Any]:
        token = header.split("t=", 1)[1].split(",", 1)[0]
        body = token.split(".")[1]
        return dict(json.loads(b64url_decode(body)))

    assert claims(a1)["aud"] == "https://fcm.googleapis.com"
    assert claims(b)["aud"] == "https://updates.push.services.mozilla.com"
    assert claims(a1)["exp"] - now[0] <= 12 * 3600
    now[0] += 10 * 3600  # still more than an hour left: reused
    assert s.header("https://fcm.googleapis.com") == a1
    now[0] += 1.5 * 3600  # less than an hour left: renewed
    assert s.header("https://fcm.googleapis.com") != a1


class _RawAnswer:
    """A loopback 'push service' that reads one request per connection and answers `raw`."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                seen = b""
                while b"\r\n\r\n" not in seen:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    seen += chunk
                conn.sendall(self.raw)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 201 Created\r\nContent-Length: \xb2\r\n\r\n",  # a superscript two
        b"HTTP/1.1 \xb201 Created\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
        b"HTTP/1.1 429 Too Many\r\nRetry-After: \xb2\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 503 Busy\r\nRetry-After: " + b"9" * 5000 + b"\r\nContent-Length: 0\r\n\r\n",
    ],
)
def test_numbers_int_refuses_are_a_broken_answer_not_a_crash(
    standin: PushStandin, signer: VapidSigner, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """str.isdigit() takes '²' (and 5,000 digits), int() does not: a hostile push service
    sending them gets a failed or retried push, and the next push goes out as usual."""
    hostile = _RawAnswer(raw)
    standin.reset()
    ok = standin.create_subscription()
    sub = {**ok, "endpoint": f"http://127.0.0.1:{hostile.port}/push/x"}
    sender = Http11PushSender(signer, SenderConfig(allow_loopback=True, deadline_s=3))
    try:
        first = send(sender, [message(sub, 1)])
        after = send(sender, [message(ok, 2)])
    finally:
        sender.close()
        hostile.close()
    assert len(first) == 1 and (first[0].error is not None or first[0].status in (429, 503))
    if first[0].status in (429, 503):
        assert outcomes.parse_retry_after(first[0].retry_after, time.time()) is None
    assert [r.status for r in after] == [201]
    assert not [r for r in caplog.records if "unexpectedly" in r.getMessage()], "a known fault"
