"""Delivery receipts: what the payload carries and what the web app accepts."""

from __future__ import annotations

import json

from core.model import Alert, AlertKind, AlertStatus, Urgency
from core.payload import encode_payload, payload_dict, payload_template
from core.receipts import WORST_RECEIPT, Receipts, receipt_key


def make_alert() -> Alert:
    return Alert(
        id=123,
        title="Bridge \u201creopens\u201d",
        body="Early \\ finish",
        url="https://news.example.com/a",
        topics=("breaking",),
        urgency=Urgency.HIGH,
        ttl_s=600,
        story_key="nfabc",
        status=AlertStatus.SENDING,
        kind=AlertKind.NORMAL,
        created_at=1.0,
        image="https://news.example.com/i.jpg",
    )


def test_the_spliced_payload_is_the_json_payload_dict_encodes() -> None:
    receipts = Receipts(receipt_key("secret") or b"")
    alert = make_alert()
    receipt = receipts.sign(alert.id, 42)
    spliced = payload_template(alert, 1700000000, alert.title, alert.body, "en").fill(
        receipt.encode()
    )
    expected = payload_dict(
        alert.id,
        alert.title,
        alert.body,
        alert.url,
        alert.story_key,
        1700000000,
        alert.image,
        alert.icon,
        receipt,
    )
    assert spliced == encode_payload(expected)
    assert json.loads(spliced)["d"] == receipt
    assert json.loads(spliced)["notification"]["data"] == {"id": "123", "d": receipt}
    assert len(receipt) <= len(WORST_RECEIPT)


def test_a_receipt_names_its_subscription_only_for_its_alert_and_key() -> None:
    receipts = Receipts(receipt_key("secret") or b"")
    receipt = receipts.sign(7, 9_000_000_000)
    assert receipts.check(7, receipt) == 9_000_000_000
    assert receipts.check(8, receipt) is None
    assert Receipts(receipt_key("other") or b"").check(7, receipt) is None
    sub, mac = receipt.split(".")
    for forged in (f"1.{mac}", f"{sub}.{mac[:-1]}", f"{sub}.{mac}=", f"0{receipt}", " " + receipt):
        assert receipts.check(7, forged) is None, forged
    assert receipt_key("") is None
