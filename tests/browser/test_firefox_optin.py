"""A reader in real Firefox clicks "Yes, Thanks" and receives a real encrypted alert: no stubs.

Firefox (headless firefox-esr over Marionette) opens our demo article, subscribes through
our widget to the local Mozilla push server, an editor publishes through POST /api/v1/alerts,
a live Celery worker encrypts and delivers to the push server's endpoint, and Firefox decrypts
it (ack code 100), shows the notification, and a click opens the article.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from sqlalchemy import select

from core.accounts import Role
from core.adapters import tables as t
from core.base64url import b64url_decode
from core.utm import UtmTags, with_utm
from standin.mozilla import ACK_DELIVERED, MozillaPushServer
from standin.server import PushStandin
from tests.support.browser import require_browser
from tests.support.firefox import Firefox, find_firefox, launch_firefox
from tests.support.live_stack import served_app
from tests.support.services import TEST_REDIS_DB, free_port
from tests.support.stack import Process, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]


@dataclass
class Site:
    base: str
    app: Any
    engine: Any
    token: str
    starting_worker: Future[Process]

    def worker(self) -> Process:
        return self.starting_worker.result(timeout=90)

    def api(self) -> Any:
        return self.app.test_client()

    def alert(self, alert_id: str) -> dict[str, Any]:
        answer = self.api().get(
            f"/api/v1/alerts/{alert_id}", headers={"Authorization": f"Bearer {self.token}"}
        )
        assert answer.status_code == 200
        return dict(answer.json)

    def subscriptions(self) -> list[dict[str, Any]]:
        store = self.app.extensions["newsflash"].container.sql
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.subscriptions)).mappings().all()
        return [{**r, "topics": list(store.topics.topics_of(r["topic_mask"]))} for r in rows]


@pytest.fixture
def firefox_binary() -> str:
    binary = find_firefox()
    require_browser("firefox-esr", binary or "firefox-esr")
    assert binary is not None
    return binary


@pytest.fixture
def site(tmp_path: Path, vapid_pem: str, redis_url: str, firefox_binary: str) -> Iterator[Site]:
    redis_lib.Redis.from_url(redis_url).flushdb()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        with served_app(
            tmp_path,
            f"sqlite:///{tmp_path}/newsflash.db",
            redis_url,
            vapid_pem,
            port,
            PUBLIC_ORIGINS=base,
            ALLOW_LOOPBACK_PUSH="on",
            RATE_LIMIT_SUBSCRIBE="10000 per minute",
        ) as live:
            token = live.token("firefox-e2e", Role.EDITOR)
            # The worker starts while Firefox starts and the reader subscribes: it is needed
            # only later (and the stack stops it once the start is over either way).
            with ThreadPoolExecutor(max_workers=1) as pool:
                starting = pool.submit(live.start_worker, "worker", None, 1)
                yield Site(base, live.app, live.engine, token, starting)
    finally:
        redis_lib.Redis.from_url(f"redis://127.0.0.1:6379/{TEST_REDIS_DB}").flushdb()


@pytest.fixture
def push_server() -> Iterator[MozillaPushServer]:
    with MozillaPushServer() as server:
        yield server


@pytest.fixture
def firefox(push_server: MozillaPushServer, firefox_binary: str) -> Iterator[Firefox]:
    with launch_firefox(push_server.ws_url, binary=firefox_binary) as browser:
        yield browser


def page_text(firefox: Firefox, selector: str) -> str:
    return str(
        firefox.execute(
            "const el = document.querySelector(arguments[0]); return el ? el.textContent : '';",
            selector,
        )
    )


def test_a_reader_in_firefox_opts_in_and_receives_a_real_alert(
    site: Site,
    push_server: MozillaPushServer,
    firefox: Firefox,
    artifacts: Path,
) -> None:
    firefox.navigate(site.base + "/")
    firefox.wait_until(
        lambda: firefox.execute("return document.documentElement.dataset.newsflash || null;"),
        10,
        "the widget to decide",
    )
    assert firefox.execute("return document.documentElement.dataset.newsflash;") == "prompt"
    assert page_text(firefox, "#nf-title") == "Be the first to know."
    assert page_text(firefox, ".nf-yes") == "Yes, Thanks"

    firefox.click(".nf-yes")
    firefox.wait_until(
        lambda: "signed up" in page_text(firefox, ".nf-status") or None,
        30,
        f"the widget to say it worked (it says {page_text(firefox, '.nf-status')!r})",
    )
    assert page_text(firefox, ".nf-status").startswith(
        "You're signed up. We'll send you alerts about Breaking news."
    )
    with firefox.marionette.using_context("content"):
        (artifacts / "firefox-subscribed.png").write_bytes(
            firefox.marionette.screenshot(format="binary", full=False)
        )

    # The real subscription reached our API: an endpoint on the Mozilla push server.
    registration = push_server.wait_for_registration(timeout_s=10)
    [row] = site.subscriptions()
    assert row["endpoint"] == registration["pushEndpoint"]
    assert row["endpoint"].startswith(push_server.origin + "/wpush/")
    assert row["topics"] == ["breaking"]
    # The worker remembers endpoint + auth for pushsubscriptionchange (oldSubscription may be null).
    remembered = firefox.wait_until(lambda: remembered_subscription(firefox), 10, "IndexedDB")
    assert remembered == {"endpoint": row["endpoint"], "auth": row["auth"]}
    vapid_key = site.api().get("/api/v1/config").json["vapidPublicKey"]
    assert registration["key"] is not None
    assert b64url_decode(registration["key"]) == b64url_decode(vapid_key), (
        "subscribed with our VAPID key"
    )

    # An editor publishes; the live worker encrypts and delivers it.
    worker = site.worker()
    article = site.base + "/?from=alert"
    answer = site.api().post(
        "/api/v1/alerts",
        json={
            "title": "Harbour footbridge reopens early",
            "body": "Repairs finished three weeks ahead of schedule.",
            "url": article,
            "topics": ["breaking"],
        },
        headers={"Authorization": f"Bearer {site.token}"},
    )
    assert answer.status_code == 202, answer.json
    alert_id = str(answer.json["id"])
    tag = site.alert(alert_id)["tag"]

    ack = push_server.wait_for_ack(timeout_s=45, channel_id=registration["channelID"])
    assert ack["code"] == ACK_DELIVERED, (
        f"Firefox did not decrypt it: {ack}\n{worker.output()[-3000:]}"
    )
    shown = firefox.wait_for_notification("Harbour footbridge reopens early", timeout_s=15)
    assert shown.body == "Repairs finished three weeks ahead of schedule."
    [in_page] = firefox.page_notifications(tag=tag)
    assert in_page["title"] == "Harbour footbridge reopens early"
    clicked = with_utm(article, UtmTags(), f"alert-{alert_id}")  # tagged for analytics
    assert in_page["data"]["url"] == clicked
    wait_until(
        lambda: (c := site.alert(alert_id)["counts"])["delivered"] == 1 and c["displayed"] == 1,
        20,
        "the delivery and the display to be counted",
        interval_s=0.2,
    )
    wait_until(lambda: site.alert(alert_id)["status"] == "sent", 20, "the alert to be sent")

    firefox.click_notification("Harbour footbridge reopens early")
    assert firefox.wait_for_tab(clicked, timeout_s=15) == clicked
    wait_until(
        lambda: site.alert(alert_id)["counts"]["clicked"] == 1, 20, "the click to be counted"
    )
    assert firefox.stray_requests == [], "Firefox tried to leave loopback"
    assert push_server.nacks == []


def remembered_subscription(firefox: Firefox) -> dict[str, str] | None:
    """What the service worker stored in IndexedDB (same origin, so the page can read it)."""
    found = firefox.execute(
        """
        return new Promise(resolve => {
          const open = indexedDB.open('newsflash', 1);
          open.onupgradeneeded = () => open.result.createObjectStore('kv');
          open.onsuccess = () => {
            const get = open.result.transaction('kv').objectStore('kv').get('subscription');
            get.onsuccess = () => { open.result.close(); resolve(get.result || null); };
          };
        });
        """
    )
    return None if found is None else dict(found)


def test_a_kiswahili_reader_in_firefox_is_asked_in_kiswahili_and_signed_up_as_such(
    site: Site, push_server: MozillaPushServer, firefox: Firefox, artifacts: Path
) -> None:
    firefox.navigate(site.base + "/")
    firefox.wait_until(
        lambda: firefox.execute("return document.documentElement.dataset.newsflash || null;"),
        10,
        "the widget to decide",
    )
    # A Kiswahili publisher's page: the widget's script tag says data-lang="sw".
    firefox.execute(
        """document.querySelectorAll('.nf, script[src="/newsflash.js"]').forEach(n => n.remove());
        document.documentElement.removeAttribute('data-newsflash');
        const s = document.createElement('script');
        s.src = '/newsflash.js'; s.dataset.lang = 'sw';
        document.body.appendChild(s);"""
    )
    firefox.wait_until(lambda: page_text(firefox, ".nf-yes") or None, 10, "the Kiswahili prompt")
    assert page_text(firefox, "#nf-title") == "Kuwa wa kwanza kujua."
    assert page_text(firefox, ".nf-yes") == "Ndiyo, Asante"
    assert page_text(firefox, ".nf-no") == "Sio sasa"
    firefox.click(".nf-yes")
    firefox.wait_until(
        lambda: "Umejiandikisha" in page_text(firefox, ".nf-status") or None,
        30,
        f"the widget to say it worked (it says {page_text(firefox, '.nf-status')!r})",
    )
    assert "Habari za dharura" in page_text(firefox, ".nf-status")
    with firefox.marionette.using_context("content"):
        (artifacts / "firefox-kiswahili-subscribed.png").write_bytes(
            firefox.marionette.screenshot(format="binary", full=False)
        )
    registration = push_server.wait_for_registration(timeout_s=10)
    [row] = site.subscriptions()
    assert row["lang"] == "sw"

    # One alert in English and Kiswahili: this reader gets it in Kiswahili, an English reader of
    # the same alert (another browser: a stand-in subscription) in English.
    english_service = PushStandin().start()
    try:
        english = english_service.create_subscription()
        answer = site.api().post("/api/v1/subscriptions", json={**english, "lang": "en"})
        assert answer.status_code == 201, answer.json
        worker = site.worker()
        answer = site.api().post(
            "/api/v1/alerts",
            json={
                "title": "Harbour footbridge reopens early",
                "body": "Repairs finished three weeks ahead of schedule.",
                "url": site.base + "/?from=alert",
                "lang": "en",
                "translations": {
                    "sw": {
                        "title": "Daraja la bandari lafunguliwa mapema",
                        "body": "Ukarabati umekamilika wiki tatu kabla ya ratiba.",
                    }
                },
            },
            headers={"Authorization": f"Bearer {site.token}"},
        )
        assert answer.status_code == 202, answer.json
        alert_id = str(answer.json["id"])
        ack = push_server.wait_for_ack(timeout_s=45, channel_id=registration["channelID"])
        assert ack["code"] == ACK_DELIVERED, f"{ack}\n{worker.output()[-3000:]}"
        shown = firefox.wait_for_notification("Daraja la bandari lafunguliwa mapema", 15)
        assert shown.body == "Ukarabati umekamilika wiki tatu kabla ya ratiba."
        [in_page] = firefox.page_notifications(tag=site.alert(alert_id)["tag"])
        assert in_page["lang"] == "sw"
        [got] = english_service.wait_for(1, timeout_s=30)
        assert got.payload is not None
        assert got.payload["notification"]["title"] == "Harbour footbridge reopens early"
        assert got.payload["notification"]["lang"] == "en"
        # One alert, one report: both readers are counted on it.
        wait_until(lambda: site.alert(alert_id)["counts"]["delivered"] == 2, 20, "both deliveries")
    finally:
        english_service.stop()
