"""What the hostile-input tests share: every JSON route, signed webhooks, a newsroom session."""

from __future__ import annotations

import re
import time
import uuid

from flask import Flask
from flask.testing import FlaskClient

from config.settings import Settings
from core import webhooks

JSON = "application/json"
WEBHOOK = "/api/v1/hooks/cms"
# Every route that reads a JSON body. "token": an API token gets past its authentication;
# "session": a logged-in editor's session and CSRF header do (test sends go to the editor's own
# devices); "webhook": the CMS signature over the raw body; "public": nothing.
JSON_ROUTES = [
    ("POST", "/api/v1/subscriptions", "public"),
    ("PUT", "/api/v1/subscriptions", "public"),
    ("POST", "/api/v1/subscriptions/lookup", "public"),
    ("POST", "/api/v1/subscriptions/delete", "public"),
    ("POST", "/api/v1/subscriptions/change", "public"),
    ("POST", "/api/v1/events", "public"),
    ("POST", "/api/v1/alerts", "token"),
    ("POST", "/api/v1/alerts/1/correct", "token"),
    ("POST", "/api/v1/alerts/test", "session"),
    ("POST", "/editor/prefill", "session"),
    ("POST", "/editor/test-device", "session"),
    ("POST", WEBHOOK, "webhook"),
]


def signed(settings: Settings, raw: bytes) -> dict[str, str]:
    """Standard Webhooks headers for raw with the configured secret: the body reaches parsing."""
    key = webhooks.secret_bytes(settings.cms_webhook_secret)
    msg_id, stamp = "msg_" + uuid.uuid4().hex, str(int(time.time()))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + webhooks.signature(key, msg_id, stamp, raw),
    }


def editor_session(app: Flask, email: str, password: str) -> tuple[FlaskClient, str]:
    """A client logged in to the newsroom through the login form, and its CSRF token."""
    client = app.test_client()
    page = client.get("/editor/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    answer = client.post(
        "/editor/login", data={"email": email, "password": password, "csrf_token": token.group(1)}
    )
    assert answer.status_code in (302, 303), answer.get_data(as_text=True)
    with client.session_transaction() as session:
        return client, str(session["csrf"])
