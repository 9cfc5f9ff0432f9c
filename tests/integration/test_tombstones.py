"""A move that waited while an alert found the old endpoint gone, on SQLite and PostgreSQL: the
ledger's 404/410 deletion leaves a tombstone (PostgreSQL: in the ledger statement itself), and
`/subscriptions/change` restores the reader's topics, language, quiet hours, cap and followed
stories from it onto the new endpoint, with the old auth secret as proof. A wrong secret answers
as an unknown endpoint does; readers who left any other way are not restorable; retention deletes
expired tombstones."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, insert, select

from core import retention
from core.adapters import tables as t
from core.adapters.retention_sql import SqlRetention
from core.adapters.stores_sql import SqlStores
from core.model import AlertStatus, LedgerStatus, LossReason
from core.ports import LedgerEntry
from tests.support.reader_api import Api, api_per_engine, browser_sub
from tests.support.samples import TOPICS, draft, sub

DAY = 86400.0
NAIROBI_NIGHT = {"start": "22:00", "end": "06:00", "timeZone": "Africa/Nairobi"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, vapid_pem: str
) -> Iterator[Api]:
    yield from api_per_engine(
        request, tmp_path_factory, vapid_pem, "tomb", PUBLIC_ORIGINS="https://news.example"
    )


def _stores(api: Api) -> SqlStores:
    stores: SqlStores = api.app.extensions["newsflash"].container.sql
    return stores


def _proof(s: dict[str, Any]) -> dict[str, Any]:
    return {"endpoint": s["endpoint"], "auth": s["keys"]["auth"]}


def _renewed() -> dict[str, Any]:
    """The browser's new subscription as the service worker posts it: no topics."""
    new = browser_sub()
    del new["topics"]
    return new


def _change(old: dict[str, Any], new: dict[str, Any], auth: str | None = None) -> dict[str, Any]:
    return {
        "oldEndpoint": old["endpoint"],
        "oldAuth": auth or old["keys"]["auth"],
        "subscription": new,
    }


def _gone(api: Api, *readers: dict[str, Any], at: float | None = None) -> None:
    """An alert's push comes back 410 for these readers: the ledger write deletes them (on
    PostgreSQL RECORD_PG, on SQLite delete_subscriptions), as a send does."""
    stores, now = _stores(api), time.time() if at is None else at
    alert, _ = stores.alerts.create_alert(draft(), f"k{now}", AlertStatus.SENDING, 0, now)
    ids = [api.row(r["endpoint"])["id"] for r in readers]  # type: ignore[index]
    entries = [
        LedgerEntry(i, LedgerStatus.GONE, 410, 1, push_host="fcm.googleapis.com") for i in ids
    ]
    stores.ledger.record(alert.id, entries, ids, now, None)
    assert all(api.row(r["endpoint"]) is None for r in readers)


def _story(api: Api) -> str:
    key = "nf" + hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:30]
    with api.engine.begin() as conn:
        conn.execute(
            insert(t.stories).values(
                key=key,
                title="Mvua Kisumu",
                url="https://news.example/live/kisumu",
                alert_id=1,
                created_at=time.time(),
                closes_at=time.time() + DAY,
            )
        )
    return key


def _tombstones(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t.subscription_tombstones)).mappings()]


def _churn(engine: Engine) -> tuple[int, int, int]:
    """Sign-ups, losses and gone losses over every hour."""
    c, r = t.subscription_churn.c, t.subscription_losses.c
    with engine.connect() as conn:
        created, lost = conn.execute(
            select(func.coalesce(func.sum(c.created), 0), func.coalesce(func.sum(c.lost), 0))
        ).one()
        gone = conn.execute(
            select(func.coalesce(func.sum(r.lost), 0)).where(r.reason == LossReason.GONE.value)
        ).scalar_one()
    return int(created), int(lost), int(gone)


def _audience(api: Api, topic: str) -> int:
    return _stores(api).subscriptions.audience_size([topic])


def test_a_move_after_the_old_subscription_went_gone_restores_every_choice(api: Api) -> None:
    key = _story(api)
    old = browser_sub(topics=["politics", "sport"], lang="sw", platform="android")
    assert api.post("/api/v1/subscriptions", old).status_code == 201
    prefs = {**_proof(old), "quietHours": NAIROBI_NIGHT, "dailyCap": 3}
    assert api.client.put("/api/v1/subscriptions/preferences", json=prefs).status_code == 200
    assert api.post(f"/api/v1/stories/{key}/follow", _proof(old)).status_code == 200
    audience, churn = _audience(api, "sport"), _churn(api.engine)

    _gone(api, old)
    (stone,) = [s for s in _tombstones(api.engine) if s["daily_cap"] == 3]
    kept = json.dumps(stone)
    assert old["endpoint"] not in kept and old["keys"]["auth"] not in kept, "digests only"
    assert _audience(api, "sport") == audience - 1
    assert _churn(api.engine) == (churn[0], churn[1] + 1, churn[2] + 1)

    new = _renewed()
    moved = api.post("/api/v1/subscriptions/change", _change(old, new))
    assert moved.status_code == 201, moved.json
    assert (moved.json["topics"], moved.json["lang"]) == (["politics", "sport"], "sw")
    choices = api.post("/api/v1/subscriptions/preferences", _proof(new)).json
    assert choices == {"quietHours": NAIROBI_NIGHT, "dailyCap": 3}
    mine = api.post("/api/v1/subscriptions/stories", _proof(new)).json["stories"]
    assert [s["key"] for s in mine] == [key]
    row = api.row(new["endpoint"])
    assert row is not None and (row["platform"], row["quiet_start_utc"]) == ("android", 1140)
    assert _audience(api, "sport") == audience, "back in the audience counts"
    assert _churn(api.engine) == churn, "not a new sign-up, and the gone loss is taken back"
    assert _tombstones(api.engine) == [], "the tombstone went with the restore"
    again = api.post("/api/v1/subscriptions/change", _change(old, browser_sub()))
    assert again.status_code == 404


def test_a_wrong_secret_answers_exactly_as_an_unknown_endpoint(api: Api) -> None:
    old, new = browser_sub(topics=["sport"]), _renewed()
    assert api.post("/api/v1/subscriptions", old).status_code == 201
    _gone(api, old)
    stranger = browser_sub()
    unknown = api.post("/api/v1/subscriptions/change", _change(stranger, new))
    wrong = api.post(
        "/api/v1/subscriptions/change", _change(old, new, auth=stranger["keys"]["auth"])
    )
    assert (wrong.status_code, wrong.json) == (unknown.status_code, unknown.json)
    assert unknown.status_code == 404 and unknown.json["error"]["field"] == "endpoint"
    assert api.row(new["endpoint"]) is None and len(_tombstones(api.engine)) == 1

    taken = browser_sub(endpoint=new["endpoint"])  # the new endpoint stored with other keys
    assert api.post("/api/v1/subscriptions", taken).status_code == 201
    refused = api.post("/api/v1/subscriptions/change", _change(old, new))
    assert refused.status_code == 409 and len(_tombstones(api.engine)) == 1, "nothing taken"

    moved = api.post("/api/v1/subscriptions/change", _change(old, _renewed()))
    assert moved.status_code == 201 and moved.json["topics"] == ["sport"]
    assert _tombstones(api.engine) == []


def test_readers_who_left_any_other_way_are_not_restorable(api: Api) -> None:
    """Turned off (also after going gone), purged as stale, moved: no tombstone restores them."""
    left, stale, moved_away = browser_sub(), browser_sub(), browser_sub()
    for s in (left, stale, moved_away):
        assert api.post("/api/v1/subscriptions", {**s, "topics": ["sport"]}).status_code == 201
    assert api.post("/api/v1/subscriptions/delete", _proof(left)).status_code == 204
    _stores(api).subscriptions.purge_stale_subscriptions(time.time() + 1)  # everyone is stale
    moved = api.post("/api/v1/subscriptions/change", _change(moved_away, browser_sub()))
    assert moved.status_code == 404, "purged with the rest"
    assert _tombstones(api.engine) == []
    for s in (left, stale):
        answer = api.post("/api/v1/subscriptions/change", _change(s, browser_sub()))
        assert answer.status_code == 404

    renewed, target = browser_sub(), browser_sub()
    assert api.post("/api/v1/subscriptions", renewed).status_code == 201
    assert api.post("/api/v1/subscriptions/change", _change(renewed, target)).status_code == 201
    assert _tombstones(api.engine) == [], "a move leaves no tombstone"

    gone_then_off = browser_sub()
    assert api.post("/api/v1/subscriptions", gone_then_off).status_code == 201
    _gone(api, gone_then_off)
    assert api.post("/api/v1/subscriptions/delete", _proof(gone_then_off)).status_code == 204
    assert _tombstones(api.engine) == []
    answer = api.post("/api/v1/subscriptions/change", _change(gone_then_off, browser_sub()))
    assert answer.status_code == 404
    assert api.post("/api/v1/subscriptions/delete", _proof(gone_then_off)).status_code == 404


def test_an_expired_tombstone_restores_nothing_and_retention_deletes_it(api: Api) -> None:
    old, young = browser_sub(), browser_sub()
    for s in (old, young):
        assert api.post("/api/v1/subscriptions", s).status_code == 201
    _gone(api, old, at=time.time() - 31 * DAY)
    _gone(api, young)
    assert len(_tombstones(api.engine)) == 2
    answer = api.post("/api/v1/subscriptions/change", _change(old, browser_sub()))
    assert answer.status_code == 404, "past NEWSFLASH_TOMBSTONE_DAYS even before retention ran"

    deleted = api.app.extensions["newsflash"].container.delivery.retention()
    assert deleted["tombstones"] == 1
    (left,) = _tombstones(api.engine)
    assert left["endpoint_hash"] == hashlib.sha256(young["endpoint"].encode()).hexdigest()
    assert (
        api.post("/api/v1/subscriptions/change", _change(young, browser_sub())).status_code == 201
    )
    with api.engine.begin() as conn:
        conn.execute(delete(t.subscription_tombstones))


@pytest.fixture
def store(engine: Engine) -> SqlStores:
    return SqlStores.build(engine, TOPICS)


def test_the_ledger_write_leaves_tombstones_for_gone_readers_only(
    store: SqlStores, engine: Engine
) -> None:
    """PostgreSQL: the `buried` CTE of the ledger statement; SQLite: delete_subscriptions.
    Only the readers the caller names as gone (their push service's 404/410) leave one: not a
    GONE row for a reader deleted before the batch ran, not a delivered or failed reader; the
    digests are SHA-256 of the endpoint and of the unpadded auth secret on both engines."""
    subs = [
        store.subscriptions.upsert(sub(n, topics), 1.0)[0]
        for n, topics in (
            (1, ["sport", "politics"]),
            (2, ["breaking"]),
            (3, ["breaking"]),
            (4, ["breaking"]),
        )
    ]
    gone, missing, delivered, failed = (s.id for s in subs)
    with engine.begin() as conn:
        conn.execute(
            t.subscriptions.update()
            .where(t.subscriptions.c.id == gone)
            .values(lang="sw", platform="ios", daily_cap=2, quiet_zone="Africa/Nairobi")
        )
        conn.execute(
            t.story_follows.insert(),
            [
                {"story_key": "b", "subscription_id": gone, "created_at": 5.0},
                {"story_key": "a", "subscription_id": gone, "created_at": 4.5},
                {"story_key": "a", "subscription_id": delivered, "created_at": 4.0},
            ],
        )
    alert, _ = store.alerts.create_alert(draft(), "k", AlertStatus.SENDING, 0, 1.0)
    entries = [
        LedgerEntry(gone, LedgerStatus.GONE, 410, 1, push_host="fcm.googleapis.com"),
        LedgerEntry(missing, LedgerStatus.GONE, None, 0),
        LedgerEntry(delivered, LedgerStatus.DELIVERED, 201, 1, push_host="fcm.googleapis.com"),
        LedgerEntry(failed, LedgerStatus.FAILED, 400, 1, push_host="fcm.googleapis.com"),
    ]
    for _ in range(2):  # a batch recorded twice writes nothing new
        store.ledger.record(alert.id, entries, [gone], 7200.0, None)

    (stone,) = _tombstones(engine)
    first = subs[0]
    assert stone == {
        "endpoint_hash": hashlib.sha256(first.endpoint.encode()).hexdigest(),
        "secret_hash": hashlib.sha256(first.auth.rstrip("=").encode()).hexdigest(),
        "gone_at": 7200.0,
        "topic_mask": store.topics.mask_of(["sport", "politics"]),
        "lang": "sw",
        "platform": "ios",
        "quiet_start": None,
        "quiet_end": None,
        "quiet_zone": "Africa/Nairobi",
        "tz_offset_min": None,
        "quiet_start_utc": None,
        "quiet_end_utc": None,
        "daily_cap": 2,
        "cap_day": None,
        "cap_count": None,
        "follows": stone["follows"],
    }
    assert json.loads(stone["follows"]) == [["a", 4.5], ["b", 5.0]]
    found = store.subscriptions.find_tombstone(stone["endpoint_hash"])
    assert found is not None and found.topics == ("politics", "sport")
    assert {store.subscriptions.get_subscription(i) is None for i in (delivered, failed)} == {False}
    with engine.connect() as conn:
        follows = conn.execute(select(t.story_follows.c.subscription_id)).scalars().all()
    assert follows == [delivered]


def test_retention_deletes_expired_tombstones_a_chunk_at_a_time(
    store: SqlStores, engine: Engine
) -> None:
    subs = [store.subscriptions.upsert(sub(n), 1.0)[0] for n in range(1, 6)]
    alert, _ = store.alerts.create_alert(draft(), "k", AlertStatus.SENDING, 0, 1.0)
    for s, at in zip(subs, (100.0, 200.0, 300.0, 40 * DAY, 41 * DAY), strict=True):
        entry = LedgerEntry(s.id, LedgerStatus.GONE, 410, 1, push_host="fcm.googleapis.com")
        store.ledger.record(alert.id, [entry], [s.id], at, None)
    policy = retention.RetentionPolicy(tombstone_days=30, chunk=2)
    report = retention.run_retention(
        SqlRetention(engine, store.alerts, store.newsroom), policy, 70 * DAY
    )
    assert report.complete and report.deleted["tombstones"] == 3
    assert sorted(s["gone_at"] for s in _tombstones(engine)) == [40 * DAY, 41 * DAY]
