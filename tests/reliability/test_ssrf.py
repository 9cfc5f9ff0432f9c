"""SSRF battery: hostile endpoints refused at subscribe time, and again at send time."""

from __future__ import annotations

import ipaddress
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core import delivery
from core.adapters import tables as t
from core.adapters.hosts import MemoryHostHealth
from core.adapters.webpush import Http11PushSender, SenderConfig, VapidSigner
from core.endpoints import EndpointPolicy
from core.model import AlertDraft, LedgerStatus, SubscriptionInput, Urgency
from standin.server import PushStandin
from tests.reliability.harness import Rig, rig
from tests.support.fakes import RecordingQueue
from tests.support.hostile import HOSTILE

# -- a guard around the whole module: no socket may connect anywhere but loopback -------------
_connects: list[Any] = []
_lock = threading.Lock()


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect":
        return
    address = args[1]
    if not isinstance(address, tuple):
        return  # a Unix socket
    with _lock:
        _connects.append(address)
    if not _loopback(str(address[0])):
        # Refuse it here so a broken guard can never reach the network from this test.
        raise ConnectionRefusedError(f"reliability guard: connect to {address[0]} blocked")


sys.addaudithook(_audit)


def _connects_since(mark: int) -> list[Any]:
    with _lock:
        return _connects[mark:]


def _mark() -> int:
    with _lock:
        return len(_connects)


# -- the battery ------------------------------------------------------------------------------

# What the fake resolver says the allowlisted names point at now (DNS changes after subscribing).
RESOLVES = {
    "fcm.googleapis.com": ["10.1.2.3"],
    "updates.push.services.mozilla.com": ["169.254.169.254"],
    "web.push.apple.com": ["::ffff:127.0.0.1"],
    "wns2-by3p.notify.windows.com": ["64:ff9b::a9fe:a9fe"],
    "cgnat.push.apple.com": ["100.64.0.1"],
    "zero.push.apple.com": ["0.0.0.0"],
    "ula.push.apple.com": ["fd12::1"],
    "v6loop.push.apple.com": ["::1"],
    "loop.push.apple.com": ["127.0.0.1"],
    # One public and one private answer: a guard that checked only the first would connect.
    "mixed.push.apple.com": ["93.184.216.34", "192.168.1.1"],
}


class FakeResolver:
    """The sender's `lookup` port: answers from RESOLVES, records every question."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        return RESOLVES.get(host, [])


@pytest.fixture
def strict(tmp_path: Path, redis_url: str, vapid_pem: str) -> Iterator[Rig]:
    with rig(
        tmp_path, f"sqlite:///{tmp_path}/nf.db", redis_url, vapid_pem, ALLOW_LOOPBACK_PUSH="off"
    ) as r:
        yield r


def _keys(standin: PushStandin) -> dict[str, str]:
    return standin.create_subscription()["keys"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def standin() -> Iterator[PushStandin]:
    s = PushStandin().start()
    yield s
    s.stop()


def test_subscribe_refuses_every_hostile_endpoint_and_stores_nothing(
    strict: Rig, standin: PushStandin
) -> None:
    keys = _keys(standin)
    mark = _mark()
    for endpoint in HOSTILE:
        answer = strict.client.post(
            "/api/v1/subscriptions",
            json={"endpoint": endpoint, "keys": keys, "topics": ["breaking"]},
        )
        assert answer.status_code == 400, (endpoint, answer.status_code, answer.json)
        assert answer.json["error"]["field"] == "endpoint", endpoint
        assert endpoint not in answer.get_data(as_text=True), "the error echoes the endpoint"
    assert strict.subscription_count() == 0
    assert all(_loopback(str(c[0])) for c in _connects_since(mark))


def test_moving_a_subscription_to_a_hostile_endpoint_is_refused(
    strict: Rig, standin: PushStandin
) -> None:
    keys = _keys(standin)
    good = {"endpoint": "https://fcm.googleapis.com/fcm/send/abc", "keys": keys}
    assert strict.client.post("/api/v1/subscriptions", json=good).status_code == 201
    for endpoint in HOSTILE[:12]:
        answer = strict.client.post(
            "/api/v1/subscriptions/change",
            json={
                "oldEndpoint": good["endpoint"],
                "oldAuth": keys["auth"],
                "subscription": {"endpoint": endpoint, "keys": keys},
            },
        )
        assert answer.status_code == 400, endpoint
        assert answer.json["error"]["field"] == "subscription.endpoint"
    with strict.engine.connect() as conn:
        assert list(conn.execute(select(t.subscriptions.c.endpoint)).scalars()) == [
            good["endpoint"]
        ]


def test_loopback_for_the_demo_opens_loopback_only(
    tmp_path: Path, redis_url: str, vapid_pem: str, standin: PushStandin
) -> None:
    keys = _keys(standin)
    with rig(tmp_path, f"sqlite:///{tmp_path}/nf.db", redis_url, vapid_pem) as r:
        assert r.settings.allow_loopback_push
        still_refused = [
            e
            for e in HOSTILE
            if "127.0.0.1/" not in e
            and "127.0.0.1:" not in e
            and "[::1]" not in e
            and "localhost" not in e.lower()
        ]
        for endpoint in still_refused:
            answer = r.client.post(
                "/api/v1/subscriptions",
                json={"endpoint": endpoint, "keys": keys, "topics": ["breaking"]},
            )
            assert answer.status_code == 400, endpoint
        assert r.subscription_count() == 0


def _store_rows(r: Rig, standin: PushStandin) -> dict[str, int]:
    """Rows as an older rule set or an old DNS answer left them: straight into the store."""
    port = standin.port
    endpoints = [f"https://{name}/push/x{i}" for i, name in enumerate(RESOLVES)]
    endpoints += [e.replace("/x", f"/h{i}") for i, e in enumerate(HOSTILE) if "://" in e]
    # Loopback, where the stand-in really listens: nothing may arrive there either.
    endpoints += [
        f"http://127.0.0.1:{port}/push/direct",
        f"http://localhost:{port}/push/byname",
        f"http://[::1]:{port}/push/v6",
        f"http://2130706433:{port}/push/decimal",
    ]
    ids = {}
    now = time.time()
    for endpoint in endpoints:
        keys = _keys(standin)
        sub, _created = r.store.subscriptions.upsert(
            SubscriptionInput(endpoint, keys["p256dh"], keys["auth"], ("breaking",)), now
        )
        ids[endpoint] = sub.id
    return ids


def test_send_time_refuses_before_connecting_and_deletes_nothing(
    strict: Rig, standin: PushStandin, vapid_pem: str
) -> None:
    standin.reset()
    ids = _store_rows(strict, standin)
    resolver = FakeResolver()
    config = SenderConfig(
        concurrency=20, connect_timeout_s=1, read_timeout_s=1, deadline_s=2, allow_loopback=False
    )
    signer = VapidSigner(vapid_pem, "mailto:ops@news.example")
    sender = Http11PushSender(signer, config, lookup=resolver)
    policy = delivery.DeliveryPolicy(
        batch_size=25, endpoints=EndpointPolicy(strict.settings.push_hosts, False)
    )
    queue = RecordingQueue()
    from core import alerts

    alert, _ = alerts.publish(
        AlertDraft("SSRF", "probe", "http://127.0.0.1:8000/x", ("breaking",), Urgency.HIGH, 600),
        strict.store.alerts,
        strict.store.subscriptions,
        queue,
        time.time(),
    )
    delivery.plan_fanout(alert.id, strict.store.planning, queue, policy)
    mark = _mark()
    hosts = MemoryHostHealth()
    try:
        for batch_id in queue.batches:
            delivery.deliver_batch(batch_id, strict.store.ledger, sender, hosts, policy)
    finally:
        sender.close()
    connects = _connects_since(mark)

    assert connects == [], f"connections were attempted: {connects}"
    assert standin.attempts == [] and standin.rejected == []
    # The allowlisted names were looked up (the rules passed them) and refused on their answer.
    assert set(resolver.asked) == set(RESOLVES), resolver.asked
    ledger = strict.ledger(str(alert.id))
    assert ledger == {LedgerStatus.FAILED: len(ids)}, ledger
    assert strict.subscription_count() == len(ids), "a refusal deleted a subscription"
    assert strict.store.alerts.get_alert(alert.id).status.value == "failed"  # type: ignore[union-attr]
