"""The aiohttp sender against the real push stand-in: headers, VAPID reuse, bounds, SSRF refusal."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core.adapters.webpush import AiohttpPushSender, SenderConfig, VapidSigner
from core.ports import PushMessage, PushResult
from standin.server import PushStandin


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


def message(sub: dict[str, Any], n: int = 1, payload: dict[str, Any] | None = None) -> PushMessage:
    data = json.dumps(payload or {"id": str(n), "title": "t"}).encode()
    return PushMessage(
        n,
        sub["endpoint"],
        sub["keys"]["p256dh"],
        sub["keys"]["auth"],
        data,
        120,
        "high",
        "storyKey1",
    )


def send(sender: AiohttpPushSender, messages: Sequence[PushMessage]) -> list[PushResult]:
    results: list[PushResult] = []
    sender.send_all(messages, results.append, lambda: False)
    return results


def test_many_messages_one_signature_per_origin(standin: PushStandin, signer: VapidSigner) -> None:
    standin.reset()
    sender = AiohttpPushSender(signer, SenderConfig(concurrency=20, allow_loopback=True))
    subs = standin.create_subscriptions(40)
    results = send(sender, [message(s, i) for i, s in enumerate(subs)])
    sender.close()
    assert sorted(r.status for r in results) == [201] * 40
    got = standin.received
    assert len(got) == 40
    assert len({r.headers["authorization"] for r in got}) == 1, (
        "VAPID header was re-signed per message"
    )
    first = got[0].headers
    assert first["ttl"] == "120" and first["urgency"] == "high" and first["topic"] == "storyKey1"
    assert (
        first["content-encoding"] == "aes128gcm"
        and first["content-type"] == "application/octet-stream"
    )
    bodies = {r.raw_len for r in got}
    assert all(n <= 4096 for n in bodies)


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
    import base64

    def claims(header: str) -> dict[str, Any]:
        token = header.split("t=", 1)[1].split(",", 1)[0]
        body = token.split(".")[1]
        return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))

    assert claims(a1)["aud"] == "https://fcm.googleapis.com"
    assert claims(b)["aud"] == "https://updates.push.services.mozilla.com"
    assert claims(a1)["exp"] - now[0] <= 12 * 3600
    now[0] += 10 * 3600  # still more than an hour left: reused
    assert s.header("https://fcm.googleapis.com") == a1
    now[0] += 1.5 * 3600  # less than an hour left: renewed
    assert s.header("https://fcm.googleapis.com") != a1


def test_a_hanging_or_flooding_push_service_is_bounded(
    standin: PushStandin, signer: VapidSigner
) -> None:
    standin.reset()
    sender = AiohttpPushSender(
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


def test_redirects_are_never_followed(standin: PushStandin, signer: VapidSigner) -> None:
    standin.reset()
    sender = AiohttpPushSender(signer, SenderConfig(allow_loopback=True))
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
        return {
            "fcm.googleapis.com": ["10.0.0.7"],
            "updates.push.services.mozilla.com": ["169.254.169.254"],
        }.get(host, ["192.168.1.1"])

    sender = AiohttpPushSender(signer, SenderConfig(allow_loopback=False), lookup=lookup)
    sub = {"endpoint": "https://fcm.googleapis.com/fcm/send/x", "keys": _keys()}
    moz = {"endpoint": "https://updates.push.services.mozilla.com/wpush/v2/x", "keys": _keys()}
    results = send(sender, [message(sub, 1), message(moz, 2)])
    sender.close()
    assert [r.error for r in sorted(results, key=lambda r: r.subscription_id)] == [
        "refused_address",
        "refused_address",
    ]
    assert set(asked) == {"fcm.googleapis.com", "updates.push.services.mozilla.com"}


def test_loopback_is_refused_unless_allowed(standin: PushStandin, signer: VapidSigner) -> None:
    standin.reset()
    sub = standin.create_subscription()
    by_name = dict(sub, endpoint=sub["endpoint"].replace("127.0.0.1", "localhost"))
    sender = AiohttpPushSender(signer, SenderConfig(allow_loopback=False))
    results = send(sender, [message(sub, 1), message(by_name, 2)])
    sender.close()
    assert {r.error for r in results} == {"refused_address"}
    assert standin.attempts == [] and standin.rejected == []


def _keys() -> dict[str, str]:
    import base64
    import os

    key = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return {
        "p256dh": base64.urlsafe_b64encode(key).rstrip(b"=").decode(),
        "auth": base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode(),
    }
