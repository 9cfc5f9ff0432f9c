"""Name lookups in a real fan-out: a push host's name is looked up once, not per connection.

The resolver is the port boundary (a fake answering after a delay, loopback only); the sender,
its connections and the push stand-in (VAPID checked, payloads decrypted) are real."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core.adapters.webpush import Http11PushSender, SenderConfig, VapidSigner
from core.ports import PushMessage, PushResult
from standin.server import PushStandin


@pytest.fixture(scope="module")
def named() -> Iterator[PushStandin]:
    """A push service reached by name (its endpoints and VAPID audience say localhost)."""
    standin = PushStandin("localhost").start()
    yield standin
    standin.stop()


@pytest.fixture(scope="module")
def signer() -> VapidSigner:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return VapidSigner(pem.decode(), "mailto:ops@news.example")


class SlowDns:
    """Answers 127.0.0.1 after `delay_s` (a resolver across a network, or a struggling one)."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.asked = 0
        self.lock = threading.Lock()

    def __call__(self, host: str, port: int) -> Sequence[str]:
        with self.lock:
            self.asked += 1
        time.sleep(self.delay_s)
        return ["127.0.0.1"]


def _send(sender: Http11PushSender, subs: list[dict[str, Any]], n: int) -> list[PushResult]:
    results: list[PushResult] = []
    pushes = [
        PushMessage(
            i,
            subs[i % len(subs)]["endpoint"],
            subs[i % len(subs)]["keys"]["p256dh"],
            subs[i % len(subs)]["keys"]["auth"],
            json.dumps({"id": str(i)}).encode(),
            120,
            "high",
            "s1",
        )
        for i in range(n)
    ]
    sender.send_all(pushes, results.append, lambda: False)
    return results


def test_a_push_host_s_name_is_looked_up_once_for_all_its_connections(
    named: PushStandin, signer: VapidSigner
) -> None:
    """Before: each new connection looked the name up again in the loop's default executor (a
    few threads). With a 1 s resolver, 2,000 pushes at 200 in flight asked 102 times, took
    16.2 s and 104 pushes ran past their deadline waiting for an address."""
    named.reset()
    dns = SlowDns(1.0)
    config = SenderConfig(concurrency=200, concurrency_per_host=200, allow_loopback=True)
    sender = Http11PushSender(signer, config, lookup=dns)
    subs = named.create_subscriptions(200)
    started = time.monotonic()
    results = _send(sender, subs, 2000)
    took_s = time.monotonic() - started
    sender.close()
    assert Counter(r.status for r in results) == {201: 2000}
    assert dns.asked == 1
    assert took_s < 8, took_s  # the one lookup and the pushes (about 2 s here)
