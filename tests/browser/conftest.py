"""Browser-test fixtures: the reader site on a real HTTP server, and a real headless Chromium."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis as redis_lib
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from sqlalchemy import select

from core.accounts import Role
from core.adapters import migrate
from core.adapters import tables as t
from core.adapters.accounts_sql import SqlAccounts
from core.adapters.sql import make_engine
from core.base64url import b64url_encode
from tests.conftest import TEST_REDIS_DB, free_port, make_env, require_service, settings_from
from tests.support.live import serve

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_browser(name: str, path: str) -> None:
    """Skip locally when the browser is missing; under CI=true that is a failure."""
    found = os.path.exists(path) or shutil.which(path) is not None
    require_service(name, found, f"{path} not installed; apt-get install it")


def fake_browser_subscription(endpoint: str) -> dict[str, Any]:
    """What PushSubscription.toJSON() gives, with real P-256 and auth keys."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    raw = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {
        "endpoint": endpoint,
        "expirationTime": None,
        "keys": {"p256dh": b64url_encode(raw), "auth": b64url_encode(os.urandom(16))},
    }


@dataclass
class ReaderSite:
    """The Newsflash web app answering real HTTP on 127.0.0.1, with helpers to look inside."""

    base: str
    app: Flask
    engine: Any
    token: str

    def subscription(self, endpoint: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(t.subscriptions).where(t.subscriptions.c.endpoint == endpoint))
                .mappings()
                .first()
            )
        if row is None:
            return None
        store = self.app.extensions["newsflash"].container.sql
        return {**row, "topics": list(store.topics.topics_of(row["topic_mask"]))}

    def api(self) -> Any:
        return self.app.test_client()

    def publish(self, **fields: Any) -> str:
        answer = self.api().post(
            "/api/v1/alerts",
            json={"topics": ["breaking"], **fields},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert answer.status_code == 202, answer.json
        return str(answer.json["id"])

    def receipt(self, alert_id: str) -> tuple[int, str]:
        """A new subscription and the receipt a push of this alert carries to it."""
        sub = fake_browser_subscription(f"http://127.0.0.1:9/push/{uuid.uuid4().hex}")
        answer = self.api().post("/api/v1/subscriptions", json=sub)
        assert answer.status_code == 201, answer.json
        sub_id = int(answer.json["id"])
        receipts = self.app.extensions["newsflash"].container.receipts
        return sub_id, str(receipts.sign(int(alert_id), sub_id))

    def record_delivered(self, alert_id: str, sub_id: int) -> None:
        """The ledger row the worker writes once the push service accepted the push."""
        from core.model import LedgerStatus
        from core.ports import LedgerEntry

        entry = LedgerEntry(sub_id, LedgerStatus.DELIVERED, 201, 1)
        store = self.app.extensions["newsflash"].container.sql
        store.ledger.record(int(alert_id), [entry], [], time.time())

    def delivered_receipt(self, alert_id: str) -> str:
        """The receipt of a push of this alert to a browser it was recorded delivered to."""
        sub_id, receipt = self.receipt(alert_id)
        self.record_delivered(alert_id, sub_id)
        return receipt

    def alert(self, alert_id: str) -> dict[str, Any]:
        answer = self.api().get(
            f"/api/v1/alerts/{alert_id}", headers={"Authorization": f"Bearer {self.token}"}
        )
        assert answer.status_code == 200
        return dict(answer.json)


@pytest.fixture(scope="module")
def reader_site(
    tmp_path_factory: pytest.TempPathFactory, vapid_pem: str, redis_url: str
) -> Iterator[ReaderSite]:
    from service.app import create_app

    tmp = tmp_path_factory.mktemp("reader-site")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    database_url = f"sqlite:///{tmp}/newsflash.db"
    env = make_env(
        tmp / "var",
        database_url,
        redis_url,
        vapid_pem,
        PUBLIC_ORIGINS=base,
        RATE_LIMIT_SUBSCRIBE="10000 per minute",
        TOPICS="breaking:Breaking news|Habari za dharura:default,politics,business,sport",
    )
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    app = create_app(settings_from(env))
    token = SqlAccounts(engine).create_token("browser-tests", Role.EDITOR)
    try:
        with serve(app, port) as served:
            assert served == base
            yield ReaderSite(base, app, engine, token)
    finally:
        engine.dispose()
        app.extensions["newsflash"].container.engine.dispose()
        # Alerts published here queue Celery messages nobody consumes: drop them.
        redis_lib.Redis.from_url(f"redis://127.0.0.1:6379/{TEST_REDIS_DB}").flushdb()


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Any]:
    require_browser("Chromium", CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def chromium_browser(playwright_driver: Any) -> Iterator[Any]:
    """Headless Debian Chromium for the newsroom and ops pages (one per test module)."""
    browser = playwright_driver.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="module")
def chromium_profile(
    playwright_driver: Any, reader_site: ReaderSite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """One real Chromium (persistent profile) per module: launching one per test is slow."""
    context = playwright_driver.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("chromium-profile")),
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 720},
        timeout=30_000,
    )
    try:
        context.set_default_timeout(10_000)
        context.on("console", lambda m: print("console:", m.type, m.text))
        yield context
    finally:
        context.close()


@pytest.fixture
def chromium(chromium_profile: Any, reader_site: ReaderSite) -> Iterator[Any]:
    """The module's Chromium as a first-time visitor: the site's storage wiped (service workers,
    IndexedDB, localStorage, caches), notifications allowed, one blank page."""
    context = chromium_profile
    for page in context.pages:
        page.close()
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Storage.clearDataForOrigin", {"origin": reader_site.base, "storageTypes": "all"})
    cdp.detach()
    context.clear_permissions()
    context.grant_permissions(["notifications"], origin=reader_site.base)
    yield context
