"""Quiet hours, daily cap and followable stories over HTTP on SQLite and PostgreSQL: ownership
by the auth secret, 4xx naming the field with nothing stored, follower counts for editors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from core.accounts import Role
from core.adapters import tables as t
from core.adapters.accounts_sql import SqlAccounts
from tests.support.reader_api import Api, api_per_engine, browser_sub

NAIROBI_NIGHT = {"start": "22:00", "end": "06:00", "timeZone": "Africa/Nairobi"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, vapid_pem: str
) -> Iterator[Api]:
    yield from api_per_engine(
        request, tmp_path_factory, vapid_pem, "choice", PUBLIC_ORIGINS="https://news.example"
    )


def _reader(api: Api) -> dict[str, Any]:
    sub = browser_sub()
    assert api.post("/api/v1/subscriptions", sub).status_code == 201
    return sub


def _proof(sub: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"endpoint": sub["endpoint"], "auth": sub["keys"]["auth"], **extra}


def _editor(api: Api) -> dict[str, str]:
    token = SqlAccounts(api.engine).create_token("stories-test", Role.EDITOR)
    return {"Authorization": f"Bearer {token}"}


def test_quiet_hours_and_cap_need_the_auth_secret(api: Api) -> None:
    sub = _reader(api)
    body = _proof(sub, quietHours=NAIROBI_NIGHT, dailyCap=3)
    saved = api.client.put("/api/v1/subscriptions/preferences", json=body)
    assert saved.status_code == 200, saved.text
    assert saved.json == {"quietHours": NAIROBI_NIGHT, "dailyCap": 3}
    row = api.row(sub["endpoint"])
    assert row is not None
    assert (row["quiet_start_utc"], row["quiet_end_utc"], row["tz_offset_min"]) == (1140, 180, 180)
    read = api.post("/api/v1/subscriptions/preferences", _proof(sub))
    assert read.json == {"quietHours": NAIROBI_NIGHT, "dailyCap": 3}

    forged = {**body, "auth": browser_sub()["keys"]["auth"], "dailyCap": None}
    answer = api.client.put("/api/v1/subscriptions/preferences", json=forged)
    assert answer.status_code == 404 and answer.json["error"]["field"] == "endpoint"
    assert api.row(sub["endpoint"])["daily_cap"] == 3  # type: ignore[index]

    cleared = _proof(sub, quietHours=None, dailyCap=None)
    assert api.client.put("/api/v1/subscriptions/preferences", json=cleared).status_code == 200
    assert api.row(sub["endpoint"])["quiet_start_utc"] is None  # type: ignore[index]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"quietHours": {**NAIROBI_NIGHT, "start": "25:00"}}, "quietHours.start"),
        ({"quietHours": {**NAIROBI_NIGHT, "timeZone": "Nowhere/Town"}}, "quietHours.timeZone"),
        ({"dailyCap": 0}, "dailyCap"),
        ({"dailyCap": "lots"}, "dailyCap"),
    ],
)
def test_bad_choices_name_the_field_and_store_nothing(
    api: Api, change: dict[str, Any], field: str
) -> None:
    sub = _reader(api)
    body = {**_proof(sub, quietHours=NAIROBI_NIGHT, dailyCap=2), **change}
    answer = api.client.put("/api/v1/subscriptions/preferences", json=body)
    assert answer.status_code == 400 and answer.json["error"]["field"] == field
    row = api.row(sub["endpoint"])
    assert row is not None and row["quiet_start"] is None and row["daily_cap"] is None


def _open_story(api: Api, editor: dict[str, str], title: str, **fields: Any) -> dict[str, Any]:
    """A followable alert, published; the alert as the API shows it (its tag is the story)."""
    sent = api.client.post(
        "/api/v1/alerts",
        json={
            "title": title,
            "body": "Follow for each update",
            "url": "https://news.example/live/" + title.lower().replace(" ", "-"),
            "topics": ["politics"],
            "followable": True,
            **fields,
        },
        headers=editor,
    )
    assert sent.status_code == 202, sent.text
    return dict(api.client.get(f"/api/v1/alerts/{sent.json['id']}", headers=editor).json)


def test_a_followable_alert_opens_a_story_readers_follow_with_proof(api: Api) -> None:
    editor = _editor(api)
    alert = _open_story(api, editor, "Live: the budget speech", urgency="normal")
    key = alert["tag"]
    assert alert["kind"] == "story"
    public = api.client.get(f"/api/v1/stories/{key}")
    assert public.json == {
        "key": key,
        "title": "Live: the budget speech",
        "lang": "en",
        "titles": {"en": "Live: the budget speech"},
        "open": True,
    }

    reader, outsider = _reader(api), _reader(api)
    followed = api.post(f"/api/v1/stories/{key}/follow", _proof(reader))
    assert followed.status_code == 200 and followed.json["open"] is True
    forged = api.post(
        f"/api/v1/stories/{key}/follow", _proof(reader, auth=outsider["keys"]["auth"])
    )
    assert forged.status_code == 404
    again = api.post(f"/api/v1/stories/{key}/follow", _proof(reader))
    assert again.status_code == 200
    mine = api.post("/api/v1/subscriptions/stories", _proof(reader)).json["stories"]
    assert [s["key"] for s in mine] == [key]
    listed = api.client.get("/api/v1/stories", headers=editor).json["stories"]
    assert [(s["key"], s["followers"]) for s in listed if s["key"] == key] == [(key, 1)]

    assert api.post(f"/api/v1/stories/{key}/unfollow", _proof(reader)).status_code == 204
    assert api.post("/api/v1/subscriptions/stories", _proof(reader)).json["stories"] == []
    assert api.post(f"/api/v1/stories/{key}/follow", _proof(reader)).status_code == 200

    closed = api.client.post(f"/api/v1/stories/{key}/close", json={}, headers=editor)
    assert closed.status_code == 200 and closed.json["open"] is False
    late = api.post(f"/api/v1/stories/{key}/follow", _proof(outsider))
    assert late.status_code == 409 and late.json["error"]["field"] == "story"
    update = api.client.post(
        f"/api/v1/stories/{key}/updates", json={"title": "t", "body": "b"}, headers=editor
    )
    assert update.status_code == 409
    with api.engine.connect() as conn:
        audit = conn.execute(
            select(t.audit_log.c.action).where(t.audit_log.c.target == key)
        ).scalars()
        assert list(audit) == ["story.close"]


def test_a_story_opened_in_two_languages_is_named_in_each(api: Api) -> None:
    """The founding alert's Kiswahili title names the story for Kiswahili readers (before, a
    story had its main title only, and a Kiswahili manage page listed it in English)."""
    words = {"sw": {"title": "Mafuriko Kisumu", "body": "Fuatilia habari"}}
    key = _open_story(api, _editor(api), "Floods in Kisumu", lang="en", translations=words)["tag"]
    titles = {"en": "Floods in Kisumu", "sw": "Mafuriko Kisumu"}
    story = api.client.get(f"/api/v1/stories/{key}").json
    assert (story["title"], story["lang"], story["titles"]) == ("Floods in Kisumu", "en", titles)
    listed = api.client.get("/api/v1/stories/open").json["stories"]
    assert [s["titles"] for s in listed if s["key"] == key] == [titles]
    reader = _reader(api)
    assert api.post(f"/api/v1/stories/{key}/follow", _proof(reader)).json["titles"] == titles
    mine = api.post("/api/v1/subscriptions/stories", _proof(reader)).json["stories"]
    assert [s["titles"] for s in mine] == [titles]


def _story_titles(
    api: Api, key: str, editor: dict[str, str], reader: dict[str, Any]
) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """The story's (title, titles) as every route shows it: one answer when they agree."""
    public = api.client.get(f"/api/v1/stories/{key}").json
    listed = api.client.get("/api/v1/stories/open").json["stories"]
    mine = api.post("/api/v1/subscriptions/stories", _proof(reader)).json["stories"]
    desk = api.client.get("/api/v1/stories", headers=editor).json["stories"]
    seen = [public, *listed, *mine]
    shown = {(s["title"], tuple(sorted(s["titles"].items()))) for s in seen if s["key"] == key}
    return shown | {(s["title"], ()) for s in desk if s["key"] == key}


def test_a_corrected_headline_renames_the_story_until_the_correction_is_undone(api: Api) -> None:
    """Readers follow a story by its headline: once a correction of that headline goes out the
    story carries the corrected words everywhere (before, the wrong headline stayed on every
    manage page); a correction of an update does not rename it, an undone correction neither."""
    editor = _editor(api)
    words = {"sw": {"title": "Mafuriko Kisum", "body": "Fuatilia habari"}}
    founding = _open_story(api, editor, "Floods in Kisum", lang="en", translations=words)
    key = founding["tag"]
    reader = _reader(api)
    assert api.post(f"/api/v1/stories/{key}/follow", _proof(reader)).status_code == 200
    api.set_alert_status(founding["id"], "sent")
    fixed = {
        "title": "Floods in Kisumu",
        "body": "Follow for each update",
        "translations": {"sw": {"title": "Mafuriko Kisumu", "body": "Fuatilia habari"}},
    }
    corrected = api.client.post(
        f"/api/v1/alerts/{founding['id']}/correct", json=fixed, headers=editor
    )
    assert corrected.status_code == 202, corrected.text
    right = ("Floods in Kisumu", (("en", "Floods in Kisumu"), ("sw", "Mafuriko Kisumu")))
    assert _story_titles(api, key, editor, reader) == {right, (right[0], ())}

    update_body = {"title": "Rescuers reach Nyand", "body": "Boats are out"}
    story_update = api.client.post(
        f"/api/v1/stories/{key}/updates", json=update_body, headers=editor
    )
    assert story_update.status_code == 202, story_update.text
    update_id = story_update.json["id"]
    api.set_alert_status(update_id, "sent")
    fix = {"title": "Rescuers reach Nyando", "body": "Boats are out"}
    again = api.client.post(f"/api/v1/alerts/{update_id}/correct", json=fix, headers=editor)
    assert again.status_code == 202, again.text
    assert _story_titles(api, key, editor, reader) == {right, (right[0], ())}

    undone = api.client.post(
        f"/api/v1/alerts/{corrected.json['id']}/cancel", json={}, headers=editor
    )
    assert undone.status_code == 200, undone.text
    wrong = ("Floods in Kisum", (("en", "Floods in Kisum"), ("sw", "Mafuriko Kisum")))
    assert _story_titles(api, key, editor, reader) == {wrong, (wrong[0], ())}


def test_story_routes_refuse_junk_and_outsiders(api: Api) -> None:
    assert api.client.get("/api/v1/stories/not-a-key").status_code == 400
    assert api.client.get("/api/v1/stories/nf" + "0" * 30).status_code == 404
    assert api.client.get("/api/v1/stories").status_code == 401
    assert api.client.post("/api/v1/stories/nf" + "0" * 30 + "/close", json={}).status_code == 401


def test_a_changed_push_subscription_keeps_the_choices_and_follows(api: Api) -> None:
    editor = _editor(api)
    sent = api.client.post(
        "/api/v1/alerts",
        json={
            "title": "Live: rains in Mombasa",
            "body": "Updates through the day",
            "url": "https://news.example/live/rains",
            "topics": ["politics"],
            "urgency": "normal",
            "followable": True,
        },
        headers=editor,
    )
    key = api.client.get(f"/api/v1/alerts/{sent.json['id']}", headers=editor).json["tag"]
    old = _reader(api)
    body = _proof(old, quietHours=NAIROBI_NIGHT, dailyCap=4)
    assert api.client.put("/api/v1/subscriptions/preferences", json=body).status_code == 200
    assert api.post(f"/api/v1/stories/{key}/follow", _proof(old)).status_code == 200

    new = browser_sub()
    moved = api.post(
        "/api/v1/subscriptions/change",
        {"oldEndpoint": old["endpoint"], "oldAuth": old["keys"]["auth"], "subscription": new},
    )
    assert moved.status_code in (200, 201), moved.json
    assert api.row(old["endpoint"]) is None
    prefs = api.post("/api/v1/subscriptions/preferences", _proof(new)).json
    assert prefs == {"quietHours": NAIROBI_NIGHT, "dailyCap": 4}
    mine = api.post("/api/v1/subscriptions/stories", _proof(new)).json["stories"]
    assert [s["key"] for s in mine] == [key]


_FAIL_FOLLOW_COPY = {
    "sqlite": [
        "CREATE TRIGGER nf_fail_follow BEFORE INSERT ON story_follows "
        "BEGIN SELECT RAISE(ABORT, 'copy failed'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION nf_fail_follow() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'copy failed'; END $$",
        "CREATE TRIGGER nf_fail_follow BEFORE INSERT ON story_follows "
        "FOR EACH ROW EXECUTE FUNCTION nf_fail_follow()",
    ],
}
_ALLOW_FOLLOW_COPY = {
    "sqlite": ["DROP TRIGGER nf_fail_follow"],
    "postgresql": [
        "DROP TRIGGER nf_fail_follow ON story_follows",
        "DROP FUNCTION nf_fail_follow()",
    ],
}


def _run(api: Api, statements: dict[str, list[str]]) -> None:
    with api.engine.begin() as conn:
        for statement in statements[api.engine.dialect.name]:
            conn.exec_driver_sql(statement)


def test_a_move_whose_copy_of_the_choices_fails_leaves_the_old_subscription_whole(
    api: Api,
) -> None:
    """The endpoint move and the copy of quiet hours, cap and followed stories are one
    transaction: when the copy fails (here the database refuses the follows), the reader
    still has the old subscription with every choice, and the new endpoint is not stored."""
    editor = _editor(api)
    sent = api.client.post(
        "/api/v1/alerts",
        json={
            "title": "Moja kwa moja: mvua Kisumu",
            "body": "Habari kwa siku nzima",
            "url": "https://news.example/live/kisumu",
            "topics": ["politics"],
            "urgency": "normal",
            "followable": True,
        },
        headers=editor,
    )
    key = api.client.get(f"/api/v1/alerts/{sent.json['id']}", headers=editor).json["tag"]
    old = _reader(api)
    body = _proof(old, quietHours=NAIROBI_NIGHT, dailyCap=2)
    assert api.client.put("/api/v1/subscriptions/preferences", json=body).status_code == 200
    assert api.post(f"/api/v1/stories/{key}/follow", _proof(old)).status_code == 200
    new = browser_sub()
    change = {"oldEndpoint": old["endpoint"], "oldAuth": old["keys"]["auth"], "subscription": new}

    _run(api, _FAIL_FOLLOW_COPY)
    try:
        with pytest.raises(Exception, match=r"copy failed|could not"):
            api.app.extensions["newsflash"].container.readers.move(change)
    finally:
        _run(api, _ALLOW_FOLLOW_COPY)

    assert api.row(new["endpoint"]) is None, "no half move: the new endpoint is not stored"
    prefs = api.post("/api/v1/subscriptions/preferences", _proof(old))
    assert prefs.status_code == 200, "the old subscription is still the reader's"
    assert prefs.json == {"quietHours": NAIROBI_NIGHT, "dailyCap": 2}
    mine = api.post("/api/v1/subscriptions/stories", _proof(old)).json["stories"]
    assert [s["key"] for s in mine] == [key]

    moved = api.post("/api/v1/subscriptions/change", change)  # the browser tries again
    assert moved.status_code in (200, 201), moved.json
    assert api.post("/api/v1/subscriptions/preferences", _proof(new)).json["dailyCap"] == 2
    assert api.row(old["endpoint"]) is None
