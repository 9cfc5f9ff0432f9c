"""What the hostile-input tests share: every JSON route, signed webhooks, a newsroom session, and
the push endpoints the strict rules refuse."""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from hypothesis import strategies as st

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


# -- Hypothesis: hostile JSON ------------------------------------------------------------------
# What once caused a 500: nesting past the decoder's stack, NUL and other control characters,
# lone surrogates, NaN, ±Infinity, 1e400 and integers beyond 64 bits, anywhere in the body.
_RAW = "\ue000raw:"  # marks a number JSON's encoder can't write (1e400); swapped in as text
FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
hostile_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\x00", "\x01", "\x1b", "\x7f", "\ud800", "\udfff", "\n", "\t", "\r"]),
    ),
    max_size=24,
)
hostile_leaf = st.one_of(
    hostile_text,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([_RAW + "1e400", _RAW + "-1e400", _RAW + "9" * 40, None, True]),
)
hostile_values = st.recursive(
    hostile_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(hostile_text, inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def bodies(draw: st.DrawFn, valid: dict[str, Any]) -> tuple[str, bool]:
    """(JSON text, whether it holds something every route must refuse): a valid body with one
    field, at the top or one level down, made hostile, or any hostile value; maybe nested deep."""
    base = json.loads(json.dumps(valid))
    shape = draw(st.sampled_from(["field", "nested field", "anything"]))
    if shape == "anything":
        body: Any = draw(hostile_values)
    else:
        body = base
        holder = (
            base.get("article") or base.get("subscription") if shape == "nested field" else None
        )
        target_dict = holder if isinstance(holder, dict) else base
        key = draw(st.sampled_from(sorted(target_dict)) | hostile_text)
        target_dict[key] = draw(hostile_values)
    depth = draw(st.sampled_from([0, 0, 0, 31, 33, 900, 3000]))
    text = json.dumps(body, ensure_ascii=draw(st.booleans()), allow_nan=True)
    text = re.sub(r'"\\ue000raw:([^"]*)"|"\ue000raw:([^"]*)"', lambda m: m[1] or m[2], text)
    text = "[" * depth + text + "]" * depth
    must_refuse = depth + _depth(body) > 32 or _forbidden(body)
    return text, must_refuse


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _forbidden(value: Any) -> bool:
    if isinstance(value, str):
        return bool(FORBIDDEN.search(value)) or value.startswith(_RAW)
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return not -(2**63) <= value < 2**63
    if isinstance(value, dict):
        return any(_forbidden(k) or _forbidden(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_forbidden(v) for v in value)
    return False


# Every one of these must be refused by the strict rules (NEWSFLASH_ALLOW_LOOPBACK_PUSH off).
HOSTILE = [
    "http://fcm.googleapis.com/fcm/send/x",
    "https://127.0.0.1/push/x",
    "https://127.0.0.1:8443/push/x",
    "https://169.254.169.254/latest/meta-data/",
    "https://[::1]/push/x",
    "https://[::ffff:127.0.0.1]/push/x",
    "https://[::ffff:a9fe:a9fe]/push/x",
    "https://[64:ff9b::7f00:1]/push/x",
    "https://[64:ff9b::a9fe:a9fe]/push/x",
    "https://100.64.0.1/push/x",
    "https://0.0.0.0/push/x",
    "https://10.0.0.1/push/x",
    "https://172.16.0.1/push/x",
    "https://192.168.1.1/push/x",
    "https://[fe80::1]/push/x",
    "https://[fd00::1]/push/x",
    "https://2130706433/push/x",
    "https://0177.0.0.1/push/x",
    "https://0x7f.0.0.1/push/x",
    "https://0x7f000001/push/x",
    "https://127.1/push/x",
    "https://017700000001/push/x",
    "https://user:pass@fcm.googleapis.com/fcm/send/x",
    "https://fcm.googleapis.com@127.0.0.1/fcm/send/x",
    "https://fcm.googleapis.com:8443/fcm/send/x",
    "https://fcm.googleapis.com:80/fcm/send/x",
    "https://fcm.googleapis.com.evil.example/fcm/send/x",
    "https://evil.example/x.fcm.googleapis.com/",
    "https://evil.example/?host=fcm.googleapis.com",
    "https://evilpush.apple.com/x",
    "https://push.apple.com/x",
    "https://xn--fcm-googleapis-com.example/x",
    "https://fcm.googleapis.com\\@evil.example/x",
    "https://fcm.googleapis.com%2eevil.example/x",
    "https://localhost/push/x",
    "https://LOCALHOST./push/x",
    "https://fcm.googleapis.com#@evil.example/x",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "javascript:alert(1)",
    "//fcm.googleapis.com/fcm/send/x",
    "https:///fcm/send/x",
]
