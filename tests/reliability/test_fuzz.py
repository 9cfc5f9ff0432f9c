"""Bad input, fuzzed: Hypothesis on the validators and the payload, schemathesis on the API."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import http_ece
import pytest
import schemathesis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st
from pywebpush import WebPusher
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import func, select

from core.accounts import Role
from core.adapters import tables as t
from core.adapters.accounts_sql import SqlAccounts
from core.alerts import AlertRules, parse_alert_request
from core.base64url import b64url_encode
from core.errors import ValidationError
from core.model import Alert, AlertKind, AlertStatus
from core.payload import build_payload, story_key
from tests.reliability.harness import ORIGIN, Rig, rig
from tests.support import hostile
from tests.support.hostile import HOSTILE
from tests.support.services import engine_database

pytestmark = pytest.mark.timeout(300)

TRIED: Counter[str] = Counter()
TOPICS = ["breaking", "politics", "business", "sport"]
EDITOR = "fuzz-editor@news.example"
PASSWORD = "correct horse battery staple"
FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


class Reader:
    """A browser's key pair: what a subscription carries, and what decrypts its pushes."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.public = self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.auth = b"0123456789abcdef"

    @property
    def keys(self) -> dict[str, str]:
        return {"p256dh": b64url_encode(self.public), "auth": b64url_encode(self.auth)}


READER = Reader()


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    print("\ninputs tried: " + ", ".join(f"{k} {v}" for k, v in sorted(TRIED.items())))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    redis_url: str,
    vapid_pem: str,
) -> Iterator[Rig]:
    """The whole suite runs once on SQLite and once on PostgreSQL (NUL, for one, only breaks
    the latter)."""
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    import redis

    redis.Redis.from_url(redis_url).flushdb()  # this suite's own database number only
    try:
        with (
            engine_database(request, tmp, "nf.db") as url,
            rig(
                tmp,
                url,
                redis_url,
                vapid_pem,
                ALLOW_LOOPBACK_PUSH="off",
                RATE_LIMIT_SUBSCRIBE="1000000 per minute",
                RATE_LIMIT_LOGIN="1000000 per minute",
            ) as r,
        ):
            SqlAccounts(r.engine).create_user(EDITOR, PASSWORD, Role.EDITOR)
            yield r
    finally:
        redis.Redis.from_url(redis_url).flushdb()


def tried(r: Rig, what: str) -> None:
    TRIED[f"{r.engine.dialect.name} {what}"] += 1


# -- subscriptions -----------------------------------------------------------------------------
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
key_text = st.one_of(
    st.just(READER.keys["p256dh"]),
    st.binary(min_size=0, max_size=80).map(b64url_encode),
    st.text(max_size=100),
    junk,
)
auth_text = st.one_of(
    st.just(READER.keys["auth"]),
    st.binary(max_size=24).map(b64url_encode),
    st.text(max_size=30),
    junk,
)
endpoint_text = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=60).map(
        lambda s: "https://fcm.googleapis.com/fcm/send/" + s
    ),
    st.sampled_from(HOSTILE),
    st.text(max_size=80),
    st.from_regex(r"\Ahttps://[a-z0-9.-]{1,40}(:[0-9]{1,5})?/[ -~]{0,40}\Z"),
    junk,
)
plausible_subscriptions = st.fixed_dictionaries(
    {
        "endpoint": st.text(
            alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:",
            min_size=1,
            max_size=150,
        ).map(lambda s: "https://fcm.googleapis.com/fcm/send/" + s),
        "keys": st.just(READER.keys),
    },
    optional={
        "topics": st.lists(st.sampled_from(TOPICS), max_size=4),
        "expirationTime": st.one_of(st.none(), st.integers(min_value=0, max_value=2**53)),
    },
)
any_subscriptions = st.fixed_dictionaries(
    {},
    optional={
        "endpoint": endpoint_text,
        "keys": st.one_of(
            st.fixed_dictionaries({}, optional={"p256dh": key_text, "auth": auth_text}), junk
        ),
        "topics": st.one_of(
            st.lists(st.one_of(st.sampled_from(TOPICS), st.text(max_size=10)), max_size=5), junk
        ),
        "expirationTime": junk,
        "extra": junk,
    },
)
subscription_bodies = st.one_of(plausible_subscriptions, any_subscriptions)


@FUZZ
@given(body=subscription_bodies)
def test_subscribe_accepts_only_what_it_stores_and_stores_nothing_it_refuses(
    api: Rig, body: dict[str, Any]
) -> None:
    tried(api, "subscription bodies")
    before = api.subscription_count()
    answer = api.client.post("/api/v1/subscriptions", json=body)
    assert answer.status_code < 500, answer.get_data(as_text=True)
    if answer.status_code >= 400:
        assert api.subscription_count() == before, "a refused subscription left a row"
        assert set(answer.json["error"]) >= {"code", "message"}
        return
    tried(api, "subscriptions accepted")
    assert answer.status_code in (200, 201)
    sub = api.store.subscriptions.get_by_endpoint(body["endpoint"])
    assert sub is not None and sub.topics == tuple(answer.json["topics"])
    assert api.subscription_count() == before + (answer.status_code == 201)
    assert (
        api.client.post(
            "/api/v1/subscriptions/delete", json={"endpoint": sub.endpoint, "auth": sub.auth}
        ).status_code
        == 204
    )


# -- alerts and the payload --------------------------------------------------------------------
RULES = AlertRules(
    public_origins=(ORIGIN,),
    topics=frozenset(TOPICS),
    default_topics=("breaking",),
    default_ttl_s=3600,
    timezone="UTC",
)
wide_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\U0001f525", "\u2028", '"', "\\", "\n", "\t", "\x00", "\u202e"]),
    ),
    max_size=320,
)
same_origin_url = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=2100
).map(lambda path: f"{ORIGIN}/{path}")
printable = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
plausible_url = st.text(alphabet=printable, max_size=2040).map(lambda p: f"{ORIGIN}/{p}")
plausible_alerts = st.fixed_dictionaries(
    {
        "title": st.text(alphabet=printable, min_size=1, max_size=120).filter(str.strip),
        "body": st.text(alphabet=printable, min_size=1, max_size=300).filter(str.strip),
        "url": plausible_url,
    },
    optional={
        "image": plausible_url,
        "icon": plausible_url,
        "topics": st.lists(st.sampled_from(TOPICS), min_size=1, max_size=4),
        "article_id": st.text(alphabet=printable, min_size=1, max_size=200).filter(str.strip),
    },
)
any_alerts = st.fixed_dictionaries(
    {
        "title": st.one_of(wide_text, junk),
        "body": st.one_of(wide_text, junk),
        "url": st.one_of(same_origin_url, st.sampled_from(HOSTILE), junk),
    },
    optional={
        "image": st.one_of(same_origin_url, st.text(max_size=30), junk),
        "icon": st.one_of(same_origin_url, junk),
        "topics": st.one_of(
            st.lists(st.one_of(st.sampled_from(TOPICS), st.text(max_size=8)), max_size=4), junk
        ),
        "urgency": st.one_of(st.sampled_from(["very-low", "low", "normal", "high"]), junk),
        "ttl": st.one_of(st.integers(min_value=-10, max_value=3_000_000), junk),
        "article_id": st.one_of(st.text(max_size=250), st.integers(), junk),
        "send_at": junk,
    },
)
alert_bodies = st.one_of(plausible_alerts, any_alerts)


def _encrypt_with_pywebpush(payload: bytes) -> bytes:
    pusher = WebPusher({"endpoint": "https://fcm.googleapis.com/x", "keys": READER.keys})
    return bytes(pusher.encode(payload, content_encoding="aes128gcm")["body"])


@settings(FUZZ, max_examples=200)
@given(body=alert_bodies)
def test_every_accepted_alert_encrypts_within_4096_bytes(body: dict[str, Any]) -> None:
    TRIED["alert bodies"] += 1
    try:
        draft = parse_alert_request(body, RULES, time.time())
    except ValidationError as exc:
        assert exc.field is None or exc.field in set(body) | {"topics", "Idempotency-Key"}
        return
    TRIED["alerts accepted"] += 1
    alert = Alert(
        id=2**63 - 1,  # the longest id the database can give
        title=draft.title,
        body=draft.body,
        url=draft.url,
        topics=draft.topics,
        urgency=draft.urgency,
        ttl_s=draft.ttl_s,
        story_key=story_key(draft.url, draft.article_id),
        status=AlertStatus.SENDING,
        kind=AlertKind.NORMAL,
        created_at=time.time(),
        image=draft.image,
        icon=draft.icon,
    )
    payload = build_payload(alert, 9_999_999_999)
    sealed = _encrypt_with_pywebpush(payload)
    target(float(len(sealed)), label="encrypted bytes")  # steer towards the limit
    assert len(sealed) <= 4096, f"{len(sealed)} bytes on the wire"
    opened = http_ece.decrypt(
        sealed, private_key=READER.private, auth_secret=READER.auth, version="aes128gcm"
    )
    shown = json.loads(opened)
    assert (shown["title"], shown["body"], shown["url"]) == (draft.title, draft.body, draft.url)


def _alert_rows(r: Rig) -> int:
    with r.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.alerts)).scalar_one())


@settings(FUZZ, max_examples=50)
@given(body=alert_bodies)
def test_a_refused_alert_leaves_no_row(api: Rig, body: dict[str, Any]) -> None:
    tried(api, "alert publishes")
    before = _alert_rows(api)
    answer = api.client.post("/api/v1/alerts", json=body, headers=api.auth())
    assert answer.status_code < 500, answer.get_data(as_text=True)
    if answer.status_code >= 400:
        assert _alert_rows(api) == before, "a refused alert left a row"
    else:
        assert _alert_rows(api) <= before + 1


@pytest.mark.parametrize(
    "raw",
    [
        '{"title": "a\\ud800", "body": "b", "url": "http://127.0.0.1:8000/x"}',
        '{"endpoint": "https://fcm.googleapis.com/\\udfff", "keys": {}}',
        '{"type": "clicked", "alert": "99999999999999999999999999"}',
    ],
)
def test_text_no_database_can_hold_is_a_400(api: Rig, raw: str) -> None:
    for path in ("/api/v1/alerts", "/api/v1/subscriptions", "/api/v1/events"):
        answer = api.client.post(
            path, data=raw, content_type="application/json", headers=api.auth()
        )
        assert 400 <= answer.status_code < 500, (path, answer.get_data(as_text=True))


def test_ids_beyond_any_database_integer_are_not_found(api: Rig) -> None:
    huge = "9" * 30
    for path in (
        f"/api/v1/alerts/{huge}",
        f"/api/v1/alerts?before={huge}",
        f"/api/v1/alerts?before=-{huge}",
    ):
        assert api.client.get(path, headers=api.auth()).status_code in (200, 404)
    answer = api.client.post(f"/api/v1/alerts/{huge}/cancel", json={}, headers=api.auth())
    assert answer.status_code == 404


# -- the OpenAPI document, against the app itself ---------------------------------------------
def test_every_api_route_is_in_the_document(api: Rig) -> None:
    """What the app serves under /api/ is what the document describes (and so what the fuzzing
    below reaches): a route missing here is one an integrator cannot find."""
    document = api.app.test_client().get("/api/v1/openapi.json").json
    documented = {
        (re.sub(r"\{\w+\}", "{}", path), method.upper())
        for path, operations in document["paths"].items()
        for method in operations
    }
    served = {
        (re.sub(r"<(?:\w+:)?\w+>", "{}", rule.rule), method)
        for rule in api.app.url_map.iter_rules()
        if rule.rule.startswith("/api/") and rule.rule != "/api/v1/openapi.json"
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert sorted(served - documented) == []
    assert sorted(documented - served - {("/healthz", "GET"), ("/readyz", "GET")}) == []


def test_schemathesis_finds_no_5xx_and_no_response_off_its_schema(api: Rig) -> None:
    STATUSES.clear()  # counted per database
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    problems: list[str] = []
    for operation in operations:
        try:
            _fuzz_operation(api, operation)
        except Exception as exc:  # one operation's findings, then on to the next
            problems.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    assert problems == [], "\n\n".join(problems)
    # It really reached the views: answers of both kinds, not only 401s or 404s.
    assert STATUSES[2] >= 20 and STATUSES[4] >= 20, STATUSES


STATUSES: Counter[int] = Counter()
# What the brief asks: no 5xx, and every response as the document says (status, type, body,
# headers), auth honoured. Not "schema-valid input is accepted": the document cannot say which
# origins a click URL may use, and a 400 naming the field is the right answer there.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]


def _fuzz_operation(api: Rig, operation: Any) -> None:
    @settings(FUZZ, max_examples=20)
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        tried(api, "schemathesis requests")
        response = case.call_and_validate(headers=api.auth(), checks=CHECKS)
        STATUSES[response.status_code // 100] += 1

    run()


# -- hostile JSON on every JSON route ------------------------------------------------------------
A_KEY = READER.keys["auth"]
PUSH = "https://fcm.googleapis.com/fcm/send/fuzz"
SUB = {"endpoint": PUSH, "keys": READER.keys, "topics": ["breaking"], "expirationTime": None}
ALERT = {"title": "T", "body": "B", "url": f"{ORIGIN}/fuzz", "topics": ["breaking"], "ttl": 900}
ARTICLE = {"id": "a-1", "title": "T", "url": f"{ORIGIN}/a", "breaking": True, "ttl": 900}
BASES: dict[str, dict[str, Any]] = {
    "/api/v1/subscriptions": SUB,
    "/api/v1/subscriptions/lookup": {"endpoint": PUSH, "auth": A_KEY},
    "/api/v1/subscriptions/delete": {"endpoint": PUSH, "auth": A_KEY},
    "/api/v1/subscriptions/change": {"oldEndpoint": PUSH, "oldAuth": A_KEY, "subscription": SUB},
    "/api/v1/events": {"type": "clicked", "alert": "1"},
    "/api/v1/alerts": ALERT,
    "/api/v1/alerts/1/correct": {"title": "T", "body": "B", "url": f"{ORIGIN}/c"},
    "/api/v1/alerts/test": ALERT,
    # Refused before any fetch: never a connection to anything.
    "/editor/prefill": {"url": "https://elsewhere.example/story"},
    "/editor/test-device": {"endpoint": PUSH, "auth": A_KEY, "on": True},
    hostile.WEBHOOK: {"type": "article.published", "article": ARTICLE},
}


@pytest.fixture(scope="module")
def newsroom(api: Rig) -> tuple[FlaskClient, str]:
    """A logged-in editor, and alert 1 sent (so a correction of it reaches parsing)."""
    api.publish()  # alert 1 exists after this, whichever test published first
    api.store.alerts.set_status(1, AlertStatus.SENT, time.time())
    return hostile.editor_session(api.app, EDITOR, PASSWORD)


HOSTILE_EXAMPLES = 40


@pytest.mark.parametrize(("method", "path", "auth"), hostile.JSON_ROUTES)
def test_hostile_json_is_refused_on_every_route_and_never_a_500(
    api: Rig, newsroom: tuple[FlaskClient, str], method: str, path: str, auth: str
) -> None:
    session, csrf = newsroom

    @settings(FUZZ, max_examples=HOSTILE_EXAMPLES)
    @given(case=hostile.bodies(BASES[path]))
    def run(case: tuple[str, bool]) -> None:
        text, must_refuse = case
        tried(api, "hostile JSON bodies")
        raw = text.encode("utf-8", "surrogatepass")
        before = (api.subscription_count(), _alert_rows(api))
        if auth == "webhook":
            client, headers = api.client, hostile.signed(api.settings, raw)
        elif auth == "session":
            client, headers = session, {"X-CSRF-Token": csrf}
        else:
            client, headers = api.client, api.auth()
        answer = client.open(
            path, method=method, data=raw, headers=headers, content_type="application/json"
        )
        assert answer.status_code < 500, answer.get_data(as_text=True)
        if must_refuse:
            tried(api, "hostile JSON bodies that must be refused")
            assert answer.status_code in (400, 413, 429), (text[:200], answer.get_json())
        if answer.status_code >= 400:
            assert set(answer.get_json()["error"]) >= {"code", "message"}
            assert (api.subscription_count(), _alert_rows(api)) == before, "a refusal left a row"

    run()
