"""A reader changes the language of their alerts after opting in, on SQLite and PostgreSQL: every
update that proves ownership (PUT of the topics, PUT of the choices, the pushsubscriptionchange
move) stores a valid `lang`, refuses another by naming the field, and keeps the stored one when
the body names none."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.reader_api import Api, api_per_engine, browser_sub


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, vapid_pem: str
) -> Iterator[Api]:
    yield from api_per_engine(request, tmp_path_factory, vapid_pem, "lang-change")


def _english_reader(api: Api) -> dict[str, Any]:
    """An English reader; the subscription returned names no language (as a browser's has)."""
    sub = browser_sub(topics=["breaking"])
    assert api.post("/api/v1/subscriptions", {**sub, "lang": "en"}).status_code == 201
    return sub


def _lang(api: Api, sub: dict[str, Any]) -> str:
    row = api.row(sub["endpoint"])
    assert row is not None
    return str(row["lang"])


def _refused(answer: Any, field: str) -> None:
    assert answer.status_code == 400, answer.text
    assert answer.json["error"]["field"] == field
    assert "en, sw" in answer.json["error"]["message"]


def test_saving_the_topics_stores_the_language_the_manage_page_sends(api: Api) -> None:
    sub = _english_reader(api)

    # /manage?lang=sw sends the page's language with the topics (service/static/manage.js).
    saved = api.client.put("/api/v1/subscriptions", json={**sub, "topics": ["sport"], "lang": "sw"})
    assert saved.status_code == 200, saved.text
    assert saved.json["topics"] == ["sport"]
    assert _lang(api, sub) == "sw"

    kept = api.client.put("/api/v1/subscriptions", json={**sub, "topics": ["politics"]})
    assert kept.status_code == 200 and _lang(api, sub) == "sw", "no lang: the stored one stays"

    for bad in ("fr", "SW", "", 42, ["sw"], {"lang": "sw"}):
        answer = api.client.put(
            "/api/v1/subscriptions", json={**sub, "topics": ["business"], "lang": bad}
        )
        _refused(answer, "lang")
    row = api.row(sub["endpoint"])
    assert row is not None and row["lang"] == "sw"
    looked_up = api.post(
        "/api/v1/subscriptions/lookup", {"endpoint": sub["endpoint"], "auth": sub["keys"]["auth"]}
    )
    assert looked_up.json["topics"] == ["politics"], "a refused change changes nothing"
    # The manage page learns the reader's language from the lookup, and speaks it.
    assert looked_up.json["lang"] == "sw"

    back = api.client.put(
        "/api/v1/subscriptions", json={**sub, "topics": ["politics"], "lang": "en"}
    )
    assert back.status_code == 200 and _lang(api, sub) == "en"


def test_a_stranger_cannot_change_a_readers_language(api: Api) -> None:
    sub = _english_reader(api)
    stranger = {**sub, "keys": browser_sub()["keys"], "lang": "sw"}
    assert api.client.put("/api/v1/subscriptions", json=stranger).status_code == 404
    choices = {
        "endpoint": sub["endpoint"],
        "auth": stranger["keys"]["auth"],
        "quietHours": None,
        "dailyCap": None,
        "lang": "sw",
    }
    assert api.client.put("/api/v1/subscriptions/preferences", json=choices).status_code == 404
    assert _lang(api, sub) == "en"


def test_saving_the_choices_stores_the_language_too(api: Api) -> None:
    sub = _english_reader(api)
    proof = {"endpoint": sub["endpoint"], "auth": sub["keys"]["auth"]}
    choices = {**proof, "quietHours": None, "dailyCap": 3}

    saved = api.client.put("/api/v1/subscriptions/preferences", json={**choices, "lang": "sw"})
    assert saved.status_code == 200, saved.text
    assert saved.json == {"quietHours": None, "dailyCap": 3}
    assert _lang(api, sub) == "sw"

    kept = api.client.put("/api/v1/subscriptions/preferences", json={**choices, "dailyCap": 5})
    assert kept.status_code == 200 and _lang(api, sub) == "sw"

    for bad in ("de", "kiswahili", 7):
        answer = api.client.put(
            "/api/v1/subscriptions/preferences", json={**choices, "dailyCap": 1, "lang": bad}
        )
        _refused(answer, "lang")
    row = api.row(sub["endpoint"])
    assert row is not None and (row["lang"], row["daily_cap"]) == ("sw", 5), "nothing stored"


def test_a_moved_subscription_keeps_its_language_or_takes_the_one_it_names(api: Api) -> None:
    sub = _english_reader(api)
    assert (
        api.client.put(
            "/api/v1/subscriptions", json={**sub, "topics": ["sport"], "lang": "sw"}
        ).status_code
        == 200
    )

    def move(old: dict[str, Any], new: dict[str, Any]) -> Any:
        return api.post(
            "/api/v1/subscriptions/change",
            {"oldEndpoint": old["endpoint"], "oldAuth": old["keys"]["auth"], "subscription": new},
        )

    # The service worker posts the new PushSubscription as it is: no topics, no lang.
    first = {k: v for k, v in browser_sub().items() if k != "topics"}
    assert move(sub, first).status_code == 201
    assert _lang(api, first) == "sw"

    wrong = {**browser_sub(), "lang": "fr"}
    _refused(move(first, wrong), "subscription.lang")
    assert api.row(wrong["endpoint"]) is None and _lang(api, first) == "sw"

    second = {**browser_sub(), "lang": "en"}
    assert move(first, second).status_code == 201
    assert _lang(api, second) == "en"
