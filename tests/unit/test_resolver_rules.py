"""The sender's resolver at its port: a fake lookup and a clock the test moves."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

import pytest

from core.adapters import resolver
from core.adapters.resolver import FAILED_S, FRESH_S, STALE_S, Resolver, Unresolved


class Dns:
    def __init__(self) -> None:
        self.asked = 0
        self.answer: list[str] | None = ["198.51.100.7"]  # None: the lookup fails
        self.release = threading.Event()
        self.release.set()

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked += 1
        self.release.wait(1)
        if self.answer is None:
            raise OSError(-3, "Temporary failure in name resolution")
        return self.answer


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def _resolve(r: Resolver, times: int = 1) -> list[list[str] | str]:
    async def ask() -> list[list[str] | str]:
        async def one() -> list[str] | str:
            try:
                return await r.addresses("fcm.googleapis.com", 443)
            except Unresolved as exc:
                return f"unresolved: {exc}"

        return list(await asyncio.gather(*(one() for _ in range(times))))

    return asyncio.run(ask())


def test_connections_opened_together_share_one_lookup_kept_for_a_minute() -> None:
    dns, clock = Dns(), Clock()
    r = Resolver(dns, clock)
    assert _resolve(r, 50) == [["198.51.100.7"]] * 50
    clock.now += FRESH_S - 1
    assert _resolve(r) == [["198.51.100.7"]]
    assert dns.asked == 1
    clock.now += 2
    dns.answer = ["198.51.100.8"]
    assert _resolve(r) == [["198.51.100.8"]]
    assert dns.asked == 2


def test_a_failing_resolver_keeps_the_last_answer_for_an_hour_and_is_asked_every_few_seconds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dns, clock = Dns(), Clock()
    r = Resolver(dns, clock)
    _resolve(r)
    dns.answer = None
    clock.now += FRESH_S + 1
    with caplog.at_level(logging.WARNING, logger="core.adapters.resolver"):
        assert _resolve(r, 10) == [["198.51.100.7"]] * 10
    assert [rec.getMessage() for rec in caplog.records] == [
        "name lookup failed; using its last answer"
    ]
    asked = dns.asked
    clock.now += FAILED_S - 1
    assert _resolve(r) == [["198.51.100.7"]]
    assert dns.asked == asked  # not asked again so soon
    clock.now += STALE_S
    assert _resolve(r) == ["unresolved: fcm.googleapis.com did not resolve"]
    dns.answer = ["198.51.100.9"]
    clock.now += FAILED_S
    assert _resolve(r) == [["198.51.100.9"]]


def test_a_name_never_resolved_fails_and_is_not_asked_again_for_a_few_seconds() -> None:
    dns, clock = Dns(), Clock()
    dns.answer = None
    r = Resolver(dns, clock)
    assert _resolve(r, 3) == ["unresolved: fcm.googleapis.com did not resolve"] * 3
    assert _resolve(r) == ["unresolved: fcm.googleapis.com did not resolve"]
    assert dns.asked == 1
    dns.answer = []  # a name without addresses: an answer; the address rules refuse it
    clock.now += FAILED_S
    assert _resolve(r) == [[]]


def test_a_lookup_that_hangs_is_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolver, "LOOKUP_TIMEOUT_S", 0.2)
    dns, clock = Dns(), Clock()
    dns.release.clear()  # the resolver does not answer
    r = Resolver(dns, clock)
    assert _resolve(r, 5) == ["unresolved: fcm.googleapis.com did not answer in time"] * 5
    dns.release.set()
