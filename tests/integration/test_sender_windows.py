"""Per-host in-flight windows against real push stand-ins: a slow host never holds a fast one,
and a host answering 429 gets a smaller window that grows back once it answers again."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core.adapters.hosts import HOSTS_TIMEOUT_S, READ_EVERY_S, RedisHostHealth
from core.adapters.webpush import Http11PushSender, SenderConfig, VapidSigner
from core.bootstrap import Container
from core.ports import PushMessage, PushResult
from standin.server import PushStandin
from tests.support.services import make_env, settings_from, silent_listener


@pytest.fixture(scope="module")
def signer() -> VapidSigner:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return VapidSigner(pem.decode(), "mailto:ops@news.example")


@pytest.fixture(scope="module")
def fast() -> Iterator[PushStandin]:
    s = PushStandin("127.0.0.1").start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def slow() -> Iterator[PushStandin]:
    # Another loopback address: another push host, with its own window.
    s = PushStandin("127.0.0.2").start()
    yield s
    s.stop()


def message(sub: dict[str, Any], n: int) -> PushMessage:
    data = json.dumps({"id": str(n), "title": f"t{n}"}).encode()
    return PushMessage(
        n, sub["endpoint"], sub["keys"]["p256dh"], sub["keys"]["auth"], data, 120, "high", "s1"
    )


@pytest.mark.parametrize("adaptive", [True, False], ids=["adaptive", "fixed"])
def test_a_slow_host_does_not_hold_a_fast_one(
    fast: PushStandin, slow: PushStandin, signer: VapidSigner, adaptive: bool
) -> None:
    fast.reset()
    slow.reset()
    sender = Http11PushSender(
        signer,
        SenderConfig(concurrency=8, concurrency_per_host=4, adaptive=adaptive, allow_loopback=True),
    )
    # The slow host's pushes come first in the batch: with one shared queue every slot ended
    # up waiting for the slow host's window while the fast host's pushes sat behind them.
    slow_subs = slow.create_subscriptions(12, mode="slow", delay_s=1.0)
    fast_subs = fast.create_subscriptions(40)
    batch = [message(s, i) for i, s in enumerate(slow_subs)]
    batch += [message(s, 100 + i) for i, s in enumerate(fast_subs)]
    finished: list[tuple[PushResult, float]] = []
    sender.send_all(batch, lambda r: finished.append((r, time.monotonic())), lambda: False)
    sender.close()
    assert [r.status for r, _ in finished].count(201) == 52
    first_slow = min(at for r, at in finished if r.subscription_id < 100)
    last_fast = max(at for r, at in finished if r.subscription_id >= 100)
    assert last_fast < first_slow


def test_the_window_halves_on_429_and_grows_back(fast: PushStandin, signer: VapidSigner) -> None:
    fast.reset()
    sender = Http11PushSender(
        signer, SenderConfig(concurrency=64, concurrency_per_host=32, allow_loopback=True)
    )
    subs = fast.create_subscriptions(300)

    def send(count: int, first: int) -> list[PushResult]:
        results: list[PushResult] = []
        batch = [message(subs[i % len(subs)], first + i) for i in range(count)]
        sender.send_all(batch, results.append, lambda: False)
        return results

    send(300, 0)
    grown = sender.window_size("127.0.0.1")
    assert grown is not None and grown > 16  # above the initial window
    fast.set_host_mode("throttle", retry_after=1)
    throttled = send(60, 1000)
    assert {r.status for r in throttled} == {429}
    shrunk = sender.window_size("127.0.0.1")
    assert shrunk is not None and shrunk <= grown // 2
    fast.set_host_mode(None)
    for round_ in range(10):
        send(300, 2000 + 300 * round_)
    recovered = sender.window_size("127.0.0.1")
    sender.close()
    assert recovered is not None and recovered > shrunk


def test_a_process_stops_pushing_to_a_host_at_its_own_first_429(
    fast: PushStandin, signer: VapidSigner, clean_redis: str
) -> None:
    """The sender asks the host store before every push and the store reads Redis once a
    second. The hold a process records on its first 429 must stop its next pushes at once:
    before, it went on for up to a second, and a throttling host answered hundreds more 429s
    (724 of Mozilla's in a realistic 50k bench run, 200 after)."""
    fast.reset()
    hosts = RedisHostHealth(redis_lib.Redis.from_url(clean_redis), read_every_s=READ_EVERY_S)
    sender = Http11PushSender(
        signer,
        SenderConfig(concurrency=8, concurrency_per_host=8, allow_loopback=True),
        hosts=hosts,
    )
    subs = fast.create_subscriptions(50)
    results: list[PushResult] = []

    def record(result: PushResult) -> None:  # what the batch's recorder does with a 429
        results.append(result)
        if result.status == 429:
            hosts.hold(result.host, time.time() + 30, "HTTP 429")

    sender.send_all([message(subs[0], 0)], record, lambda: False)  # read: not held, cached
    fast.set_host_mode("throttle", retry_after=30)
    sender.send_all([message(subs[i % 50], i) for i in range(1, 401)], record, lambda: False)
    sender.close()

    assert len(results) == 401
    answered_429 = fast.stats()["by_status"].get("429", 0)
    assert 1 <= answered_429 <= 8  # what was in flight when the first 429 came back
    assert sum(r.error == "blocked" for r in results) == 400 - answered_429


@pytest.mark.parametrize("adaptive", [True, False], ids=["adaptive", "fixed"])
def test_idle_slots_are_woken_only_for_pushes_they_can_start(
    slow: PushStandin, signer: VapidSigner, adaptive: bool
) -> None:
    """A new batch woke one idle slot per push, whatever room the host's window had: with a
    full window nearly all of them looked for work, found none and went back to sleep. On the
    realistic profile that was 1.6 wasted looks per push, 4 % of the sender's CPU per request
    (docs/capacity.md, "ninth session")."""
    slow.reset()
    sender = Http11PushSender(
        signer,
        SenderConfig(
            concurrency=64, concurrency_per_host=4, adaptive=adaptive, allow_loopback=True
        ),
    )
    subs = slow.create_subscriptions(30, mode="slow", delay_s=0.05)
    looks = 0
    take_next = sender._next

    def counted() -> Any:
        nonlocal looks
        looks += 1
        return take_next()

    sender._next = counted  # type: ignore[method-assign]
    results: list[PushResult] = []
    jobs = [
        sender.submit([message(s, 100 * b + i) for i, s in enumerate(subs)], results.append, bool)
        for b in range(3)
    ]
    for job in jobs:
        job.wait()
    slots = len(sender._slots)
    sender.close()
    assert [r.status for r in results].count(201) == 90
    # Each slot looks once when it starts, and once after each answer; a woken slot looks
    # for the push it was woken for. Before: about 90 more (the three batches' wake-ups).
    assert looks <= slots + 2 * 90 - 60, looks


@pytest.mark.timeout(120)
def test_a_hung_redis_costs_the_sender_a_short_timeout_not_every_push(
    fast: PushStandin, signer: VapidSigner, tmp_path: Path, clean_redis: str
) -> None:
    """The sender asks the host store (holds, breakers: Redis) from its event loop before
    every push. With Redis accepting connections and never answering, each read waited the
    shared client's 5 s socket timeout and the next was due a second later: 200 pushes were not
    done after 100 s. The container's host store now has its own 0.5 s client and asks nothing
    for AWAY_S after a failure. Same run against a healthy Redis first, for the ratio."""
    fast.reset()
    subs = fast.create_subscriptions(200)

    def fan_out(redis_url: str) -> tuple[int, float]:
        env = make_env(tmp_path / "var", f"sqlite:///{tmp_path}/nf.db", redis_url, "")
        hosts = Container(settings_from(env)).hosts  # as a worker builds it
        sender = Http11PushSender(
            signer,
            SenderConfig(concurrency=64, concurrency_per_host=64, allow_loopback=True),
            hosts=hosts,
        )
        results: list[PushResult] = []

        def record(result: PushResult) -> None:
            results.append(result)
            hosts.count(result.host, "2xx")

        started = time.monotonic()
        for batch in range(4):
            pushes = [message(subs[i % 200], i) for i in range(batch * 500, (batch + 1) * 500)]
            sender.send_all(pushes, record, lambda: False)
        took_s = time.monotonic() - started
        sender.close()
        return sum(r.status == 201 for r in results), took_s

    delivered, healthy_s = fan_out(clean_redis)
    assert delivered == 2000
    with silent_listener() as port:
        delivered, hung_s = fan_out(f"redis://127.0.0.1:{port}/0")
    assert delivered == 2000
    # One 0.5 s read per AWAY_S at most, on top of the healthy run.
    assert hung_s < healthy_s + 3 * HOSTS_TIMEOUT_S + 1.0, (healthy_s, hung_s)
