"""A subscribed browser's later visits: the widget re-syncs so the purge of stale subscriptions
never removes a reader who is still here, and a re-sync keeps the reader's topics (SQLite and
PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from core.adapters import tables as t
from tests.support.reader_api import Api, api_per_engine, browser_sub

DAY_S = 86_400.0


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, vapid_pem: str
) -> Iterator[Api]:
    yield from api_per_engine(request, tmp_path_factory, vapid_pem, "resync")


def _resync_body(sub: dict[str, Any]) -> dict[str, Any]:
    """What the widget posts on a later visit: the browser's PushSubscription JSON, no topics."""
    return {k: v for k, v in sub.items() if k != "topics"}


def _age(api: Api, endpoint: str, days: float) -> None:
    with api.engine.begin() as conn:
        conn.execute(
            update(t.subscriptions)
            .where(t.subscriptions.c.endpoint == endpoint)
            .values(last_seen_at=t.subscriptions.c.last_seen_at - days * DAY_S)
        )


def test_a_resync_without_topics_keeps_the_readers_topics_and_refreshes_last_seen(
    api: Api,
) -> None:
    sub = browser_sub(topics=["politics", "sport"], lang="sw")
    first = api.post("/api/v1/subscriptions", sub)
    assert first.status_code == 201
    _age(api, sub["endpoint"], 100)
    seen_before = api.row(sub["endpoint"])["last_seen_at"]  # type: ignore[index]

    again = api.post("/api/v1/subscriptions", _resync_body(sub))
    assert again.status_code == 200
    assert again.json == {"id": first.json["id"], "topics": ["politics", "sport"], "lang": "sw"}
    row = api.row(sub["endpoint"])
    assert row is not None and row["last_seen_at"] > seen_before + 99 * DAY_S
    assert row["lang"] == "sw"


def test_a_reader_who_keeps_visiting_is_never_purged(api: Api) -> None:
    delivery = api.app.extensions["newsflash"].container.delivery
    visitor, gone = browser_sub(), browser_sub()
    for sub in (visitor, gone):
        assert api.post("/api/v1/subscriptions", sub).status_code == 201
    # Half a year later: one browser came back to the site and re-synced, the other never did.
    _age(api, visitor["endpoint"], 200)
    _age(api, gone["endpoint"], 200)
    assert api.post("/api/v1/subscriptions", _resync_body(visitor)).status_code == 200
    delivery.purge()
    assert api.row(visitor["endpoint"]) is not None
    assert api.row(gone["endpoint"]) is None


def test_a_resync_with_other_keys_changes_nothing(api: Api) -> None:
    sub = browser_sub(topics=["sport"])
    assert api.post("/api/v1/subscriptions", sub).status_code == 201
    stranger = _resync_body(browser_sub(sub["endpoint"]))
    refused = api.post("/api/v1/subscriptions", stranger)
    assert refused.status_code == 409 and "topics" not in refused.json
    assert api.row(sub["endpoint"])["auth"] == sub["keys"]["auth"]  # type: ignore[index]


def test_a_first_post_without_topics_still_gets_the_default_topics(api: Api) -> None:
    answer = api.post("/api/v1/subscriptions", _resync_body(browser_sub()))
    assert answer.status_code == 201 and answer.json["topics"] == ["breaking"]
