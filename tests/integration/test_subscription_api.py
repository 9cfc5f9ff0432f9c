"""The reader subscription API on SQLite and PostgreSQL: strict validation, upsert, ownership, limits."""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.adapters import accounts_sql
from core.adapters import tables as t
from core.base64url import b64url_decode, b64url_encode
from service.app import create_app
from tests.support.live import serve
from tests.support.reader_api import FCM, Api, api_per_engine, browser_sub, build_api, dispose_api
from tests.support.services import (
    create_pg_database,
    drop_pg_database,
    make_env,
    settings_from,
)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, vapid_pem: str
) -> Iterator[Api]:
    yield from api_per_engine(request, tmp_path_factory, vapid_pem, "api")


def _with(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of body with one (dotted) field set, or removed when value is _MISSING."""
    copy = {**body, "keys": dict(body["keys"])}
    target = copy
    *parents, last = path.split(".")
    for name in parents:
        target = target[name]
    if value is _MISSING:
        target.pop(last, None)
    else:
        target[last] = value
    return copy


_MISSING = object()
_OFF_CURVE = b64url_encode(b"\x04" + b"\x01" * 64)
_COMPRESSED = b64url_encode(b"\x02" + b"\x01" * 32)

INVALID: list[tuple[str, str, Any, str]] = [
    # (case, field to set, value, field the answer must name)
    ("no endpoint", "endpoint", _MISSING, "endpoint"),
    ("endpoint not a string", "endpoint", 42, "endpoint"),
    ("endpoint over http", "endpoint", "http://fcm.googleapis.com/fcm/send/x", "endpoint"),
    ("endpoint on port 8443", "endpoint", "https://fcm.googleapis.com:8443/x", "endpoint"),
    ("endpoint with userinfo", "endpoint", "https://u:p@fcm.googleapis.com/x", "endpoint"),
    (
        "userinfo hiding the host",
        "endpoint",
        "https://fcm.googleapis.com@evil.example/x",
        "endpoint",
    ),
    ("endpoint too long", "endpoint", FCM + "a" * 2048, "endpoint"),
    ("allowed host as prefix", "endpoint", "https://fcm.googleapis.com.evil.example/", "endpoint"),
    (
        "allowed host in the path",
        "endpoint",
        "https://evil.example/x.fcm.googleapis.com/",
        "endpoint",
    ),
    ("wildcard needs a label", "endpoint", "https://push.apple.com/x", "endpoint"),
    ("unlisted host", "endpoint", "https://push.evil.example/x", "endpoint"),
    ("loopback address", "endpoint", "https://127.0.0.1/x", "endpoint"),
    ("loopback over http", "endpoint", "http://127.0.0.1:8080/x", "endpoint"),
    ("localhost", "endpoint", "https://localhost/x", "endpoint"),
    ("ipv6 loopback", "endpoint", "https://[::1]/x", "endpoint"),
    ("decimal ip host", "endpoint", "https://2130706433/x", "endpoint"),
    ("javascript url", "endpoint", "javascript:alert(1)", "endpoint"),
    ("space in endpoint", "endpoint", "https://fcm.googleapis.com/a b", "endpoint"),
    ("no keys", "keys", _MISSING, "keys"),
    ("keys not an object", "keys", "abc", "keys"),
    ("no p256dh", "keys.p256dh", _MISSING, "keys.p256dh"),
    ("p256dh not base64url", "keys.p256dh", "not*base64", "keys.p256dh"),
    ("p256dh 64 bytes", "keys.p256dh", b64url_encode(os.urandom(64)), "keys.p256dh"),
    ("p256dh compressed", "keys.p256dh", _COMPRESSED, "keys.p256dh"),
    ("p256dh off the curve", "keys.p256dh", _OFF_CURVE, "keys.p256dh"),
    ("no auth", "keys.auth", _MISSING, "keys.auth"),
    ("auth 15 bytes", "keys.auth", b64url_encode(os.urandom(15)), "keys.auth"),
    ("auth 17 bytes", "keys.auth", b64url_encode(os.urandom(17)), "keys.auth"),
    ("auth not base64url", "keys.auth", "!!!!!!!!!!!!!!!!!!!!!!", "keys.auth"),
    ("unknown topic", "topics", ["breaking", "gossip"], "topics"),
    ("topics not a list", "topics", "breaking", "topics"),
    ("topic not a string", "topics", [1], "topics"),
    ("no topic at all", "topics", [], "topics"),
    ("expirationTime text", "expirationTime", "tomorrow", "expirationTime"),
    ("expirationTime negative", "expirationTime", -5, "expirationTime"),
]


def test_every_invalid_subscription_is_refused_naming_the_field_and_nothing_is_stored(
    api: Api,
) -> None:
    before = api.rows()
    for case, path, value, field in INVALID:
        body = _with(browser_sub(), path, value)
        for method in ("post", "put"):
            answer = getattr(api.client, method)("/api/v1/subscriptions", json=body)
            assert answer.status_code == 400, (case, method, answer.json)
            error = answer.json["error"]
            assert error["field"] == field, (case, method, error)
            assert error["message"], case
            if isinstance(value, str) and "fcm" in value:
                assert value not in error["message"], "endpoints never echoed back"
    assert api.rows() == before


def test_bodies_that_are_not_a_json_object_are_refused(api: Api) -> None:
    before = api.rows()
    for data, ctype in [
        ("not json", "application/json"),
        ('["a list"]', "application/json"),
        ("endpoint=https://fcm.googleapis.com/x", "application/x-www-form-urlencoded"),
    ]:
        answer = api.client.post("/api/v1/subscriptions", data=data, content_type=ctype)
        assert answer.status_code == 400, data
        assert answer.json["error"]["code"] == "invalid"
    assert api.rows() == before


def test_change_delete_and_lookup_name_their_missing_fields(api: Api) -> None:
    sub = browser_sub()
    assert api.post("/api/v1/subscriptions", sub).status_code == 201
    before = api.rows()
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/api/v1/subscriptions/delete", {"endpoint": sub["endpoint"]}, "auth"),
        ("/api/v1/subscriptions/delete", {"auth": sub["keys"]["auth"]}, "endpoint"),
        ("/api/v1/subscriptions/lookup", {"endpoint": sub["endpoint"], "auth": 7}, "auth"),
        ("/api/v1/subscriptions/change", {"oldAuth": "x", "subscription": {}}, "oldEndpoint"),
        ("/api/v1/subscriptions/change", {"oldEndpoint": "x", "subscription": {}}, "oldAuth"),
        (
            "/api/v1/subscriptions/change",
            {"oldEndpoint": sub["endpoint"], "oldAuth": sub["keys"]["auth"]},
            "subscription",
        ),
        (
            "/api/v1/subscriptions/change",
            {
                "oldEndpoint": sub["endpoint"],
                "oldAuth": sub["keys"]["auth"],
                "subscription": browser_sub("https://fcm.googleapis.com.evil.example/x"),
            },
            "subscription.endpoint",
        ),
        (
            "/api/v1/subscriptions/change",
            {
                "oldEndpoint": sub["endpoint"],
                "oldAuth": sub["keys"]["auth"],
                "subscription": _with(browser_sub(), "keys.auth", b64url_encode(b"short")),
            },
            "subscription.keys.auth",
        ),
    ]
    for path, body, field in cases:
        answer = api.post(path, body)
        assert answer.status_code == 400, (path, body, answer.json)
        assert answer.json["error"]["field"] == field, (path, answer.json)
    assert api.rows() == before
    assert api.row(sub["endpoint"]) is not None, "a refused change leaves the old row alone"


def test_the_same_browser_subscribing_twice_makes_one_row_and_refreshes_last_seen(api: Api) -> None:
    sub = browser_sub()
    before = api.rows()
    first = api.post("/api/v1/subscriptions", sub)
    assert first.status_code == 201
    assert first.json["topics"] == ["breaking"]
    seen_first = api.row(sub["endpoint"])["last_seen_at"]  # type: ignore[index]

    again = api.post("/api/v1/subscriptions", {**sub, "topics": ["breaking", "sport"]})
    assert again.status_code == 200
    assert again.json == {"id": first.json["id"], "topics": ["breaking", "sport"], "lang": "en"}
    assert api.rows() == before + 1
    row = api.row(sub["endpoint"])
    assert row is not None and row["last_seen_at"] > seen_first


def test_topics_default_to_the_default_topics_when_the_browser_sends_none(api: Api) -> None:
    sub = _with(browser_sub(), "topics", _MISSING)
    answer = api.post("/api/v1/subscriptions", sub)
    assert answer.status_code == 201
    assert answer.json["topics"] == ["breaking"]


def test_put_replaces_topics_only_for_the_owner(api: Api) -> None:
    sub = browser_sub()
    assert api.post("/api/v1/subscriptions", sub).status_code == 201

    stranger = _with({**sub, "topics": ["politics"]}, "keys.auth", b64url_encode(os.urandom(16)))
    refused = api.client.put("/api/v1/subscriptions", json=stranger)
    assert refused.status_code == 404
    assert api.client.post(
        "/api/v1/subscriptions/lookup",
        json={"endpoint": sub["endpoint"], "auth": sub["keys"]["auth"]},
    ).json["topics"] == ["breaking"]

    no_topics = api.client.put("/api/v1/subscriptions", json=_with(sub, "topics", _MISSING))
    assert no_topics.status_code == 400 and no_topics.json["error"]["field"] == "topics"

    unknown = api.client.put("/api/v1/subscriptions", json={**browser_sub(), "topics": ["sport"]})
    assert unknown.status_code == 404, "PUT never creates a subscription"

    changed = api.client.put("/api/v1/subscriptions", json={**sub, "topics": ["politics", "sport"]})
    assert changed.status_code == 200
    assert changed.json["topics"] == ["politics", "sport"]
    looked_up = api.client.post(
        "/api/v1/subscriptions/lookup",
        json={"endpoint": sub["endpoint"], "auth": sub["keys"]["auth"]},
    )
    assert looked_up.status_code == 200
    assert looked_up.json == changed.json


def test_delete_needs_the_auth_secret_and_removes_the_row_at_once(api: Api) -> None:
    sub = browser_sub()
    assert api.post("/api/v1/subscriptions", sub).status_code == 201
    before = api.rows()

    wrong = api.post(
        "/api/v1/subscriptions/delete",
        {"endpoint": sub["endpoint"], "auth": b64url_encode(os.urandom(16))},
    )
    assert wrong.status_code == 404
    assert api.rows() == before

    gone = api.post(
        "/api/v1/subscriptions/delete", {"endpoint": sub["endpoint"], "auth": sub["keys"]["auth"]}
    )
    assert gone.status_code == 204
    assert api.row(sub["endpoint"]) is None
    assert api.rows() == before - 1
    again = api.post(
        "/api/v1/subscriptions/lookup", {"endpoint": sub["endpoint"], "auth": sub["keys"]["auth"]}
    )
    assert again.status_code == 404


def test_change_moves_the_topics_to_the_new_subscription(api: Api) -> None:
    old = {**browser_sub(), "topics": ["business", "sport"]}
    assert api.post("/api/v1/subscriptions", old).status_code == 201
    new = _with(browser_sub(), "topics", _MISSING)
    before = api.rows()

    stranger = api.post(
        "/api/v1/subscriptions/change",
        {
            "oldEndpoint": old["endpoint"],
            "oldAuth": b64url_encode(os.urandom(16)),
            "subscription": new,
        },
    )
    assert stranger.status_code == 404
    assert api.row(new["endpoint"]) is None and api.row(old["endpoint"]) is not None

    moved = api.post(
        "/api/v1/subscriptions/change",
        {"oldEndpoint": old["endpoint"], "oldAuth": old["keys"]["auth"], "subscription": new},
    )
    assert moved.status_code == 201
    assert moved.json["topics"] == ["business", "sport"]
    assert api.row(old["endpoint"]) is None
    row = api.row(new["endpoint"])
    assert row is not None and row["auth"] == new["keys"]["auth"]
    assert api.rows() == before


def test_a_strangers_keys_never_take_over_a_subscribed_endpoint(api: Api) -> None:
    victim = {**browser_sub(), "topics": ["politics", "sport"]}
    first = api.post("/api/v1/subscriptions", victim)
    assert first.status_code == 201
    stored = api.row(victim["endpoint"])
    before = api.rows()

    mine = browser_sub()["keys"]
    attempts = [
        {**victim, "keys": mine, "topics": ["business"]},
        _with({**victim, "topics": ["business"]}, "keys.p256dh", mine["p256dh"]),
        _with({**victim, "topics": ["business"]}, "keys.auth", mine["auth"]),
        _with({**victim, "keys": mine}, "topics", _MISSING),
    ]
    for attempt in attempts:
        refused = api.post("/api/v1/subscriptions", attempt)
        assert refused.status_code == 409, refused.json
        assert refused.json["error"]["code"] == "conflict"
        assert set(refused.json) == {"error"}, "nothing about the row is echoed"
        assert "politics" not in refused.get_data(as_text=True)
    assert api.row(victim["endpoint"]) == stored, "keys, topics and last_seen untouched"
    assert api.rows() == before

    # The stranger's keys cannot then delete, read or change the reader's row either.
    for path, body in (
        ("/api/v1/subscriptions/delete", {"endpoint": victim["endpoint"], "auth": mine["auth"]}),
        ("/api/v1/subscriptions/lookup", {"endpoint": victim["endpoint"], "auth": mine["auth"]}),
    ):
        assert api.post(path, body).status_code == 404
    put = api.client.put("/api/v1/subscriptions", json={**victim, "keys": mine})
    assert put.status_code == 404
    assert api.row(victim["endpoint"]) == stored

    # The reader's own browser re-posting its exact keys is an idempotent re-subscribe.
    again = api.post("/api/v1/subscriptions", {**victim, "topics": ["sport"]})
    assert again.status_code == 200
    assert again.json == {"id": first.json["id"], "topics": ["sport"], "lang": "en"}
    assert api.rows() == before


def test_change_cannot_move_a_subscription_onto_someone_elses_endpoint(api: Api) -> None:
    victim = {**browser_sub(), "topics": ["politics"]}
    assert api.post("/api/v1/subscriptions", victim).status_code == 201
    stored = api.row(victim["endpoint"])
    mine = {**browser_sub(), "topics": ["sport"]}
    assert api.post("/api/v1/subscriptions", mine).status_code == 201
    before = api.rows()

    hijack = {**victim, "keys": browser_sub()["keys"], "topics": ["sport"]}
    refused = api.post(
        "/api/v1/subscriptions/change",
        {"oldEndpoint": mine["endpoint"], "oldAuth": mine["keys"]["auth"], "subscription": hijack},
    )
    assert refused.status_code == 409
    assert set(refused.json) == {"error"}
    assert api.row(victim["endpoint"]) == stored
    assert api.row(mine["endpoint"]) is not None, "a refused change deletes nothing"
    assert api.rows() == before

    # The browser re-subscribed from the page before its service worker sent the change: the
    # new endpoint is already stored with the same keys, so the two rows merge into one.
    renewed = {**browser_sub(), "topics": ["breaking"]}
    assert api.post("/api/v1/subscriptions", renewed).status_code == 201
    merged = api.post(
        "/api/v1/subscriptions/change",
        {
            "oldEndpoint": mine["endpoint"],
            "oldAuth": mine["keys"]["auth"],
            "subscription": _with(renewed, "topics", _MISSING),
        },
    )
    assert merged.status_code == 200
    assert merged.json["topics"] == ["sport"]
    assert api.row(mine["endpoint"]) is None
    assert api.rows() == before


def test_bodies_over_8_kb_get_413_json_and_nothing_is_stored(api: Api) -> None:
    before = api.rows()
    big = browser_sub(padding="x" * 9000)
    answer = api.post("/api/v1/subscriptions", big)
    assert answer.status_code == 413
    assert answer.json["error"]["code"] == "too_large"
    assert api.rows() == before
    fits = browser_sub(padding="x" * 7000)
    assert api.post("/api/v1/subscriptions", fits).status_code == 201


def test_the_reader_api_answers_cors_only_for_the_publishers_origins(api: Api) -> None:
    ours = api.client.get("/api/v1/config", headers={"Origin": "http://127.0.0.1:8000"})
    assert ours.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8000"
    theirs = api.client.get("/api/v1/config", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in theirs.headers
    config = ours.json
    assert len(b64url_decode(config["vapidPublicKey"])) == 65
    assert config["prompt"]["accept"] == "Yes, Thanks"
    assert config["origins"] == ["http://127.0.0.1:8000"]


def test_loopback_endpoints_only_when_allowed(
    tmp_path: Path, vapid_pem: str, redis_url: str
) -> None:
    strict = build_api(tmp_path / "strict", f"sqlite:///{tmp_path}/strict.db", vapid_pem)
    loose = build_api(
        tmp_path / "loose", f"sqlite:///{tmp_path}/loose.db", vapid_pem, ALLOW_LOOPBACK_PUSH="on"
    )
    try:
        local = browser_sub("http://127.0.0.1:8089/push/abc")
        assert strict.post("/api/v1/subscriptions", local).status_code == 400
        assert strict.rows() == 0
        assert loose.post("/api/v1/subscriptions", local).status_code == 201
        for endpoint in (
            "http://10.0.0.1/push/abc",
            "http://127.0.0.1.evil.example/x",
            "http://u@127.0.0.1:8089/x",
        ):
            refused = loose.post("/api/v1/subscriptions", browser_sub(endpoint))
            assert refused.status_code == 400, endpoint
            assert refused.json["error"]["field"] == "endpoint"
        assert loose.rows() == 1
    finally:
        dispose_api(strict)
        dispose_api(loose)


def test_too_many_requests_from_one_address_get_429_with_retry_after(
    tmp_path: Path, vapid_pem: str, clean_redis: str
) -> None:
    limited = build_api(
        tmp_path / "var",
        f"sqlite:///{tmp_path}/limited.db",
        vapid_pem,
        RATE_LIMIT_SUBSCRIBE="3 per minute",
    )
    try:
        sub = browser_sub()
        codes = [
            limited.post("/api/v1/subscriptions", sub, ip="203.0.113.9").status_code
            for _ in range(3)
        ]
        assert codes == [201, 200, 200]
        refused = limited.post("/api/v1/subscriptions", browser_sub(), ip="203.0.113.9")
        assert refused.status_code == 429
        assert refused.json["error"]["code"] == "rate_limited"
        wait = refused.headers["Retry-After"]
        assert 0 < int(wait) <= 60
        assert refused.json["error"]["message"].endswith(f"; try again in {wait} s")
        assert limited.rows() == 1, "the refused request stored nothing"
        other = limited.post("/api/v1/subscriptions", browser_sub(), ip="203.0.113.10")
        assert other.status_code == 201, "the limit is per address"
        assert "Retry-After" not in other.headers, "only a refusal says when to come back"
    finally:
        dispose_api(limited)


def test_every_reader_limit_counts_an_ipv6_host_by_its_64(
    tmp_path: Path, vapid_pem: str, clean_redis: str
) -> None:
    """A phone or home router owns a whole /64: stepping through it must not reset any limit."""
    limited = build_api(
        tmp_path / "var",
        f"sqlite:///{tmp_path}/limited.db",
        vapid_pem,
        RATE_LIMIT_SUBSCRIBE="3 per minute",
    )
    try:
        for path in ("/api/v1/subscriptions", "/api/v1/stories/no-such-story/follow"):
            codes = [
                limited.post(path, browser_sub(), ip=f"2001:db8:7:{len(path)}::{i + 1:x}")
                for i in range(4)
            ]
            assert [c.status_code for c in codes][-1] == 429, path
            assert codes[-1].json["error"]["code"] == "rate_limited"
            other = limited.post(path, browser_sub(), ip=f"2001:db8:8:{len(path)}::1")
            assert other.status_code != 429, "another /64 has its own limit"
        events = [
            limited.post("/api/v1/events", {}, ip=f"2001:db8:9::{i + 1:x}").status_code
            for i in range(121)
        ]
        assert events == [400] * 120 + [429]
        # IPv4 keeps counting each address (a mapped IPv6 form is the same IPv4 caller).
        ipv4 = [
            limited.post("/api/v1/subscriptions", browser_sub(), ip=ip).status_code
            for ip in ("203.0.113.20", "::ffff:203.0.113.20", "203.0.113.20", "203.0.113.20")
        ]
        assert ipv4 == [201, 201, 201, 429]
        assert (
            limited.post("/api/v1/subscriptions", browser_sub(), ip="203.0.113.21").status_code
            == 201
        )
    finally:
        dispose_api(limited)


def test_readers_behind_one_carrier_address_are_not_turned_away(
    tmp_path: Path, vapid_pem: str, clean_redis: str
) -> None:
    """Mobile carriers put many readers behind one IPv4 address (CGNAT): their daily check-ins
    must not use up the opt-in budget, nor their genuine displays and clicks the report budget.
    What counts nothing (forgeries, replays) still does."""
    limited = build_api(
        tmp_path / "var",
        f"sqlite:///{tmp_path}/shared.db",
        vapid_pem,
        RATE_LIMIT_SUBSCRIBE="3 per minute",
    )
    carrier = "198.51.100.7"
    try:
        first, second = browser_sub(), browser_sub()
        ids = [
            int(limited.post("/api/v1/subscriptions", b, ip=carrier).json["id"])
            for b in (first, second)
        ]
        checkin = {k: v for k, v in first.items() if k != "topics"}  # what the widget posts daily
        checkins = [limited.post("/api/v1/subscriptions", checkin, ip=carrier) for _ in range(10)]
        assert {c.status_code for c in checkins} == {200}
        assert limited.post("/api/v1/subscriptions", browser_sub(), ip=carrier).status_code == 201
        assert limited.post("/api/v1/subscriptions", browser_sub(), ip=carrier).status_code == 429

        readers = ids + [
            int(
                limited.post("/api/v1/subscriptions", browser_sub(), ip=f"203.0.113.{i}").json["id"]
            )
            for i in range(1, 131)
        ]
        alert_id = _sent_alert(limited, readers)
        receipts = limited.app.extensions["newsflash"].container.receipts
        shown = [
            limited.post(
                "/api/v1/events",
                {"alert": str(alert_id), "type": "displayed", "d": receipts.sign(alert_id, r)},
                ip=carrier,
            ).status_code
            for r in readers
        ]
        assert shown == [202] * len(readers) and _counts(limited, alert_id)[1] == len(readers)
        replay = {"alert": str(alert_id), "type": "displayed", "d": receipts.sign(alert_id, ids[0])}
        replays = [
            limited.post("/api/v1/events", replay, ip=carrier).status_code for _ in range(121)
        ]
        assert replays == [202] * 120 + [429]
    finally:
        dispose_api(limited)


def test_a_chunked_body_over_8_kb_gets_413_from_a_real_server(api: Api) -> None:
    before = api.rows()
    big = json.dumps(browser_sub(padding="x" * 9000)).encode()
    with serve(api.app) as base:
        conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=10)
        try:
            conn.request(
                "POST",
                "/api/v1/subscriptions",
                body=iter([big[:4000], big[4000:]]),
                headers={"Content-Type": "application/json"},
                encode_chunked=True,
            )
            answer = conn.getresponse()
            status, body = answer.status, json.loads(answer.read())
        finally:
            conn.close()
    assert status == 413
    assert body["error"]["code"] == "too_large"
    assert api.rows() == before


def test_web_process_warms_up_its_connections_at_boot(
    tmp_path: Path, postgres_available: bool, redis_url: str, vapid_pem: str
) -> None:
    """Each web process connects at boot (service/wsgi.py), so the first publish after a start
    or a worker recycle does not pay for the driver import and the connections."""
    url = create_pg_database()
    built = build_api(tmp_path / "var", url, vapid_pem)
    try:
        ext = built.app.extensions["newsflash"]
        assert "engine" not in ext.container.__dict__
        accounts_sql._dummy = None  # made when first needed, not at import
        ext.warm_up()
        assert ext.container.engine.pool.checkedin() >= 1
        # The dummy hash "no such user" is checked against: made here, not at the first login.
        assert accounts_sql._dummy is not None
    finally:
        dispose_api(built)
        drop_pg_database(url)


def test_warm_up_with_nothing_reachable_leaves_it_to_the_first_request(
    tmp_path: Path, vapid_pem: str, caplog: pytest.LogCaptureFixture
) -> None:
    env = make_env(
        tmp_path, "postgresql+psycopg://nobody@127.0.0.1:1/none", "redis://127.0.0.1:1/0", vapid_pem
    )
    app = create_app(settings_from(env))
    with caplog.at_level("WARNING", logger="newsflash.web"):
        app.extensions["newsflash"].warm_up()
    messages = [r.getMessage() for r in caplog.records]
    assert "database not ready at start-up: OperationalError" in messages
    assert "broker not ready at start-up: OperationalError" in messages
    assert app.test_client().get("/healthz").status_code == 200


# -- reader reports: counted only with the receipt the push carried ------------------------


def _sent_alert(api: Api, delivered_to: list[int]) -> int:
    """An alert whose ledger says it reached delivered_to (as the worker records it)."""
    from core.model import AlertDraft, AlertStatus, LedgerStatus, Urgency
    from core.ports import LedgerEntry

    store = api.app.extensions["newsflash"].container.sql
    draft = AlertDraft(
        title="T",
        body="B",
        url="http://127.0.0.1:8000/a",
        topics=("breaking",),
        urgency=Urgency.HIGH,
        ttl_s=600,
    )
    alert, _ = store.alerts.create_alert(
        draft, "nf" + b64url_encode(os.urandom(6)), AlertStatus.SENDING, 3, 1.0
    )
    entries = [LedgerEntry(i, LedgerStatus.DELIVERED, 201, 1) for i in delivered_to]
    store.ledger.record(alert.id, entries, [], 2.0)
    return int(alert.id)


def _counts(api: Api, alert_id: int) -> tuple[int, int, int]:
    with api.engine.connect() as conn:
        row = conn.execute(
            select(t.alerts.c.delivered, t.alerts.c.displayed, t.alerts.c.clicked).where(
                t.alerts.c.id == alert_id
            )
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


def test_reports_count_once_and_only_with_the_receipt_of_a_recorded_delivery(api: Api) -> None:
    ids = [int(api.post("/api/v1/subscriptions", browser_sub()).json["id"]) for _ in range(3)]
    reached, also, never = ids
    alert_id = _sent_alert(api, [reached, also])
    receipts = api.app.extensions["newsflash"].container.receipts
    other_alert = _sent_alert(api, [reached])

    def report(kind: str, receipt: Any, alert: int = alert_id) -> Any:
        body = {"alert": str(alert), "type": kind}
        if receipt is not None:
            body["d"] = receipt
        return api.post("/api/v1/events", body)

    for malformed in (None, 42, ""):
        refused = report("displayed", malformed)
        assert refused.status_code == 400 and refused.json["error"]["field"] == "d"
    genuine = receipts.sign(alert_id, reached)
    forged = [
        f"{reached}.{b64url_encode(os.urandom(16))[:22]}",  # a guessed MAC
        receipts.sign(other_alert, reached),  # another alert's receipt
        genuine[:-1] + ("A" if genuine[-1] != "A" else "B"),
        f"{also}{genuine[genuine.index('.') :]}",  # someone else's MAC, my id
        "x" * 5000,
    ]
    for receipt in forged:
        assert report("displayed", receipt).status_code == 202, receipt
        assert report("clicked", receipt).status_code == 202
    assert report("clicked", forged[0], alert=2**62).status_code == 202, "no alert-id oracle"
    assert _counts(api, alert_id) == (2, 0, 0), "forgeries are never counted"

    for _ in range(3):
        assert report("displayed", genuine).status_code == 202
        assert report("clicked", genuine).status_code == 202
    assert _counts(api, alert_id) == (2, 1, 1), "once per subscription, alert and type"

    # A genuine receipt the worker has not recorded yet: 425, the worker asks again, uncounted.
    early = report("displayed", receipts.sign(alert_id, never))
    # "2", not the rate limiter's window reset (it said 60 once: a service worker then waited
    # 10, 20, 30 s, past what a browser lets it live)
    assert early.status_code == 425 and early.headers["Retry-After"] == "2"
    assert report("displayed", receipts.sign(alert_id, also)).status_code == 202
    assert report("clicked", receipts.sign(alert_id, also)).status_code == 202
    delivered, displayed, clicked = _counts(api, alert_id)
    assert (delivered, displayed, clicked) == (2, 2, 2)
    assert displayed <= delivered and clicked <= delivered
    assert _counts(api, other_alert) == (1, 0, 0)
