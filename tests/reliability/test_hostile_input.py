"""The inputs that once caused a 500, on SQLite and PostgreSQL: each is now a 400 naming the field."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask.testing import FlaskClient
from sqlalchemy import func, select

from core.accounts import Role
from core.adapters import tables as t
from core.adapters.accounts_sql import SqlAccounts
from core.model import AlertStatus
from tests.reliability.harness import ORIGIN, Rig, rig
from tests.support import hostile
from tests.support.services import ROOT, engine_database

pytestmark = pytest.mark.timeout(300)

EMAIL = "hostile-input@news.example"
PASSWORD = "correct horse battery staple"
ENDPOINT = "https://fcm.googleapis.com/fcm/send/hostile-input"
NESTED_10K = "[" * 10_000 + "]" * 10_000
# As deep as fits the 8 KB every reader route accepts: enough to exhaust Python's recursion.
NESTED_IN_8K = "[" * 4_000 + "]" * 4_000
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]
_POINT = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
)
READER_KEYS = {
    "p256dh": base64.urlsafe_b64encode(_POINT).rstrip(b"=").decode(),
    "auth": "MDEyMzQ1Njc4OWFiY2RlZg",
}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    redis_url: str,
    vapid_pem: str,
) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp(f"hostile-{request.param}")
    with (
        engine_database(request, tmp, "nf.db") as url,
        rig(
            tmp,
            url,
            redis_url,
            vapid_pem,
            ALLOW_LOOPBACK_PUSH="off",
            RATE_LIMIT_LOGIN="1000000 per minute",
        ) as r,
    ):
        SqlAccounts(r.engine).create_user(EMAIL, PASSWORD, Role.EDITOR)
        # Alert 1, sent: a correction of it reaches the body's parsing.
        assert r.publish() == "1"
        r.store.alerts.set_status(1, AlertStatus.SENT, time.time())
        yield r


def rows(r: Rig) -> tuple[int, ...]:
    """Row counts of every table a client's input could reach."""
    with r.engine.connect() as conn:
        return tuple(
            int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in (t.subscriptions, t.alerts, t.users, t.api_tokens)
        )


def refused(answer: Any, field: str | None, status: int = 400) -> dict[str, Any]:
    assert answer.status_code == status, (answer.status_code, answer.get_data(as_text=True))
    error = answer.get_json()["error"]
    assert {"code", "message"} <= set(error)
    if field is not None:
        assert error.get("field") == field, error
    return dict(error)


def signed(r: Rig, raw: bytes) -> dict[str, str]:
    return hostile.signed(r.settings, raw)


def hook(r: Rig, payload: str) -> Any:
    raw = payload.encode()
    return r.client.post(
        "/api/v1/hooks/cms", data=raw, content_type="application/json", headers=signed(r, raw)
    )


def editor(r: Rig) -> tuple[FlaskClient, str]:
    return hostile.editor_session(r.app, EMAIL, PASSWORD)


def send_everywhere(r: Rig, raw: str) -> list[tuple[str, Any]]:
    """raw as the body of every JSON route, each with what gets it past authentication."""
    session, csrf = editor(r)
    answers = []
    for method, path, auth in hostile.JSON_ROUTES:
        if auth == "webhook":
            answers.append((path, hook(r, raw)))
            continue
        client, headers = (session, csrf_h(csrf)) if auth == "session" else (r.client, r.auth())
        answers.append(
            (path, client.open(path, method=method, data=raw, headers=headers, content_type=JSON))
        )
    return answers


JSON = "application/json"


def csrf_h(token: str) -> dict[str, str]:
    return {"X-CSRF-Token": token}


# -- nesting ----------------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [NESTED_IN_8K, '{"a":' * 1_300 + "1" + "}" * 1_300])
def test_deep_nesting_is_a_400_on_every_json_route(site: Rig, raw: str) -> None:
    before = rows(site)
    for path, answer in send_everywhere(site, raw):
        error = refused(answer, None)
        assert "deep" in error["message"], (path, error)
    assert rows(site) == before


def test_ten_thousand_deep_json_is_refused_by_size_or_depth(site: Rig) -> None:
    for path, answer in send_everywhere(site, NESTED_10K):
        # 20 KB: over the 8 KB reader and editor routes take, within the webhook's 64 KB.
        if path == "/api/v1/hooks/cms":
            assert "32 deep" in refused(answer, None)["message"]
        else:
            refused(answer, None, 413)


def test_a_chunked_body_over_the_limit_is_a_413(site: Rig) -> None:
    for path, limit in (("/api/v1/subscriptions", 8 * 1024), ("/api/v1/hooks/cms", 64 * 1024)):
        raw = b'{"x": "' + b"a" * limit + b'"}'
        answer = site.client.post(
            path,
            input_stream=io.BytesIO(raw),
            content_type=JSON,
            headers={"Transfer-Encoding": "chunked", **signed(site, raw)},
            # What gunicorn says of a chunked body; without it Werkzeug reads none of it.
            environ_overrides={"wsgi.input_terminated": True},
        )
        assert refused(answer, None, 413)["code"] == "too_large"


# -- NUL and other control characters -----------------------------------------------------------
def _subscription(endpoint: str = ENDPOINT, **extra: Any) -> dict[str, Any]:
    return {"endpoint": endpoint, "keys": READER_KEYS, "topics": ["breaking"], **extra}


NUL_ENDPOINT = ENDPOINT + "\x00"
NUL_BODIES = [
    ("POST", "/api/v1/subscriptions", _subscription(NUL_ENDPOINT), "endpoint"),
    ("PUT", "/api/v1/subscriptions", _subscription(NUL_ENDPOINT), "endpoint"),
    ("POST", "/api/v1/subscriptions/lookup", {"endpoint": NUL_ENDPOINT, "auth": "x"}, "endpoint"),
    ("POST", "/api/v1/subscriptions/delete", {"endpoint": NUL_ENDPOINT, "auth": "x"}, "endpoint"),
    (
        "POST",
        "/api/v1/subscriptions/change",
        {"oldEndpoint": NUL_ENDPOINT, "oldAuth": "x", "subscription": _subscription()},
        "oldEndpoint",
    ),
    (
        "POST",
        "/api/v1/subscriptions/change",
        {"oldEndpoint": ENDPOINT, "oldAuth": "x", "subscription": _subscription(NUL_ENDPOINT)},
        "subscription.endpoint",
    ),
    ("POST", "/api/v1/subscriptions", _subscription(keys={"p256dh": "a\x00", "auth": "b"}), None),
    ("POST", "/api/v1/events", {"type": "clicked", "alert": "1\x00"}, "alert"),
    (
        "POST",
        "/api/v1/alerts",
        {"title": "T", "body": "B", "url": f"{ORIGIN}/a", "article_id": "story-1\x00"},
        "article_id",
    ),
    ("POST", "/api/v1/alerts", {"title": "T\x00", "body": "B", "url": f"{ORIGIN}/a"}, "title"),
    ("POST", "/api/v1/alerts", {"title": "T", "body": "B\x00", "url": f"{ORIGIN}/a"}, "body"),
    ("POST", "/api/v1/alerts", {"title": "T", "body": "B", "url": f"{ORIGIN}/a\x00"}, "url"),
    ("POST", "/api/v1/alerts", {"title": "T", "body": "B", "url": f"{ORIGIN}/a", "k\x00": 1}, None),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), NUL_BODIES)
def test_nul_in_a_field_is_a_400_naming_it(
    site: Rig, method: str, path: str, body: dict[str, Any], field: str | None
) -> None:
    before = rows(site)
    answer = site.client.open(path, method=method, json=body, headers=site.auth())
    error = refused(answer, field)
    assert "control character" in error["message"] or "plain text" in error["message"]
    assert rows(site) == before


def test_control_characters_in_one_line_fields_are_refused_but_body_keeps_lines(site: Rig) -> None:
    for field, value in (("title", "a\nb"), ("url", f"{ORIGIN}/a\tb"), ("article_id", "a\x1fb")):
        body = {"title": "T", "body": "B", "url": f"{ORIGIN}/a", field: value}
        refused(site.client.post("/api/v1/alerts", json=body, headers=site.auth()), field)
    multi = {"title": "T", "body": "line one\r\nline\ttwo", "url": f"{ORIGIN}/lines"}
    answer = site.client.post("/api/v1/alerts", json=multi, headers=site.auth())
    assert answer.status_code == 202, answer.get_json()
    assert site.alert(answer.get_json()["id"])["body"] == "line one\nline\ttwo"


@pytest.mark.parametrize(
    ("article", "field"),
    [
        ({"id": "story\x00"}, "article.id"),
        ({"title": "Breaking\x00"}, "article.title"),
        ({"summary": "Text\x00"}, "article.summary"),
        ({"url": f"{ORIGIN}/\x00"}, "article.url"),
        ({"topics": ["breaking\x00"]}, "article.topics.0"),
        ({"image": f"{ORIGIN}/i.png\x01"}, "article.image"),
    ],
)
def test_nul_in_a_webhook_field_is_a_400_naming_it(
    site: Rig, article: dict[str, Any], field: str
) -> None:
    before = rows(site)
    base = {"id": uuid.uuid4().hex, "title": "Breaking", "url": f"{ORIGIN}/s", "breaking": True}
    refused(hook(site, json.dumps({"article": {**base, **article}})), field)
    assert rows(site) == before


def test_an_unsigned_webhook_is_refused_before_its_body_is_parsed(site: Rig) -> None:
    answer = site.client.post(
        "/api/v1/hooks/cms", data=NESTED_10K, content_type=JSON, headers=signed(site, b"other")
    )
    assert refused(answer, "webhook-signature", 401)["code"] == "bad_signature"


def test_nul_in_the_test_device_endpoint_is_a_400(site: Rig) -> None:
    session, csrf = editor(site)
    answer = session.post(
        "/editor/test-device", json={"endpoint": NUL_ENDPOINT, "auth": "x"}, headers=csrf_h(csrf)
    )
    refused(answer, "endpoint")


# -- forms and query strings ---------------------------------------------------------------------
def test_nul_in_the_login_email_is_a_400_and_no_500(site: Rig) -> None:
    client = site.app.test_client()
    page = client.get("/editor/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    answer = client.post(
        "/editor/login",
        data={"email": EMAIL + "\x00", "password": PASSWORD, "csrf_token": token.group(1)},
        headers={"Accept": JSON},
    )
    refused(answer, "email")


@pytest.mark.parametrize(
    ("path", "form", "field"),
    [
        ("/editor/new", {"action": "send", "title": "T\x00", "body": "B", "url": "/"}, "title"),
        ("/editor/new", {"action": "review", "title": "T", "body": "B\x00", "url": "/"}, "body"),
        ("/editor/alerts/1/correct", {"title": "T", "body": "B", "url": "\x00"}, "url"),
        ("/editor/alerts/1/edit", {"title": "T\x07", "body": "B", "url": "/"}, "title"),
    ],
)
def test_control_characters_in_newsroom_forms_are_a_400(
    site: Rig, path: str, form: dict[str, str], field: str
) -> None:
    before = rows(site)
    session, csrf = editor(site)
    answer = session.post(path, data={**form, "csrf_token": csrf}, headers={"Accept": JSON})
    refused(answer, field)
    assert rows(site) == before


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/config?lang=%00",
        "/api/v1/alerts?before=%00",
        "/editor/audience?topics=breaking%00",
        "/manage?lang=sw%01",
    ],
)
def test_control_characters_in_query_parameters_are_a_400(site: Rig, path: str) -> None:
    answer = site.client.get(path, headers={**site.auth(), "Accept": JSON})
    refused(answer, re.search(r"\?(\w+)=", path).group(1))  # type: ignore[union-attr]


# -- numbers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("number", NON_FINITE)
def test_non_finite_numbers_are_a_400_naming_the_field(site: Rig, number: str) -> None:
    before = rows(site)
    sub = json.dumps(_subscription()).replace('"topics"', f'"expirationTime": {number}, "topics"')
    for method in ("POST", "PUT"):
        answer = site.client.open(
            "/api/v1/subscriptions", method=method, data=sub, content_type=JSON
        )
        refused(answer, "expirationTime")
    change = f'{{"oldEndpoint": "{ENDPOINT}", "oldAuth": "x", "subscription": {sub}}}'
    refused(
        site.client.post("/api/v1/subscriptions/change", data=change, content_type=JSON),
        "subscription.expirationTime",
    )
    for field in ("ttl", "send_at"):
        alert = f'{{"title": "T", "body": "B", "url": "{ORIGIN}/n", "{field}": {number}}}'
        answer = site.client.post(
            "/api/v1/alerts", data=alert, content_type=JSON, headers=site.auth()
        )
        refused(answer, field)
    article = f'{{"id": "n-{uuid.uuid4().hex}", "title": "T", "url": "{ORIGIN}/n", '
    refused(hook(site, article + f'"breaking": true, "ttl": {number}}}'), "ttl")
    assert rows(site) == before


def test_integers_beyond_64_bits_are_a_400_not_an_overflow(site: Rig) -> None:
    huge = "9" * 400
    sub = json.dumps(_subscription()).replace('"topics"', f'"expirationTime": {huge}, "topics"')
    refused(
        site.client.post("/api/v1/subscriptions", data=sub, content_type=JSON), "expirationTime"
    )
    alert = f'{{"title": "T", "body": "B", "url": "{ORIGIN}/n", "send_at": {huge}}}'
    answer = site.client.post("/api/v1/alerts", data=alert, content_type=JSON, headers=site.auth())
    refused(answer, "send_at")
    answer = site.client.post("/api/v1/events", json={"type": "clicked", "alert": "\u00b2"})
    refused(answer, "alert")


# -- the command line ----------------------------------------------------------------------------
def test_cli_refuses_control_characters_in_an_email_and_a_token_name(site: Rig) -> None:
    before = rows(site)
    for argv in (
        ["user", "create", "--email", "a\x01b@news.example", "--role", "editor"],
        ["token", "create", "--name", "cms\x1b[31m", "--role", "editor"],
    ):
        stdin_flag = ["--password-stdin"] if argv[0] == "user" else []
        result = subprocess.run(
            [sys.executable, "-m", "cli", *argv, *stdin_flag],
            cwd=ROOT,
            env=_cli_env(site),
            input=PASSWORD + "\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stdout + result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert rows(site) == before


def _cli_env(r: Rig) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLASH_")}
    return {**clean, **r.env}


def test_a_browser_posting_a_control_character_gets_a_readable_page(site: Rig) -> None:
    before = rows(site)
    session, csrf = editor(site)
    answer = session.post(
        "/editor/new",
        data={"action": "review", "title": "<b>T\x00", "body": "B", "url": "/", "csrf_token": csrf},
        headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
    )
    assert answer.status_code == 400 and answer.mimetype == "text/html"
    assert "title contains a control character (U+0000)" in answer.get_data(as_text=True)
    assert rows(site) == before
