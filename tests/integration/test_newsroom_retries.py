"""A newsroom form sent twice (a phone on a flaky connection: the answer is lost, the editor taps
again or the browser resends the POST) sends once; SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from core.accounts import Role
from core.adapters import tables as t
from core.adapters.accounts_sql import SqlAccounts
from tests.support.newsroom import PASSWORD, csrf_of
from tests.support.newsroom_site import logged_in
from tests.support.reader_api import Api, api_per_engine

ORIGIN = "https://news.example"
_KEY = re.compile(r'name="key" value="([^"]+)"')


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, vapid_pem: str
) -> Iterator[Api]:
    yield from api_per_engine(
        request, tmp_path_factory, vapid_pem, "retries", PUBLIC_ORIGINS=ORIGIN
    )


def _editor(api: Api) -> FlaskClient:
    email = f"editor-{uuid.uuid4().hex[:8]}@news.example"
    SqlAccounts(api.engine).create_user(email, PASSWORD, Role.EDITOR)
    return logged_in(api.app, email)


def _token(api: Api) -> dict[str, str]:
    token = SqlAccounts(api.engine).create_token("retries", Role.EDITOR)
    return {"Authorization": f"Bearer {token}"}


def _published(api: Api, **extra: Any) -> dict[str, Any]:
    body = {
        "title": "Mvua kubwa Nairobi",
        "body": "Barabara zimefungwa 🌧️",
        "url": f"{ORIGIN}/habari/{uuid.uuid4().hex[:8]}",
        "topics": ["politics"],
        **extra,
    }
    sent = api.client.post("/api/v1/alerts", json=body, headers=_token(api))
    assert sent.status_code == 202, sent.text
    alert: dict[str, Any] = api.client.get(
        f"/api/v1/alerts/{sent.json['id']}", headers=_token(api)
    ).json
    return alert


def _key(html: str) -> dict[str, str]:
    """The form's send key, as the browser sends it back (none if the form has none)."""
    found = _KEY.search(html)
    return {} if found is None else {"key": found[1]}


def _count(api: Api, *where: Any) -> int:
    with api.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.alerts).where(*where)).scalar())


def _audits(api: Api, action: str) -> int:
    with api.engine.connect() as conn:
        query = select(func.count()).select_from(t.audit_log).where(t.audit_log.c.action == action)
        return int(conn.execute(query).scalar())


# -- corrections ------------------------------------------------------------------------------
def test_a_correction_sent_twice_goes_out_once(api: Api) -> None:
    original = _published(api)
    alert_id = int(original["id"])
    api.set_alert_status(alert_id, "sent")
    editor = _editor(api)
    words = {"title": "Mvua kubwa Nairobi: barabara tatu", "body": "Tatu, si nne 🌧️", "url": ""}
    words["url"] = original["url"]
    token = csrf_of(editor.get(f"/editor/alerts/{alert_id}/correct").text)
    review = editor.post(
        f"/editor/alerts/{alert_id}/correct",
        data={**words, "csrf_token": token, "action": "review"},
    )
    assert review.status_code == 200, review.text
    send = {**words, "csrf_token": token, "action": "send", "confirm": "yes", **_key(review.text)}

    first = editor.post(f"/editor/alerts/{alert_id}/correct", data=send)
    assert first.status_code == 302, first.text
    # The answer was lost; the editor sends again while the undo window runs...
    again = editor.post(f"/editor/alerts/{alert_id}/correct", data=send)
    assert (again.status_code, again.headers.get("Location")) == (302, first.headers["Location"])
    # ... and once more after the correction has started going out.
    correction_id = int(first.headers["Location"].rstrip("/").split("/")[-1])
    api.set_alert_status(correction_id, "sending")
    late = editor.post(f"/editor/alerts/{alert_id}/correct", data=send)
    assert (late.status_code, late.headers.get("Location")) == (302, first.headers["Location"])

    assert _count(api, t.alerts.c.kind == "correction", t.alerts.c.corrects_id == alert_id) == 1
    assert _count(api, t.alerts.c.corrects_id == correction_id) == 0
    assert _audits(api, "alert.correct") == 1


# -- story updates -----------------------------------------------------------------------------
def _story_form(editor: FlaskClient, key: str) -> dict[str, str]:
    page = editor.get("/editor/stories").text
    form = page[page.index(f'action="/editor/stories/{key}/updates"') :]
    return {"csrf_token": csrf_of(page), **_key(form[: form.index("</form>")])}


def test_a_story_update_sent_twice_reaches_followers_once(api: Api) -> None:
    story = _published(api, followable=True)["tag"]
    editor = _editor(api)
    form = {
        **_story_form(editor, story),
        "title": "Bajeti: ushuru wa mafuta umepanda",
        "body": "Kwa asilimia 8 kuanzia Julai",
    }
    first = editor.post(f"/editor/stories/{story}/updates", data=form)
    assert first.status_code == 302, first.text
    again = editor.post(f"/editor/stories/{story}/updates", data=form)
    assert again.status_code == 302, again.text
    assert again.headers["Location"] == first.headers["Location"]
    assert _count(api, t.alerts.c.kind == "update", t.alerts.c.story_key == story) == 1
    assert _audits(api, "story.update") == 1

    # A fresh page is a fresh update: the next one is sent.
    form = {**form, **_story_form(editor, story), "title": "Bajeti: na umeme pia"}
    assert editor.post(f"/editor/stories/{story}/updates", data=form).status_code == 302
    assert _count(api, t.alerts.c.kind == "update", t.alerts.c.story_key == story) == 2


def test_a_send_key_reused_for_another_story_is_refused_not_answered(api: Api) -> None:
    one, two = _published(api, followable=True)["tag"], _published(api, followable=True)["tag"]
    editor = _editor(api)
    form = {**_story_form(editor, one), "title": "Habari mpya", "body": "Zaidi baadaye"}
    assert editor.post(f"/editor/stories/{one}/updates", data=form).status_code == 302
    reused = editor.post(f"/editor/stories/{two}/updates", data=form)
    assert reused.status_code == 409
    assert "already used" in reused.text
    assert _count(api, t.alerts.c.kind == "update", t.alerts.c.story_key == two) == 0


# -- the same through the API (a CMS or a phone app retrying with Idempotency-Key) ------------
def _keyed(api: Api, key: str) -> dict[str, str]:
    return {**_token(api), "Idempotency-Key": key}


def test_an_api_correction_sent_twice_with_one_key_goes_out_once(api: Api) -> None:
    original = _published(api)
    alert_id = int(original["id"])
    api.set_alert_status(alert_id, "sent")
    audits = _audits(api, "alert.correct")
    words = {"title": "Mvua kubwa Nairobi: barabara tatu", "body": "Tatu, si nne 🌧️"}
    headers = _keyed(api, f"cms-{uuid.uuid4().hex}")

    first = api.client.post(f"/api/v1/alerts/{alert_id}/correct", json=words, headers=headers)
    assert first.status_code == 202, first.text
    correction_id = int(first.json["id"])
    # The answer was lost; the client retries after the correction has started going out.
    api.set_alert_status(correction_id, "sending")
    again = api.client.post(f"/api/v1/alerts/{alert_id}/correct", json=words, headers=headers)
    assert again.status_code == 202, again.text
    assert again.json["id"] == first.json["id"]
    assert _count(api, t.alerts.c.corrects_id == alert_id) == 1
    assert _count(api, t.alerts.c.corrects_id == correction_id) == 0
    assert _audits(api, "alert.correct") == audits + 1

    # The same key for other words is another request: refused, naming the header.
    other = {**words, "title": "Mvua kubwa Nairobi: barabara mbili"}
    reused = api.client.post(f"/api/v1/alerts/{alert_id}/correct", json=other, headers=headers)
    assert reused.status_code == 409, reused.text
    assert reused.json["error"]["field"] == "Idempotency-Key"
    assert _count(api, t.alerts.c.corrects_id.in_([alert_id, correction_id])) == 1


def test_an_api_story_update_sent_twice_with_one_key_reaches_followers_once(api: Api) -> None:
    story = _published(api, followable=True)["tag"]
    audits = _audits(api, "story.update")
    words = {"title": "Bajeti: ushuru wa mafuta umepanda", "body": "Kwa asilimia 8"}
    headers = _keyed(api, f"cms-{uuid.uuid4().hex}")

    first = api.client.post(f"/api/v1/stories/{story}/updates", json=words, headers=headers)
    assert first.status_code == 202, first.text
    again = api.client.post(f"/api/v1/stories/{story}/updates", json=words, headers=headers)
    assert again.status_code == 202, again.text
    assert again.json["id"] == first.json["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert _count(api, t.alerts.c.kind == "update", t.alerts.c.story_key == story) == 1
    assert _audits(api, "story.update") == audits + 1

    other = {**words, "title": "Bajeti: na umeme pia"}
    reused = api.client.post(f"/api/v1/stories/{story}/updates", json=other, headers=headers)
    assert reused.status_code == 409, reused.text
    assert reused.json["error"]["field"] == "Idempotency-Key"
    # Without a key each request is its own update, as before.
    plain = api.client.post(f"/api/v1/stories/{story}/updates", json=other, headers=_token(api))
    assert plain.status_code == 202, plain.text
    assert _count(api, t.alerts.c.kind == "update", t.alerts.c.story_key == story) == 2


@pytest.mark.parametrize("key", ["", "k" * 201, "tab\there"])
def test_an_unusable_idempotency_key_is_refused_on_every_send_route(api: Api, key: str) -> None:
    original = _published(api, followable=True)
    api.set_alert_status(int(original["id"]), "sent")
    words = {"title": "Habari mpya", "body": "Zaidi baadaye"}
    routes = [
        ("/api/v1/alerts", {**words, "url": original["url"], "topics": ["politics"]}),
        (f"/api/v1/alerts/{original['id']}/correct", words),
        (f"/api/v1/stories/{original['tag']}/updates", words),
    ]
    for path, body in routes:
        sent = api.client.post(path, json=body, headers=_keyed(api, key))
        assert sent.status_code == 400, (path, sent.text)
        assert sent.json["error"]["field"] == "Idempotency-Key", path
    assert _count(api, t.alerts.c.corrects_id == int(original["id"])) == 0
    assert _count(api, t.alerts.c.story_key == original["tag"], t.alerts.c.kind == "update") == 0


def test_the_openapi_document_offers_idempotency_key_on_every_send_route(api: Api) -> None:
    paths = api.client.get("/api/v1/openapi.json").json["paths"]
    for path in ("/api/v1/alerts", "/api/v1/alerts/{id}/correct", "/api/v1/stories/{key}/updates"):
        names = [p.get("name") for p in paths[path]["post"].get("parameters", [])]
        assert "Idempotency-Key" in names, path
