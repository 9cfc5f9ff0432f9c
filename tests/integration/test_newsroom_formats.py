"""Duplicate guard, templates and UTM tags over HTTP on SQLite and PostgreSQL (API, CMS webhook,
newsroom pages). No worker: alerts wait in the queue, which is all these rules need."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis as redis_lib
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core.accounts import Role
from core.adapters import migrate
from core.adapters import tables as t
from core.adapters.accounts_sql import SqlAccounts
from core.adapters.sql import make_engine
from service.app import create_app
from tests.support.hostile import signed
from tests.support.newsroom import PASSWORD, csrf_of
from tests.support.services import TEST_REDIS_DB, engine_database, make_env, settings_from

SITE = "https://news.example"
EDITOR = "ed@news.example"
ADMIN = "boss@news.example"


@dataclass
class Room:
    app: Flask
    engine: Any
    token: str

    def api(self, path: str, body: Any, method: str = "POST") -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        return self.app.test_client().open(path, method=method, json=body, headers=headers)

    def cms(self, article: dict[str, Any]) -> Any:
        raw = json.dumps({"article": article}).encode()
        headers = {**signed(self.app.extensions["newsflash"].settings, raw)}
        headers["Content-Type"] = "application/json"
        return self.app.test_client().post("/api/v1/hooks/cms", data=raw, headers=headers)

    def login(self, email: str) -> FlaskClient:
        client = self.app.test_client()
        page = client.get("/editor/login")
        answer = client.post(
            "/editor/login",
            data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        )
        assert answer.status_code == 302, answer.text
        return client

    def audit(self, action: str) -> list[dict[str, Any]]:
        a = t.audit_log
        with self.engine.connect() as conn:
            rows = conn.execute(select(a).where(a.c.action == action).order_by(a.c.id))
            return [dict(r) for r in rows.mappings()]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def room(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, vapid_pem: str
) -> Iterator[Room]:
    request.getfixturevalue("redis_url")
    redis_url = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    redis_lib.Redis.from_url(redis_url).flushdb()
    tmp = tmp_path_factory.mktemp(f"formats-{request.param}")
    with engine_database(request, tmp) as url:
        env = make_env(
            tmp / "var",
            url,
            redis_url,
            vapid_pem,
            PUBLIC_ORIGINS=SITE,
            TOPICS="breaking:Breaking news:default,politics,live",
            DUPLICATE_WINDOW_S="21600",
            RATE_LIMIT_LOGIN="100000 per minute",
        )
        engine = make_engine(url)
        migrate.upgrade(engine)
        app = create_app(settings_from(env))
        accounts = SqlAccounts(engine)
        accounts.create_user(EDITOR, PASSWORD, Role.EDITOR)
        accounts.create_user(ADMIN, PASSWORD, Role.ADMIN)
        token = accounts.create_token("formats-" + uuid.uuid4().hex[:6], Role.EDITOR)
        try:
            yield Room(app, engine, token)
        finally:
            engine.dispose()
            app.extensions["newsflash"].container.engine.dispose()


def _unique(word: str) -> dict[str, Any]:
    """A body no other test repeats (the module shares one database)."""
    tag = uuid.uuid4().hex[:8]
    return {"title": f"{word} {tag} in the capital", "body": "More soon", "url": f"{SITE}/{tag}"}


# -- duplicate guard --------------------------------------------------------------------------
def test_the_api_answers_409_with_the_earlier_alert_unless_duplicate_ok(room: Room) -> None:
    body = _unique("Quake")
    first = room.api("/api/v1/alerts", body)
    assert first.status_code == 202, first.json
    again = room.api("/api/v1/alerts", {**body, "title": "A different headline " + body["url"]})
    assert again.status_code == 409, again.json
    assert again.json["error"]["code"] == "duplicate"
    assert again.json["error"]["field"] == "duplicate_ok"
    earlier = again.json["earlier"]
    assert earlier["id"] == first.json["id"] and earlier["title"] == body["title"]
    assert earlier["status"] == "queued" and earlier["link"] == f"/api/v1/alerts/{earlier['id']}"
    same_words = {**body, "url": body["url"] + "-live", "title": body["title"].upper() + "!"}
    assert room.api("/api/v1/alerts", same_words).status_code == 409
    forced = room.api("/api/v1/alerts", {**body, "duplicate_ok": True})
    assert forced.status_code == 202 and forced.json["id"] != first.json["id"]
    detail = json.loads(room.audit("alert.send")[-1]["detail"])
    assert detail["duplicate_of"] == int(first.json["id"])
    bad = room.api("/api/v1/alerts", {**body, "duplicate_ok": "please"})
    assert bad.status_code == 400 and bad.json["error"]["field"] == "duplicate_ok"


def test_the_cms_webhook_gets_409_and_may_resend_saying_it_is_intended(room: Room) -> None:
    body = _unique("Fire")
    assert room.api("/api/v1/alerts", body).status_code == 202
    article = {"id": uuid.uuid4().hex, "breaking": True, "title": body["title"], "url": body["url"]}
    refused = room.cms(article)
    assert refused.status_code == 409, refused.json
    assert refused.json["earlier"]["title"] == body["title"]
    sent = room.cms({**article, "duplicate_ok": True})
    assert sent.status_code == 202, sent.json


def test_the_review_page_asks_to_confirm_a_repeat_before_sending(room: Room) -> None:
    body = _unique("Flood")
    first = room.api("/api/v1/alerts", body).json["id"]
    client = room.login(EDITOR)
    form = {
        "csrf_token": csrf_of(client.get("/editor/new").text),
        **body,
        "topics": "breaking",
        "urgency": "high",
        "ttl": "3600",
        "when": "now",
    }
    review = client.post("/editor/new", data={**form, "action": "review"})
    assert review.status_code == 200
    assert 'id="duplicate-warning"' in review.text and f"Alert #{first}" in review.text
    refused = client.post("/editor/new", data={**form, "action": "send", "confirm": "yes"})
    assert refused.status_code == 409 and "already sent this article" in refused.text
    sent = client.post(
        "/editor/new",
        data={**form, "action": "send", "confirm": "yes", "duplicate_ok": "yes"},
    )
    assert sent.status_code == 302, sent.text


# -- templates --------------------------------------------------------------------------------
def _alert_row(room: Room, alert_id: str) -> dict[str, Any]:
    with room.engine.connect() as conn:
        row = conn.execute(select(t.alerts).where(t.alerts.c.id == int(alert_id))).mappings()
        return dict(row.one())


def test_the_three_seeded_templates_are_there_after_migrating(room: Room) -> None:
    names = [f["name"] for f in room.api("/api/v1/templates", None, "GET").json["templates"]]
    assert {"breaking", "live", "update"} <= set(names)


def test_the_api_takes_a_template_name_and_refuses_an_unknown_one(room: Room) -> None:
    body = _unique("Storm")
    made = room.api("/api/v1/alerts", {**body, "template": "breaking"})
    assert made.status_code == 202, made.json
    row = _alert_row(room, made.json["id"])
    assert row["title"] == "BREAKING: " + body["title"]
    assert (row["urgency"], row["ttl_s"], json.loads(row["topics"])) == ("high", 3600, ["breaking"])
    unknown = room.api("/api/v1/alerts", {**_unique("Storm"), "template": "gossip"})
    assert unknown.status_code == 400 and unknown.json["error"]["field"] == "template"
    assert "breaking" in unknown.json["error"]["message"]
    wrong_type = room.api("/api/v1/alerts", {**_unique("Storm"), "template": 7})
    assert wrong_type.status_code == 400 and wrong_type.json["error"]["field"] == "template"


def test_admins_manage_templates_and_every_change_is_audited(room: Room) -> None:
    admin = room.login(ADMIN)
    token = csrf_of(admin.get("/editor/templates").text)
    made = admin.post(
        "/editor/templates",
        data={
            "csrf_token": token,
            "name": "exclusive",
            "prefix": "EXCLUSIVE:",
            "topics": "politics",
            "urgency": "normal",
            "ttl": "14400",
        },
    )
    assert made.status_code == 302, made.text
    listing = admin.get("/editor/templates").text
    assert 'data-template="exclusive"' in listing
    template_id = room.audit("template.create")[-1]["target"]
    clash = admin.post(
        f"/editor/templates/{template_id}",
        data={"csrf_token": token, "name": "breaking", "urgency": "high", "ttl": "3600"},
    )
    assert clash.status_code == 409 and 'data-field-error="name"' in clash.text
    saved = admin.post(
        f"/editor/templates/{template_id}",
        data={
            "csrf_token": token,
            "name": "scoop",
            "prefix": "SCOOP:",
            "urgency": "high",
            "ttl": "3600",
        },
    )
    assert saved.status_code == 302
    edit = json.loads(room.audit("template.edit")[-1]["detail"])
    assert edit["before"]["name"] == "exclusive" and edit["after"]["prefix"] == "SCOOP: "
    published = room.api("/api/v1/alerts", {**_unique("Leak"), "template": "scoop"})
    assert _alert_row(room, published.json["id"])["title"].startswith("SCOOP: ")
    gone = admin.post(f"/editor/templates/{template_id}/delete", data={"csrf_token": token})
    assert gone.status_code == 302
    assert room.audit("template.delete")[-1]["target"] == template_id
    assert room.api("/api/v1/alerts", {**_unique("Leak"), "template": "scoop"}).status_code == 400


def test_only_admins_with_the_csrf_token_may_change_templates(room: Room) -> None:
    editor = room.login(EDITOR)
    assert editor.get("/editor/templates").status_code == 403
    token = csrf_of(editor.get("/editor/new").text)
    refused = editor.post("/editor/templates", data={"csrf_token": token, "name": "x", "ttl": "60"})
    assert refused.status_code == 403
    admin = room.login(ADMIN)
    forged = admin.post("/editor/templates", data={"name": "forged", "ttl": "3600"})
    assert forged.status_code in (400, 403)
    assert "forged" not in admin.get("/editor/templates").text
    assert room.app.test_client().get("/editor/templates").status_code == 302  # to login


def test_compose_offers_each_template_as_a_one_click_button(room: Room) -> None:
    page = room.login(EDITOR).get("/editor/new").text
    assert 'data-format="breaking"' in page and "formats.js" in page
    # The buttons come after "Prefill from article": Enter in a field still prefills.
    assert page.index('value="prefill"') < page.index('value="format:breaking"')


def test_a_template_button_works_without_javascript(room: Room) -> None:
    editor = room.login(EDITOR)
    token = csrf_of(editor.get("/editor/new").text)
    typed = {"csrf_token": token, "url": "", "title": "Floods close Thika road", "body": "Text"}
    page = editor.post("/editor/new", data={**typed, "action": "format:breaking"})
    assert page.status_code == 200
    html = page.text
    assert ">BREAKING: Floods close Thika road</textarea>" in html and ">Text</textarea>" in html
    assert 'value="high" selected' in html and 'value="3600" selected' in html
    assert 'data-format="breaking" aria-pressed="true"' in html
    # Another template's prefix replaces this one; its 12-hour expiry is offered and chosen.
    again = editor.post(
        "/editor/new",
        data={**typed, "title": "BREAKING: Floods close Thika road", "action": "format:update"},
    ).text
    assert ">UPDATE: Floods close Thika road</textarea>" in again
    assert 'value="43200" selected' in again and "BREAKING: UPDATE" not in again
    for odd in ("9" * 5000, "²", "-5"):  # an expiry no template or form offers: no 500
        edited = editor.post("/editor/new", data={**typed, "ttl": odd, "action": "edit"})
        assert edited.status_code == 200
    unknown = editor.post("/editor/new", data={**typed, "action": "format:gossip"})
    assert unknown.status_code == 400 and "No template named &#39;gossip&#39;" in unknown.text
    assert ">Floods close Thika road</textarea>" in unknown.text, "what was typed stays"


# -- UTM tags -----------------------------------------------------------------------------------
def test_utm_tags_are_on_by_default_and_off_per_alert_by_api_or_compose_box(room: Room) -> None:
    on = room.api("/api/v1/alerts", _unique("Rain"))
    assert _alert_row(room, on.json["id"])["utm"] is True
    off = room.api("/api/v1/alerts", {**_unique("Rain"), "utm": False})
    assert off.status_code == 202 and _alert_row(room, off.json["id"])["utm"] is False
    assert room.api(f"/api/v1/alerts/{off.json['id']}", None, "GET").json["utm"] is False
    bad = room.api("/api/v1/alerts", {**_unique("Rain"), "utm": "no"})
    assert bad.status_code == 400 and bad.json["error"]["field"] == "utm"

    client = room.login(EDITOR)
    compose = client.get("/editor/new").text
    assert 'name="no_utm"' in compose
    body = _unique("Wind")
    form = {
        "csrf_token": csrf_of(compose),
        **body,
        "topics": "breaking",
        "urgency": "high",
        "ttl": "3600",
        "when": "now",
        "no_utm": "yes",
        "wait_for_article": "yes",
    }
    review = client.post("/editor/new", data={**form, "action": "review"})
    assert 'name="no_utm" value="yes"' in review.text and "no UTM tags" in review.text
    sent = client.post("/editor/new", data={**form, "action": "send", "confirm": "yes"})
    assert sent.status_code == 302, sent.text
    alert_id = sent.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    assert _alert_row(room, alert_id)["utm"] is False
