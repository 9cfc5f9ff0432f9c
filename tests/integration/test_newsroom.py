"""The newsroom over HTTP: login, compose, undo, test sends, schedules, corrections, stop, reports,
audit. Flask test client on PostgreSQL, a live worker and beat, and the push stand-in."""

from __future__ import annotations

import contextlib
import gc
import json
import re
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from core.accounts import Role
from core.adapters import tables as t
from tests.support.newsroom import (
    ADMIN,
    EDITOR,
    EDITOR2,
    OPS,
    PASSWORD,
    SITE,
    NewsroomStack,
    csrf_of,
    start_newsroom_stack,
    topics_env,
)
from tests.support.newsroom_site import fresh_ip
from tests.support.services import (
    create_pg_database,
    drop_pg_database,
    free_port,
    port_open,
    require_service,
)
from tests.support.stack import wait_until

pytestmark = pytest.mark.timeout(120)

TOPICS = topics_env(
    "undo", "tests", "sched", "restart", "fix", "takeover", "stop", "report", "cms", "everyone"
)


# -- a tiny publisher site for "Prefill from article" -----------------------------------------
class _Site(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Page)
        self.pages: dict[str, tuple[int, dict[str, str], bytes, float]] = {}
        self.hits: list[str] = []

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Page(BaseHTTPRequestHandler):
    server: _Site

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        status, headers, body, delay = self.server.pages.get(
            self.path, (404, {"Content-Type": "text/plain"}, b"missing", 0.0)
        )
        if delay:
            time.sleep(delay)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


def _serve(port: int) -> _Site:
    site = _Site(port)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    return site


@pytest.fixture(scope="module")
def sites() -> Iterator[tuple[_Site, _Site]]:
    own, other = _serve(free_port()), _serve(free_port())
    yield own, other
    own.shutdown()
    other.shutdown()
    own.server_close()
    other.server_close()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, sites: tuple[_Site, _Site]
) -> Iterator[NewsroomStack]:
    require_service("Redis", port_open("127.0.0.1", 6379), "127.0.0.1:6379")
    require_service("PostgreSQL", port_open("127.0.0.1", 5432), "127.0.0.1:5432")
    own, _other = sites
    url = create_pg_database()
    try:
        yield from start_newsroom_stack(
            url, tmp_path_factory.mktemp("newsroom"), [SITE, own.origin], TOPICS
        )
    finally:
        drop_pg_database(url)


@pytest.fixture(scope="module")
def editor(stack: NewsroomStack) -> FlaskClient:
    return stack.login(EDITOR)


def _form(topic: str, **fields: Any) -> dict[str, Any]:
    return {
        "title": "Floods close the Thika road " + uuid.uuid4().hex[:6],
        "body": "Police advise drivers to use the bypass.",
        "url": f"{SITE}/news/{uuid.uuid4().hex[:8]}",
        "image": "",
        "topics": [topic],
        "urgency": "high",
        "ttl": "3600",
        "when": "now",
        **fields,
    }


def _token(client: FlaskClient, path: str = "/editor/new") -> str:
    return csrf_of(client.get(path).text)


def _review(client: FlaskClient, form: dict[str, Any]) -> Any:
    return client.post(
        "/editor/new", data={**form, "csrf_token": _token(client), "action": "review"}
    )


def _send(client: FlaskClient, form: dict[str, Any], **confirm: str) -> Any:
    review = _review(client, form)
    assert review.status_code == 200, review.text
    key = re.search(r'name="key" value="([^"]+)"', review.text)
    assert key
    return client.post(
        "/editor/new",
        data={
            **form,
            "csrf_token": csrf_of(review.text),
            "key": key.group(1),
            "action": "send",
            "confirm": "yes",
            **confirm,
        },
    )


def _alert_id(answer: Any) -> int:
    assert answer.status_code == 302, answer.text
    found = re.search(r"/editor/alerts/(\d+)$", answer.headers["Location"])
    assert found, answer.headers["Location"]
    return int(found.group(1))


def _audit(stack: NewsroomStack) -> list[dict[str, Any]]:
    return stack.accounts.audit_entries(limit=1000)


def _text(html: str) -> str:
    """The page as a reader sees it: tags dropped, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


# -- 1. accounts, sessions, CSRF ------------------------------------------------------------------
def test_pages_redirect_to_login_api_answers_401_and_roles_are_enforced(
    stack: NewsroomStack,
) -> None:
    anon = stack.client()
    for path in (
        "/editor",
        "/editor/new",
        "/editor/scheduled",
        "/editor/audit",
        "/editor/alerts/1",
    ):
        answer = anon.get(path)
        assert answer.status_code == 302, path
        assert answer.headers["Location"].startswith("/editor/login?next="), path
    assert anon.get("/api/v1/alerts").status_code == 401
    assert anon.post("/api/v1/alerts", json={}).status_code == 401
    assert anon.get("/editor/audience?topics=breaking").status_code == 401

    ops = stack.login(OPS)
    assert ops.get("/editor").status_code == 403
    assert ops.get("/editor/new").status_code == 403
    assert ops.get("/api/v1/alerts").status_code == 403
    editor = stack.login(EDITOR)
    assert editor.get("/editor/audit").status_code == 403
    assert stack.login(ADMIN).get("/editor/audit").status_code == 200


def test_login_sets_a_hardened_cookie_is_audited_and_logout_ends_the_session(
    stack: NewsroomStack,
) -> None:
    client = stack.client()
    page = client.get("/editor/login?next=/editor/scheduled")
    wrong = client.post(
        "/editor/login",
        data={"email": EDITOR, "password": "not the password", "csrf_token": csrf_of(page.text)},
    )
    assert wrong.status_code == 401
    assert "Wrong email or password" in wrong.text
    answer = client.post(
        "/editor/login",
        data={
            "email": EDITOR,
            "password": PASSWORD,
            "next": "/editor/scheduled",
            "csrf_token": csrf_of(page.text),
        },
    )
    assert answer.status_code == 302 and answer.headers["Location"] == "/editor/scheduled"
    (cookie,) = [c for c in answer.headers.getlist("Set-Cookie") if c.startswith("newsflash_s")]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # loopback origins: the local demo runs over http
    assert client.get("/editor").status_code == 200

    # An open redirect is never followed after login.
    evil = stack.client()
    page = evil.get("/editor/login")
    answer = evil.post(
        "/editor/login",
        data={
            "email": EDITOR,
            "password": PASSWORD,
            "next": "//evil.example/x",
            "csrf_token": csrf_of(page.text),
        },
    )
    assert answer.headers["Location"] == "/editor/"

    actions = [(e["action"], e["actor"]) for e in _audit(stack)[:5]]
    assert ("login", EDITOR) in actions and ("login.failed", EDITOR) in actions

    logout = client.post("/editor/logout", data={"csrf_token": _token(client, "/editor")})
    assert logout.status_code == 302
    assert client.get("/editor").status_code == 302
    assert _audit(stack)[0]["action"] == "logout"


def test_secure_cookie_outside_loopback(stack: NewsroomStack, tmp_path: Path) -> None:
    from service.app import create_app
    from tests.support.services import settings_from

    env = {**stack.env, "NEWSFLASH_PUBLIC_ORIGINS": "https://news.example"}
    app = create_app(settings_from(env))
    client = app.test_client()
    page = client.get("/editor/login", base_url="https://news.example")
    answer = client.post(
        "/editor/login",
        base_url="https://news.example",
        data={"email": EDITOR, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    assert answer.status_code == 302
    assert "Secure" in answer.headers["Set-Cookie"]
    app.extensions["newsflash"].container.engine.dispose()


def test_every_form_needs_the_csrf_token(stack: NewsroomStack, editor: FlaskClient) -> None:
    form = _form("undo")
    before = len(stack.api("GET", "/api/v1/alerts?limit=200").json["alerts"])
    for path, data in (
        ("/editor/login", {"email": EDITOR, "password": PASSWORD}),
        ("/editor/new", {**form, "action": "send", "confirm": "yes"}),
        ("/editor/alerts/1/cancel", {}),
        ("/editor/logout", {}),
    ):
        assert editor.post(path, data=data).status_code == 400, path
        assert editor.post(path, data={**data, "csrf_token": "forged"}).status_code == 400, path
    assert (
        editor.post("/editor/test-device", json={"endpoint": "x", "auth": "y"}).status_code == 400
    )
    assert len(stack.api("GET", "/api/v1/alerts?limit=200").json["alerts"]) == before
    assert editor.get("/editor").status_code == 200  # still logged in


def test_login_attempts_are_rate_limited(stack: NewsroomStack) -> None:
    from service.app import create_app
    from tests.support.services import settings_from

    env = {**stack.env, "NEWSFLASH_RATE_LIMIT_LOGIN": "3 per minute"}
    app = create_app(settings_from(env))
    client = app.test_client()
    # A fresh loopback address per run, so the window never carries over between runs.
    ip = fresh_ip()
    token = csrf_of(client.get("/editor/login", environ_base={"REMOTE_ADDR": ip}).text)
    codes = [
        client.post(
            "/editor/login",
            data={"email": EDITOR, "password": "guess-" + str(i), "csrf_token": token},
            environ_base={"REMOTE_ADDR": ip},
        ).status_code
        for i in range(5)
    ]
    assert codes == [401, 401, 401, 429, 429]
    blocked = client.post(
        "/editor/login",
        data={"email": EDITOR, "password": PASSWORD, "csrf_token": token},
        environ_base={"REMOTE_ADDR": ip},
    )
    assert blocked.status_code == 429 and "Too many login attempts" in blocked.text
    assert any(e["action"] == "login.rate_limited" for e in _audit(stack)[:5])
    app.extensions["newsflash"].container.engine.dispose()


# -- 2. compose, confirm, undo ---------------------------------------------------------------------
def test_compose_shows_limits_audience_and_escapes_titles(
    stack: NewsroomStack, editor: FlaskClient
) -> None:
    for sub in stack.standin.create_subscriptions(3):
        stack.subscribe(sub, ["everyone"])
    page = editor.get("/editor/new")
    assert page.status_code == 200
    # Over the limit is shown and refused, never cut by the browser: no maxlength.
    assert "maxlength" not in page.text
    assert 'data-limit="120"' in page.text and 'data-limit="300"' in page.text
    assert editor.get("/editor/audience?topics=everyone").json["audience"] == 3
    assert editor.get("/editor/audience?topics=nope").status_code == 400

    hostile = _form("everyone", title='<script>alert("x")</script> & <b>bold</b>')
    review = _review(editor, hostile)
    assert review.status_code == 200
    assert "<script>alert" not in review.text and "<b>bold" not in review.text
    assert "&lt;script&gt;alert" in review.text
    assert "Send to 3 readers" in _text(review.text)

    too_long = _review(editor, _form("everyone", title="x" * 121))
    assert too_long.status_code == 400
    assert "The headline is 121 characters; the limit is 120." in too_long.text


def test_send_needs_confirmation_and_an_extra_one_for_every_topic(
    stack: NewsroomStack, editor: FlaskClient
) -> None:
    before = len(stack.api("GET", "/api/v1/alerts?limit=200").json["alerts"])
    form = _form("undo")
    token = _token(editor)
    unconfirmed = editor.post(
        "/editor/new", data={**form, "csrf_token": token, "action": "send", "key": "k1"}
    )
    assert unconfirmed.status_code == 400 and "Confirm the send first" in unconfirmed.text

    everyone = _form("undo", topics=[t.slug for t in stack.settings.topics])
    review = _review(editor, everyone)
    assert 'name="confirm_all"' in review.text
    assert "This goes to every topic" in review.text
    once = _send(editor, everyone)
    assert once.status_code == 400 and "tick the box" in once.text
    assert len(stack.api("GET", "/api/v1/alerts?limit=200").json["alerts"]) == before

    twice = _send(editor, everyone, confirm_all="yes")
    alert_id = _alert_id(twice)
    cancel = editor.post(
        f"/editor/alerts/{alert_id}/cancel",
        data={"csrf_token": _token(editor, f"/editor/alerts/{alert_id}")},
    )
    assert cancel.status_code == 302
    assert stack.alert(alert_id)["status"] == "cancelled"


def test_undo_within_the_window_delivers_nothing_and_the_report_says_so(
    stack: NewsroomStack, editor: FlaskClient
) -> None:
    subs = stack.standin.create_subscriptions(4)
    for sub in subs:
        stack.subscribe(sub, ["undo"])
    answer = _send(editor, _form("undo"))
    alert_id = _alert_id(answer)
    report = editor.get(f"/editor/alerts/{alert_id}")
    assert "Undo" in report.text and "Sending in" in report.text
    assert stack.alert(alert_id)["status"] == "scheduled"

    undo = editor.post(
        f"/editor/alerts/{alert_id}/cancel", data={"csrf_token": csrf_of(report.text)}
    )
    assert undo.status_code == 302
    # Well past the window and a beat tick: still nothing pushed.
    time.sleep(stack.settings.undo_window_s + 2.0)
    final = stack.alert(alert_id)
    assert final["status"] == "cancelled"
    assert final["counts"]["delivered"] == 0 and final["started_at"] is None
    # Nothing is owed any more: nobody pending, the whole audience not sent.
    assert final["counts"]["pending"] == 0 and final["counts"]["not_sent"] == 4
    assert stack.payloads(alert_id) == []
    page = _text(editor.get(f"/editor/alerts/{alert_id}").text)
    assert "Called off — nobody received it." in page
    assert "Pending" not in page and "Not sent 4" in page
    entries = _audit(stack)
    cancel = next(
        e for e in entries if e["action"] == "alert.cancel" and e["target"] == str(alert_id)
    )
    assert json.loads(cancel["detail"])["undo"] is True
    assert any(e["action"] == "alert.send" and e["target"] == str(alert_id) for e in entries)


def test_a_send_that_is_not_undone_goes_out_after_the_window(
    stack: NewsroomStack, editor: FlaskClient
) -> None:
    subs = stack.standin.create_subscriptions(5)
    for sub in subs:
        stack.subscribe(sub, ["report"])
    form = _form("report", image=f"{SITE}/img/flood.jpg")
    sent_at = time.time()
    alert_id = _alert_id(_send(editor, form))
    final = stack.wait_status(alert_id, "sent", timeout_s=30)
    payloads = stack.payloads(alert_id)
    assert len(payloads) == 5
    assert {p["title"] for p in payloads} == {form["title"]}
    first = min(r.at for r in stack.received(alert_id))
    assert first >= sent_at + stack.settings.undo_window_s - 0.5, "sent before the undo window"
    assert final["counts"]["delivered"] == 5 and final["counts"]["pending"] == 0

    # Readers' service workers report displays and clicks, each echoing the receipt its push
    # carried; the report turns them into a CTR. Repeats and forgeries change nothing.
    receipts = [p["d"] for p in payloads]
    for receipt in receipts[:4] + receipts[:2]:
        event = {"alert": str(alert_id), "type": "displayed", "d": receipt}
        assert stack.client().post("/api/v1/events", json=event).status_code == 202
    forged = receipts[4].split(".")[0] + ".AAAAAAAAAAAAAAAAAAAAAA"
    for receipt in (receipts[0], receipts[0], forged):
        event = {"alert": str(alert_id), "type": "clicked", "d": receipt}
        assert stack.client().post("/api/v1/events", json=event).status_code == 202
    page = editor.get(f"/editor/alerts/{alert_id}")
    text = _text(page.text)
    assert "Delivered 5" in text and "Displayed 4" in text and "Clicked 1" in text
    assert "Click-through 20.0 %" in text
    milestones = editor.get(f"/editor/alerts/{alert_id}/milestones").json
    after = {m["percent"]: m["after_s"] for m in milestones["milestones"]}
    assert all(after[p] is not None for p in (50, 90, 100))
    assert 0 <= after[50] <= after[90] <= after[100] < 30
    assert milestones["click_through"] == pytest.approx(0.2)
    history = editor.get("/editor")
    row = re.search(rf'<tr data-alert-id="{alert_id}">(.*?)</tr>', history.text, re.S)
    assert row and "sent" in row.group(1) and EDITOR in row.group(1)


# -- prefill ----------------------------------------------------------------------------------------
ARTICLE = (
    b"""<!doctype html><html><head><title>Site title</title>
<meta property="og:title" content="Rains: Thika road closed &amp; traffic diverted">
<meta property="og:description" content="Police advise drivers to use the bypass until Friday.">
<meta property="og:image" content="/img/road.jpg">
</head><body>"""
    + b"x" * 1000
    + b"</body></html>"
)


def test_prefill_reads_open_graph_only_from_our_origins_with_limits(
    stack: NewsroomStack, editor: FlaskClient, sites: tuple[_Site, _Site]
) -> None:
    own, other = sites
    html = {"Content-Type": "text/html; charset=utf-8"}
    own.pages["/story"] = (200, html, ARTICLE, 0.0)
    own.pages["/moved"] = (302, {"Location": own.origin + "/story"}, b"", 0.0)
    own.pages["/away"] = (302, {"Location": other.origin + "/story"}, b"", 0.0)
    own.pages["/slow"] = (200, html, ARTICLE, 8.0)
    own.pages["/huge"] = (200, html, b"<html><head>" + b" " * (2 * 1024 * 1024), 0.0)
    own.pages["/pdf"] = (200, {"Content-Type": "application/pdf"}, b"%PDF", 0.0)
    other.pages["/story"] = (200, html, ARTICLE, 0.0)
    token = _token(editor)

    def prefill(url: str) -> Any:
        return editor.post("/editor/prefill", json={"url": url}, headers={"X-CSRF-Token": token})

    found = prefill(own.origin + "/story")
    assert found.status_code == 200, found.json
    assert found.json == {
        "url": own.origin + "/story",
        "title": "Rains: Thika road closed & traffic diverted",
        "body": "Police advise drivers to use the bypass until Friday.",
        "image": own.origin + "/img/road.jpg",
    }
    assert prefill(own.origin + "/moved").json["title"].startswith("Rains")

    hits = len(other.hits)
    for url, field_message in (
        (other.origin + "/story", "publisher's origins"),
        (own.origin + "/away", "redirects off the publisher's origins"),
        ("http://10.0.0.1/story", "publisher's origins"),
        (own.origin + "/pdf", "not an HTML page"),
    ):
        answer = prefill(url)
        assert answer.status_code == 400, url
        assert answer.json["error"]["field"] == "url"
        assert field_message in answer.json["error"]["message"], answer.json
    assert len(other.hits) == hits, "fetched from an origin that is not ours"

    started = time.monotonic()
    slow = prefill(own.origin + "/slow")
    assert slow.status_code == 400 and "in time" in slow.json["error"]["message"]
    assert time.monotonic() - started < 6
    huge = prefill(own.origin + "/huge")
    assert huge.status_code == 400 and "no og:title" in huge.json["error"]["message"]

    # Without JavaScript the same button reloads the form filled in.
    page = editor.post(
        "/editor/new",
        data={
            **_form("report", url=own.origin + "/story", title=""),
            "action": "prefill",
            "csrf_token": token,
        },
    )
    assert page.status_code == 200
    # The headline is a one-line field that wraps (a textarea): its text is its content.
    assert ">Rains: Thika road closed &amp; traffic diverted</textarea>" in page.text


def test_prefill_from_the_demo_article_and_from_a_page_without_open_graph(
    stack: NewsroomStack, editor: FlaskClient, sites: tuple[_Site, _Site]
) -> None:
    own, _other = sites
    html = {"Content-Type": "text/html; charset=utf-8"}
    demo = stack.client().get("/")
    assert demo.status_code == 200
    own.pages["/demo"] = (200, html, demo.data, 0.0)
    # A publisher's page with only a <title> ("Headline | Site") and a meta description.
    own.pages["/plain"] = (
        200,
        html,
        b"<html><head><title>Ferry timetable changes from Monday | The Eastmere Courier</title>"
        b'<meta name="description" content="Two early sailings move by ten minutes.">'
        b"</head><body></body></html>",
        0.0,
    )
    # Another site's name after the bar is part of the headline, not ours to cut.
    own.pages["/quote"] = (
        200,
        html,
        b"<html><head><title>Talks stall | Nairobi - Kampala</title></head></html>",
        0.0,
    )
    token = _token(editor)

    def prefill(url: str) -> Any:
        return editor.post("/editor/prefill", json={"url": url}, headers={"X-CSRF-Token": token})

    found = prefill(own.origin + "/demo").json
    assert found["title"] == "Harbour footbridge reopens three weeks early after storm repairs"
    assert found["body"].startswith("Engineers finished replacing the storm-damaged deck")
    plain = prefill(own.origin + "/plain").json
    assert plain["title"] == "Ferry timetable changes from Monday"
    assert plain["body"] == "Two early sailings move by ten minutes."
    assert prefill(own.origin + "/quote").json["title"] == "Talks stall | Nairobi - Kampala"


# -- 3. test sends -----------------------------------------------------------------------------------
def test_send_test_reaches_only_the_editors_own_test_devices_labelled(
    stack: NewsroomStack, editor: FlaskClient
) -> None:
    mine, colleague, reader = stack.standin.create_subscriptions(3)
    for sub in (mine, colleague, reader):
        stack.subscribe(sub, ["tests"])
    form = _form("tests", title="Minister resigns")
    no_device = editor.post(
        "/editor/new", data={**form, "action": "test", "csrf_token": _token(editor)}
    )
    assert no_device.status_code == 400 and "no test device" in no_device.text

    token = _token(editor)
    marked = editor.post(
        "/editor/test-device",
        json={"endpoint": mine["endpoint"], "auth": mine["keys"]["auth"]},
        headers={"X-CSRF-Token": token},
    )
    assert marked.status_code == 200 and marked.json["test_devices"] == 1
    wrong_auth = editor.post(
        "/editor/test-device",
        json={"endpoint": reader["endpoint"], "auth": mine["keys"]["auth"]},
        headers={"X-CSRF-Token": token},
    )
    assert wrong_auth.status_code == 404
    other = stack.login(EDITOR2)
    other.post(
        "/editor/test-device",
        json={"endpoint": colleague["endpoint"], "auth": colleague["keys"]["auth"]},
        headers={"X-CSRF-Token": _token(other)},
    )
    assert stack.client().post(
        "/editor/test-device", json={"endpoint": mine["endpoint"], "auth": "x"}
    ).status_code in (400, 401)

    page = editor.post("/editor/new", data={**form, "action": "test", "csrf_token": _token(editor)})
    assert page.status_code == 200 and "Test sent to your test devices only" in page.text
    test_alert = stack.api("GET", "/api/v1/alerts?limit=1").json["alerts"][0]
    assert test_alert["kind"] == "test"
    stack.wait_status(test_alert["id"], "sent")
    got = stack.received(test_alert["id"])
    assert [r.token for r in got] == [mine["endpoint"].rsplit("/", 1)[-1]]
    assert got[0].payload["title"] == "[TEST] Minister resigns"
    assert stack.standin.deliveries_for(colleague["endpoint"]) == []
    assert stack.standin.deliveries_for(reader["endpoint"]) == []

    # Never the real send: the real one still goes to everyone, idempotency untouched.
    real = _alert_id(_send(editor, form))
    stack.wait_status(real, "sent", timeout_s=30)
    assert {p["title"] for p in stack.payloads(real)} == {"Minister resigns"}
    assert len(stack.payloads(real)) == 3
    history = editor.get("/editor").text
    row = re.search(rf'<tr data-alert-id="{test_alert["id"]}">(.*?)</tr>', history, re.S)
    assert row and "nf-kind-test" in row.group(1)
    assert any(
        e["action"] == "alert.test" and e["target"] == test_alert["id"] for e in _audit(stack)
    )


def test_the_api_and_the_newsroom_share_one_rule_for_test_sends_and_corrections(
    stack: NewsroomStack,
) -> None:
    """One use case behind both entry points: a test send is labelled [TEST] once and needs a
    test device; correcting an alert that is not sent is a 409 Conflict on both."""
    email = f"rehearsal-{uuid.uuid4().hex[:8]}@news.example"  # an editor with no device yet
    stack.accounts.create_user(email, PASSWORD, Role.EDITOR)
    editor = stack.login(email)
    (mine,) = stack.standin.create_subscriptions(1)
    stack.subscribe(mine, ["tests"])
    body = {
        "title": "[TEST] Rehearsal",
        "body": "Only for me",
        "url": f"{SITE}/t",
        "topics": ["tests"],
    }
    no_device = editor.post("/api/v1/alerts/test", json=body)
    assert no_device.status_code == 400 and no_device.json["error"]["field"] == "test"
    marked = editor.post(
        "/editor/test-device",
        json={"endpoint": mine["endpoint"], "auth": mine["keys"]["auth"]},
        headers={"X-CSRF-Token": _token(editor)},
    )
    assert marked.status_code == 200
    sent = editor.post("/api/v1/alerts/test", json=body)
    assert sent.status_code == 202, sent.text
    assert stack.alert(sent.json["id"])["title"] == "[TEST] Rehearsal"

    later = stack.api(
        "POST",
        "/api/v1/alerts",
        json={**body, "title": "Later", "send_at": int(time.time()) + 3600},
    )
    assert later.status_code == 202 and later.json["status"] == "scheduled"
    api = stack.api("POST", f"/api/v1/alerts/{later.json['id']}/correct", json={"title": "Fix"})
    assert api.status_code == 409 and api.json["error"]["field"] == "status"
    page = editor.post(
        f"/editor/alerts/{later.json['id']}/correct",
        data={
            "title": "Fix",
            "body": "b",
            "url": f"{SITE}/t",
            "confirm": "yes",
            "csrf_token": _token(editor, f"/editor/alerts/{later.json['id']}/correct"),
        },
    )
    assert page.status_code == 409
    stack.api("POST", f"/api/v1/alerts/{later.json['id']}/cancel")


def test_manage_page_offers_the_test_device_control_only_to_logged_in_editors(
    stack: NewsroomStack, editor: FlaskClient
) -> None:
    page = editor.get("/manage")
    assert page.status_code == 200
    control = re.search(r'<section id="nf-test-device"[^>]*>', page.text)
    assert control, "no test-device control on /manage for a logged-in editor"
    assert 'data-url="/editor/test-device"' in control.group(0)
    assert f'data-csrf="{_token(editor)}"' in control.group(0)
    assert "editor.device.js" in page.text
    # The newsroom's box is English on a Kiswahili page too, and says so (it said nothing).
    swahili = editor.get("/manage?lang=sw").text
    assert '<html lang="sw"' in swahili
    assert re.search(r'<section id="nf-test-device" lang="en"', swahili)
    for client in (stack.client(), stack.login(OPS)):
        other = client.get("/manage")
        assert other.status_code == 200 and "nf-test-device" not in other.text


# -- 4. schedules ----------------------------------------------------------------------------------
def _local(ts: float, stack: NewsroomStack) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(stack.settings.newsroom_timezone)).strftime(
        "%Y-%m-%dT%H:%M:%S"
    )


def test_schedule_in_newsroom_time_edit_cancel_and_fire_on_time(
    stack: NewsroomStack, editor: FlaskClient
) -> None:
    for sub in stack.standin.create_subscriptions(2):
        stack.subscribe(sub, ["sched"])
    send_at = time.time() + 6
    keep = _send(editor, _form("sched", when="later", send_at=_local(send_at, stack)))
    assert keep.status_code == 302 and keep.headers["Location"].startswith("/editor/scheduled")
    drop = _send(
        editor, _form("sched", when="later", send_at=_local(time.time() + 5, stack), title="Drop")
    )
    assert drop.status_code == 302
    listed = editor.get("/editor/scheduled")
    ids = [int(x) for x in re.findall(r'<tr data-alert-id="(\d+)">', listed.text)]
    assert len(ids) >= 2
    keep_id, drop_id = ids[-1], ids[-2]  # sorted by send time: "Drop" fires first
    assert stack.alert(drop_id)["title"] == "Drop"
    # The clock and its zone held together by a no-break space (nf_time).
    shown = datetime.fromtimestamp(send_at, ZoneInfo("Africa/Nairobi")).strftime("%H:%M:%S EAT")
    assert shown.replace(" ", "\u00a0") in listed.text

    edit_page = editor.get(f"/editor/alerts/{keep_id}/edit")
    assert edit_page.status_code == 200 and 'value="later" checked' in edit_page.text
    saved = editor.post(
        f"/editor/alerts/{keep_id}/edit",
        data={
            **_form("sched", when="later", send_at=_local(send_at, stack)),
            "title": "Edited before it fired",
            "csrf_token": csrf_of(edit_page.text),
        },
    )
    assert saved.status_code == 302
    cancel = editor.post(
        f"/editor/alerts/{drop_id}/cancel", data={"csrf_token": csrf_of(listed.text)}
    )
    assert cancel.status_code == 302

    fired = stack.wait_status(keep_id, "sent", timeout_s=20)
    due = float(int(send_at))  # the form has whole seconds
    assert due <= _fired_at(stack, keep_id) <= due + 5, _late(stack, keep_id, due)
    assert min(r.at for r in stack.received(keep_id)) >= due, "delivered before its time"
    assert {p["title"] for p in stack.payloads(keep_id)} == {"Edited before it fired"}
    assert fired["counts"]["delivered"] == 2
    assert stack.alert(drop_id)["status"] == "cancelled" and stack.payloads(drop_id) == []
    late = editor.post(
        f"/editor/alerts/{keep_id}/edit",
        data={**_form("sched"), "csrf_token": _token(editor)},
    )
    assert late.status_code == 302 and "notice=" in late.headers["Location"]
    actions = {(e["action"], e["target"]) for e in _audit(stack)}
    assert ("alert.schedule", str(keep_id)) in actions
    assert ("alert.schedule.edit", str(keep_id)) in actions
    assert ("alert.cancel", str(drop_id)) in actions


def test_scheduled_alerts_fire_after_beat_and_worker_restart(
    stack: NewsroomStack, editor: FlaskClient
) -> None:
    for sub in stack.standin.create_subscriptions(2):
        stack.subscribe(sub, ["restart"])
    missed_at = time.time() + 3
    missed = _send(
        editor, _form("restart", when="later", send_at=_local(missed_at, stack), title="Missed")
    )
    stack.stop_workers()
    try:
        wait_until(lambda: time.time() > missed_at + 1, 10, "send_at to pass while down")
        ids = sorted(
            int(x)
            for x in re.findall(r'<tr data-alert-id="(\d+)">', editor.get("/editor/scheduled").text)
        )
        assert missed.status_code == 302 and ids, "the schedule was lost while beat was down"
        missed_id = ids[-1]
        assert stack.alert(missed_id)["status"] == "scheduled"
        on_time_at = time.time() + 9  # a cold start of worker and beat takes ~5 s
        _send(
            editor,
            _form("restart", when="later", send_at=_local(on_time_at, stack), title="On time"),
        )
    finally:
        stack.start_workers()
    restarted = time.time()
    stack.wait_status(missed_id, "sent", timeout_s=15)
    assert _fired_at(stack, missed_id) <= restarted + 5, _late(stack, missed_id, restarted)
    on_time = next(
        a
        for a in stack.api("GET", "/api/v1/alerts?limit=5").json["alerts"]
        if a["title"] == "On time"
    )
    stack.wait_status(on_time["id"], "sent", timeout_s=30)
    due = float(int(on_time_at))
    # On time once beat is back (a restart slower than the lead time only moves the baseline).
    fired = _fired_at(stack, int(on_time["id"]))
    assert due <= fired <= max(due, restarted) + 5, _late(stack, int(on_time["id"]), due)
    assert min(r.at for r in stack.received(on_time["id"])) >= due


def _fired_at(stack: NewsroomStack, alert_id: int) -> float:
    """When beat moved the alert out of "scheduled" (its queued_at)."""
    with stack.engine.connect() as conn:
        return float(
            conn.execute(select(t.alerts.c.queued_at).where(t.alerts.c.id == alert_id)).scalar_one()
        )


def _late(stack: NewsroomStack, alert_id: int, due: float) -> str:
    return (
        f"alert {alert_id} fired {_fired_at(stack, alert_id) - due:+.2f} s from its time; "
        f"beat log:\n{stack.beat.output()[-3000:]}"
    )


# -- 5. corrections --------------------------------------------------------------------------------
def test_correction_goes_to_the_same_readers_with_the_same_tag_and_is_linked(
    stack: NewsroomStack, editor: FlaskClient
) -> None:
    subs = stack.standin.create_subscriptions(3)
    for sub in subs:
        stack.subscribe(sub, ["fix"])
    late = stack.standin.create_subscription()
    original_id = _alert_id(_send(editor, _form("fix", title="Five killed in crash")))
    stack.wait_status(original_id, "sent", timeout_s=30)
    stack.subscribe(late, ["fix"])  # subscribed after the original: not corrected

    form = editor.get(f"/editor/alerts/{original_id}/correct")
    assert form.status_code == 200 and "Five killed in crash" in form.text
    fields = {
        "title": "Correction: four killed in crash",
        "body": "An earlier alert gave the wrong number.",
        "url": stack.alert(original_id)["url"],
        "csrf_token": csrf_of(form.text),
    }
    # Review first: the before and after, word by word; nothing is sent yet.
    review = editor.post(f"/editor/alerts/{original_id}/correct", data=fields)
    assert review.status_code == 200 and 'id="correction-diff"' in review.text
    assert "<del>Five</del>" in review.text and "<ins>Correction: four</ins>" in review.text
    unconfirmed = editor.post(
        f"/editor/alerts/{original_id}/correct", data={**fields, "action": "send"}
    )
    assert unconfirmed.status_code == 400
    answer = editor.post(
        f"/editor/alerts/{original_id}/correct",
        data={**fields, "action": "send", "confirm": "yes"},
    )
    correction_id = _alert_id(answer)
    # Like a send, it waits out the undo window first.
    assert stack.alert(correction_id)["status"] == "scheduled"
    assert 'id="undo"' in editor.get(f"/editor/alerts/{correction_id}").text
    stack.wait_status(correction_id, "sent", timeout_s=30)
    original, correction = stack.alert(original_id), stack.alert(correction_id)
    assert correction["corrects"] == str(original_id)
    assert correction["tag"] == original["tag"]
    got = stack.received(correction_id)
    assert sorted(r.token for r in got) == sorted(s["endpoint"].rsplit("/", 1)[-1] for s in subs)
    assert {r.headers["topic"] for r in got} == {original["tag"]}
    assert {r.payload["tag"] for r in got} == {original["tag"]}
    assert stack.standin.deliveries_for(late["endpoint"]) == []

    text = _text(editor.get(f"/editor/alerts/{correction_id}").text)
    assert f"Corrects #{original_id} Five killed in crash" in text
    text = _text(editor.get(f"/editor/alerts/{original_id}").text)
    assert f"Corrected by #{correction_id} Correction: four killed in crash" in text

    # The API does the same for scripts; correcting the original again corrects the latest
    # correction, and every report in the chain shows all three.
    api = stack.api(
        "POST", f"/api/v1/alerts/{original_id}/correct", json={"title": "Correction again"}
    )
    assert api.status_code == 202 and api.json["corrects"] == str(correction_id)
    stack.wait_status(api.json["id"], "sent", timeout_s=30)
    assert {r.payload["tag"] for r in stack.received(api.json["id"])} == {original["tag"]}
    for page in (original_id, correction_id, api.json["id"]):
        html = editor.get(f"/editor/alerts/{page}").text
        assert [int(x) for x in re.findall(r'data-chain-id="(\d+)"', html)] == [
            int(original_id),
            int(correction_id),
            int(api.json["id"]),
        ]
    corrected = [e for e in _audit(stack) if e["action"] == "alert.correct"]
    first = json.loads(corrected[-1]["detail"])  # newest first
    assert first["before"]["title"] == "Five killed in crash" and first["undo_window_s"] == 3


def test_a_correction_during_a_slow_send_takes_it_over(
    stack: NewsroomStack, editor: FlaskClient
) -> None:
    """Corrected while still sending: every reader ends with the correction, once, and no push
    of the old words is accepted after the correction's (same tag: it would replace it)."""
    audience = 80  # about five seconds of sending at 4 in flight per process: time to correct
    subs = stack.standin.create_subscriptions(audience, "slow", delay_s=0.5)
    for sub in subs:
        stack.subscribe(sub, ["takeover"])
    original_id = _alert_id(_send(editor, _form("takeover", title="Five killed in crash")))
    wait_until(lambda: len(stack.received(original_id)) >= 4, 30, "the slow send to be under way")
    form = editor.get(f"/editor/alerts/{original_id}/correct")
    review = editor.post(
        f"/editor/alerts/{original_id}/correct",
        data={
            "title": "Four killed in crash",
            "body": "B",
            "url": stack.alert(original_id)["url"],
            "csrf_token": csrf_of(form.text),
        },
    )
    assert 'id="takes-over"' in review.text, "the review says the alert stops"
    api = stack.api(
        "POST", f"/api/v1/alerts/{original_id}/correct", json={"title": "Four killed in crash"}
    )
    assert api.status_code == 202, api.json
    fixed = api.json["id"]
    # Stopped as the correction is released, not once its plan task (queued behind the
    # original's batch tasks) runs: only pushes already on their way still go out.
    assert stack.alert(original_id)["status"] == "cancelled"
    stack.wait_status(fixed, "sent", timeout_s=60)

    assert stack.alert(original_id)["status"] == "cancelled"
    old_words = len(stack.received(original_id))
    assert old_words <= audience
    for sub in subs:
        got = [r.payload["id"] for r in stack.standin.deliveries_for(sub["endpoint"])]
        assert got.count(fixed) == 1 and got[-1] == fixed, got
    text = _text(editor.get(f"/editor/alerts/{original_id}").text)
    assert f"Stopped by correction #{fixed}" in text
    assert f"{old_words} of " in text and "instead of this alert" in text
    time.sleep(1.0)
    assert len(stack.received(original_id)) == old_words


# -- 6. stop in flight -------------------------------------------------------------------------------
def test_stop_sending_halts_mid_fanout_within_two_seconds(
    stack: NewsroomStack, editor: FlaskClient
) -> None:
    audience = 80
    subs = stack.standin.create_subscriptions(audience, "slow", delay_s=0.5)
    for sub in subs:
        stack.subscribe(sub, ["stop"])
    alert_id = _alert_id(_send(editor, _form("stop", title="Stop me")))
    wait_until(lambda: len(stack.received(alert_id)) >= 8, 30, "the slow send to be under way")
    report = editor.get(f"/editor/alerts/{alert_id}")
    assert 'id="stop"' in report.text
    stopped_at = time.time()
    answer = editor.post(
        f"/editor/alerts/{alert_id}/cancel", data={"csrf_token": csrf_of(report.text)}
    )
    assert answer.status_code == 302

    # Settle: in-flight pushes finish and are recorded; nothing new starts.
    def settled() -> dict[str, Any] | None:
        a = stack.alert(alert_id)
        reached = len(stack.received(alert_id))
        time.sleep(0.6)
        return a if reached == len(stack.received(alert_id)) == a["counts"]["delivered"] else None

    final = wait_until(settled, 20, "the stopped send to settle")
    arrivals = [r.at for r in stack.received(alert_id)]
    assert max(arrivals) <= stopped_at + 2.0, (
        f"pushes kept starting {max(arrivals) - stopped_at:.2f} s after Stop"
    )
    reached = len(arrivals)
    assert 8 <= reached < audience
    assert final["status"] == "cancelled"
    text = _text(editor.get(f"/editor/alerts/{alert_id}").text)
    assert (
        "Stopped at" in text
        and f"{reached} of {audience} subscribers were reached before the stop" in text
    )
    time.sleep(1.5)
    assert len(stack.received(alert_id)) == reached
    cancel = next(
        e for e in _audit(stack) if e["action"] == "alert.cancel" and e["target"] == str(alert_id)
    )
    assert json.loads(cancel["detail"])["was"] in ("queued", "sending")


# -- 8. CMS webhook ----------------------------------------------------------------------------------
def _sign(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    import base64
    import hashlib
    import hmac

    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def _hook(stack: NewsroomStack, payload: dict[str, Any], **override: Any) -> Any:
    body = override.pop("body", json.dumps(payload).encode())
    msg_id = override.pop("msg_id", "msg_" + uuid.uuid4().hex)
    ts = override.pop("ts", int(time.time()))
    signature = override.pop("signature", None) or _sign(
        stack.settings.cms_webhook_secret, msg_id, ts, body
    )
    return stack.client().post(
        "/api/v1/hooks/cms",
        data=body,
        headers={
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": signature,
        },
    )


def test_cms_webhook_signed_breaking_article_becomes_one_alert(stack: NewsroomStack) -> None:
    for sub in stack.standin.create_subscriptions(2):
        stack.subscribe(sub, ["cms"])
    article_id = "cms-" + uuid.uuid4().hex[:8]
    article = {
        "type": "article.published",
        "article": {
            "id": article_id,
            "title": "Parliament dissolved",
            "summary": "The president dissolved parliament this morning.",
            "url": f"{SITE}/news/{article_id}",
            "topics": ["cms", "not-a-topic"],
            "breaking": True,
        },
    }
    # A whole article (more than the API's 8 KB) is fine; a flood is not.
    plain = _hook(
        stack,
        {"article": {**article["article"], "id": "quiet", "breaking": False, "html": "x" * 20_000}},
    )
    assert plain.status_code == 200 and plain.json["alert"] is None
    flood = _hook(stack, {"article": {**article["article"], "html": "x" * 70_000}})
    assert flood.status_code == 413

    delivery_id = "msg_" + uuid.uuid4().hex
    first = _hook(stack, article, msg_id=delivery_id)
    assert first.status_code == 202, first.json
    # The CMS's own delivery id is the request id our logs carry for this alert.
    assert first.headers["X-Request-Id"] == delivery_id
    alert_id = first.json["alert"]["id"]
    alert = stack.wait_status(alert_id, "sent", timeout_s=30)
    assert alert["article_id"] == article_id and alert["topics"] == ["breaking", "cms"]
    assert alert["created_by"] == "cms"
    # The CMS retries (new delivery id) and re-saves: the same alert, nothing sent twice.
    again = _hook(stack, article)
    edited = _hook(
        stack, {"article": {**article["article"], "title": "Parliament dissolved (upd)"}}
    )
    assert again.status_code == edited.status_code == 200
    assert again.json["alert"]["id"] == edited.json["alert"]["id"] == alert_id
    time.sleep(1.0)
    cms_payloads = [p for p in stack.payloads(alert_id)]
    assert len(cms_payloads) == alert["counts"]["delivered"]
    with stack.engine.connect() as conn:
        count = conn.execute(select(t.alerts.c.id).where(t.alerts.c.article_id == article_id)).all()
    assert len(count) == 1
    assert any(e["actor"] == "cms" and e["action"] == "alert.send" for e in _audit(stack))


def test_cms_webhook_rejects_bad_signature_stale_timestamp_and_replay(
    stack: NewsroomStack,
) -> None:
    article = {
        "article": {
            "id": "a-" + uuid.uuid4().hex[:6],
            "title": "T",
            "url": f"{SITE}/n",
            "alert": True,
            "topics": ["cms"],
        }
    }
    body = json.dumps(article).encode()
    now = int(time.time())

    bad = _hook(stack, article, signature="v1," + "A" * 44)
    assert bad.status_code == 401 and bad.json["error"]["code"] == "bad_signature"
    other_key = _sign("whsec_" + "b3RoZXIta2V5LW90aGVyLWtleS0xMjM0NQ==", "m1", now, body)
    assert _hook(stack, article, msg_id="m1", ts=now, signature=other_key).status_code == 401
    tampered = _hook(
        stack,
        article,
        body=body.replace(b'"T"', b'"X"'),
        msg_id="m2",
        ts=now,
        signature=_sign(stack.settings.cms_webhook_secret, "m2", now, body),
    )
    assert tampered.status_code == 401
    stale = _hook(stack, article, ts=now - 6 * 60)
    assert stale.status_code == 401 and stale.json["error"]["code"] == "stale_timestamp"
    future = _hook(stack, article, ts=now + 6 * 60)
    assert future.status_code == 401 and future.json["error"]["field"] == "webhook-timestamp"
    missing = stack.client().post("/api/v1/hooks/cms", json=article)
    assert missing.status_code == 401 and missing.json["error"]["field"] == "webhook-id"

    msg_id = "msg_" + uuid.uuid4().hex
    first = _hook(stack, article, msg_id=msg_id, ts=now)
    assert first.status_code == 202, first.json
    replay = _hook(stack, article, msg_id=msg_id, ts=now)
    assert replay.status_code == 409 and replay.json["error"]["code"] == "replayed"
    # Several signatures (key rotation): any valid one is enough.
    rotated = "v1,bm90LXRoaXMtb25l " + _sign(stack.settings.cms_webhook_secret, "m3", now, body)
    assert _hook(stack, article, msg_id="m3", ts=now, signature=rotated).status_code == 200
    # Not handled (bad article) → the id is not burnt; the fixed retry is accepted.
    broken = {
        "article": {
            **article["article"],
            "id": "b-" + uuid.uuid4().hex[:6],
            "url": "https://evil.example/x",
        }
    }
    msg = "msg_" + uuid.uuid4().hex
    assert _hook(stack, broken, msg_id=msg).status_code == 400
    fixed = {"article": {**broken["article"], "url": f"{SITE}/fixed"}}
    assert _hook(stack, fixed, msg_id=msg).status_code == 202
    stack.api("POST", f"/api/v1/alerts/{first.json['alert']['id']}/cancel", json={})


# -- 9. audit ------------------------------------------------------------------------------------------
def test_admins_read_the_audit_log_of_every_newsroom_action(
    stack: NewsroomStack,
    editor: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Runs last: the actions of the tests above are all expected on record."""
    import cli.main as cli

    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(stack.tmp)  # no stray .env from the checkout
    # The CLI is a short-lived process that leaves its pool to exit; in-process, collect it here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        assert cli.main(["token", "create", "--name", "cms-audit", "--role", "editor"]) == 0
        token = capsys.readouterr().out.strip().splitlines()[-1]
        token_id = next(r["id"] for r in stack.accounts.list_tokens() if r["name"] == "cms-audit")
        assert cli.main(["token", "revoke", str(token_id)]) == 0
        gc.collect()
    admin = stack.login(ADMIN)
    page = admin.get("/editor/audit")
    assert page.status_code == 200
    assert token not in page.text, "a token leaked into the audit page"
    text = _text(page.text)
    for action in ("login", "token.create", "token.revoke"):
        assert action in text, action
    # Details in words: no Python None/True/False (an alert sent at once has no send_at).
    assert not re.search(r"\b(None|True|False)\b", text), re.findall(r".{40}\bNone\b.{20}", text)
    actions = {e["action"] for e in _audit(stack)}
    # Everything the earlier tests did in this module is on record.
    assert {
        "login",
        "login.failed",
        "alert.send",
        "alert.cancel",
        "alert.test",
        "alert.correct",
        "alert.schedule",
        "token.create",
        "token.revoke",
    } <= actions
    # Read-only: the only form on the page is "Log out".
    assert re.findall(r'<form[^>]*action="([^"]+)"', page.text) == ["/editor/logout"]
    assert admin.post("/editor/audit", data={"csrf_token": csrf_of(page.text)}).status_code == 405
    assert editor.get("/editor/audit").status_code == 403
