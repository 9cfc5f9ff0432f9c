"""Browser test helpers: the Chromium path and flags, a skip when a browser is missing, a fake
subscription a browser would post, and the reader site a browser test drives (its fixtures
are in tests/browser/conftest.py)."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from sqlalchemy import select

from core.adapters import tables as t
from core.base64url import b64url_encode
from tests.support.services import (
    require_service,
)

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
