"""Access: every route from app.url_map checked for credentials, roles and CSRF; the CMS webhook
refuses forged, stale and replayed calls; titles are text everywhere they are shown."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from core import webhooks
from core.accounts import Role
from core.adapters import tables as t
from core.adapters.accounts_sql import SqlAccounts
from tests.reliability.harness import ORIGIN, Rig, rig
from tests.support.stack import ROOT

pytestmark = pytest.mark.timeout(180)

PASSWORD = "correct horse battery staple"
SCRIPT = "<script>alert('pwned')</script>"
IMG = '<img src=x onerror="alert(1)">'

# Routes anyone may call: the reader's pages and API, health, the OpenAPI document, the signed
# CMS webhook, and the newsroom's login. Every route not named here must ask for credentials,
# so a route added tomorrow is covered without touching this test.
PUBLIC = frozenset(
    {
        "static",
        "reader.home",
        "reader.manage",
        "reader.manage_script",
        "reader.widget",
        "reader.service_worker",
        "reader.manifest",
        "health.healthz",
        "health.readyz",
        "api.config",
        "api.openapi",
        "api.subscribe",
        "api.update_subscription",
        "api.lookup_subscription",
        "api.unsubscribe",
        "api.change_subscription",
        "api.event",
        # A reader's choices and follows prove ownership with the subscription's auth secret,
        # like the subscription routes above; open stories are public headlines.
        "readers_choice.get_preferences",
        "readers_choice.set_preferences",
        "readers_choice.open_stories",
        "readers_choice.public_story",
        "readers_choice.follow_story",
        "readers_choice.unfollow_story",
        "readers_choice.followed_stories",
        "reader.manage_choices_script",
        "webhooks.cms",
        "editor.login",
        "editor.login_submit",
        "editor.logout",
    }
)


def allowed_roles(endpoint: str) -> set[Role]:
    if endpoint in ("editor.account", "editor.sign_out_others"):
        return set(Role)  # anyone logged in: their own account and devices
    if endpoint.startswith("ops."):
        return {Role.OPS, Role.ADMIN}
    if (
        endpoint == "editor.audit"
        or (endpoint.startswith("templates.") and endpoint != "templates.api_list")
        or endpoint in ("feeds.add", "feeds.remove", "feeds.mode")
    ):
        return {Role.ADMIN}
    return {Role.EDITOR, Role.ADMIN}


@dataclass
class Route:
    endpoint: str
    method: str
    url: str

    @property
    def page(self) -> bool:
        return not self.url.startswith("/api/") and self.url != "/metrics"


@dataclass
class Site:
    rig: Rig
    tokens: dict[Role, str]
    sessions: dict[Role, FlaskClient]
    alert_id: str
    routes: list[Route]


def _login(r: Rig, email: str) -> FlaskClient:
    client = r.app.test_client()
    page = client.get("/editor/login").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the login page has no CSRF token"
    answer = client.post(
        "/editor/login",
        data={"email": email, "password": PASSWORD, "csrf_token": found.group(1)},
    )
    assert answer.status_code in (302, 303), answer.status_code
    return client


def csrf_of(client: FlaskClient) -> str:
    with client.session_transaction() as session:
        return str(session["csrf"])


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, vapid_pem: str
) -> Iterator[Site]:
    tmp: Path = tmp_path_factory.mktemp("access")
    import redis

    redis.Redis.from_url(redis_url).flushdb()  # this suite's own database number only
    with rig(
        tmp,
        f"sqlite:///{tmp}/nf.db",
        redis_url,
        vapid_pem,
        RATE_LIMIT_LOGIN="10000 per minute",
        PROMPT_TITLE=SCRIPT,
        PROMPT_BODY=IMG,
        TOPICS=f"breaking:Breaking {IMG}:default,sport:Sport",
    ) as r:
        accounts = SqlAccounts(r.engine)
        tokens, sessions = {}, {}
        for role in Role:
            email = f"{role.value}@news.example"
            accounts.create_user(email, PASSWORD, role)
            tokens[role] = accounts.create_token(f"{role.value} token", role)
            sessions[role] = _login(r, email)
        alert_id = r.publish(title=SCRIPT, body=IMG)
        routes = []
        for rule in r.app.url_map.iter_rules():
            # Template 1 is one of the three the migration seeds.
            url = rule.rule.replace("<int:alert_id>", alert_id).replace("<int:template_id>", "1")
            url = url.replace("<int:feed_id>", "1").replace("<int:item_id>", "1")
            url = url.replace("<key>", "no-such-story")
            if "<" in url or rule.endpoint in PUBLIC:
                continue
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                routes.append(Route(rule.endpoint, method, url))
        yield Site(r, tokens, sessions, alert_id, routes)
    redis.Redis.from_url(redis_url).flushdb()


def test_the_route_list_covers_the_newsroom_ops_and_metrics(site: Site) -> None:
    endpoints = {r.endpoint for r in site.routes}
    assert {
        "ops.dashboard",
        "ops.prometheus",
        "ops.queues",
        "ops.health",
        "api.publish_alert",
    } <= endpoints
    assert len([e for e in endpoints if e.startswith("editor.")]) >= 8, endpoints
    # Every parameterised route gets a real URL; one with a new kind of parameter would be
    # skipped silently, so it fails here until the fixture learns to fill it in.
    unrouted = [
        rule.rule
        for rule in site.rig.app.url_map.iter_rules()
        if "<"
        in rule.rule.replace("<int:alert_id>", "")
        .replace("<int:template_id>", "")
        .replace("<int:feed_id>", "")
        .replace("<int:item_id>", "")
        .replace("<key>", "")
        and rule.endpoint != "static"
    ]
    assert unrouted == []


def _call(client: FlaskClient, route: Route, headers: dict[str, str] | None = None) -> Any:
    if route.method == "GET":
        return client.get(route.url, headers=headers or {})
    return client.open(route.url, method=route.method, json={}, headers=headers or {})


def test_no_credentials_means_401_or_the_login_page(site: Site) -> None:
    anonymous = site.rig.app.test_client()
    wrong: list[str] = []
    for route in site.routes:
        for headers in ({}, {"Authorization": "Bearer nf_not-a-real-token"}):
            answer = _call(anonymous, route, headers)
            status = answer.status_code
            to_login = status in (302, 303) and "/editor/login" in answer.headers["Location"]
            # A newsroom form post without a session is refused for its missing CSRF token
            # before anything else looks at it: refused all the same.
            csrf = (
                status == 400
                and route.endpoint.startswith(("editor.", "templates.", "feeds.", "stories."))
                and route.method != "GET"
            )
            if not (status == 401 or to_login or csrf):
                wrong.append(f"{route.method} {route.url}: {status}")
            if status == 401:
                assert answer.json["error"]["code"] == "unauthorized"
    assert wrong == []


def test_the_wrong_role_gets_403(site: Site) -> None:
    wrong: list[str] = []
    for route in site.routes:
        for role in set(Role) - allowed_roles(route.endpoint):
            by_token = _call(
                site.rig.app.test_client(), route, {"Authorization": f"Bearer {site.tokens[role]}"}
            )
            session = site.sessions[role]
            by_session = _call(session, route, {"X-CSRF-Token": csrf_of(session)})
            for how, answer in (("token", by_token), ("session", by_session)):
                if answer.status_code == 400 and how == "token" and route.method != "GET":
                    continue  # a newsroom form post by token: refused for the CSRF token
                if answer.status_code != 403:
                    wrong.append(
                        f"{route.method} {route.url} as {role} ({how}): {answer.status_code}"
                    )
    assert wrong == []


def test_the_right_role_gets_in(site: Site) -> None:
    """The other side of the two tests above: they would pass if everything were forbidden."""
    admin = site.sessions[Role.ADMIN]
    refused = [
        f"{r.url}: {status}"
        for r in site.routes
        if r.method == "GET" and (status := admin.get(r.url).status_code) in (401, 403)
    ]
    assert refused == []
    ops = site.rig.app.test_client()
    metrics = ops.get("/metrics", headers={"Authorization": f"Bearer {site.tokens[Role.OPS]}"})
    assert metrics.status_code == 200


def test_newsroom_forms_without_the_csrf_token_are_400(site: Site) -> None:
    editor = site.sessions[Role.ADMIN]
    posts = [
        r
        for r in site.routes
        if r.endpoint.startswith(("editor.", "templates.", "feeds.", "stories."))
        and r.method == "POST"
    ]
    posts += [Route("editor.login_submit", "POST", "/editor/login")]
    posts += [Route("editor.logout", "POST", "/editor/logout")]
    assert len(posts) >= 6
    wrong = []
    for route in posts:
        for data in ({}, {"csrf_token": "forged-" + uuid.uuid4().hex}):
            answer = editor.post(route.url, data=data)
            if answer.status_code != 400:
                wrong.append(f"POST {route.url} {data}: {answer.status_code}")
    assert wrong == []
    # Still logged in: a forged logout did not log anyone out.
    assert editor.get("/editor").status_code == 200


# -- the CMS webhook ---------------------------------------------------------------------------
def _alert_count(r: Rig) -> int:
    with r.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.alerts)).scalar_one())


def _hook(site: Site, payload: dict[str, Any], *, msg_id: str, at: float, key: bytes) -> Any:
    raw = json.dumps(payload).encode()
    stamp = str(int(at))
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + webhooks.signature(key, msg_id, stamp, raw),
        "Content-Type": "application/json",
    }
    return site.rig.app.test_client().post("/api/v1/hooks/cms", data=raw, headers=headers)


def _article(url: str = f"{ORIGIN}/news/quake") -> dict[str, Any]:
    return {
        "article": {
            "id": "cms-" + uuid.uuid4().hex[:8],
            "title": "Quake",
            "url": url,
            "breaking": True,
        }
    }


def test_the_cms_webhook_refuses_forged_stale_and_replayed_calls(site: Site) -> None:
    r = site.rig
    key = webhooks.secret_bytes(r.settings.cms_webhook_secret)
    before = _alert_count(r)
    forged = _hook(site, _article(), msg_id="msg_1", at=time.time(), key=b"k" * 32)
    assert forged.status_code == 401 and forged.json["error"]["field"] == "webhook-signature"
    stale = _hook(site, _article(), msg_id="msg_2", at=time.time() - 3600, key=key)
    assert stale.status_code == 401 and stale.json["error"]["field"] == "webhook-timestamp"
    unsigned = r.app.test_client().post("/api/v1/hooks/cms", json=_article())
    assert unsigned.status_code == 401
    assert _alert_count(r) == before

    body = _article()
    first = _hook(site, body, msg_id="msg_3", at=time.time(), key=key)
    assert first.status_code == 202, first.json
    replay = _hook(site, body, msg_id="msg_3", at=time.time(), key=key)
    assert replay.status_code == 409 and replay.json["error"]["code"] == "replayed"
    assert _alert_count(r) == before + 1


def test_click_urls_outside_the_publishers_origins_are_refused_at_publish(site: Site) -> None:
    r = site.rig
    key = webhooks.secret_bytes(r.settings.cms_webhook_secret)
    before = _alert_count(r)
    outside = [
        "https://evil.example/news",
        "http://127.0.0.1:8001/news",
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        f"https://user@{ORIGIN.removeprefix('http://')}/x",
        "//evil.example/x",
    ]
    for url in outside:
        answer = r.client.post(
            "/api/v1/alerts",
            json={"title": "t", "body": "b", "url": url, "topics": ["breaking"]},
            headers=r.auth(),
        )
        assert answer.status_code == 400 and answer.json["error"]["field"] == "url", url
        image = r.client.post(
            "/api/v1/alerts",
            json={"title": "t", "body": "b", "url": f"{ORIGIN}/ok", "image": url},
            headers=r.auth(),
        )
        assert image.status_code == 400 and image.json["error"]["field"] == "image", url
        hook = _hook(site, _article(url), msg_id=uuid.uuid4().hex, at=time.time(), key=key)
        assert hook.status_code == 400, (url, hook.status_code)
    editor = site.sessions[Role.EDITOR]
    form = {
        "title": "t",
        "body": "b",
        "url": outside[0],
        "topics": "breaking",
        "action": "send",
        "csrf_token": csrf_of(editor),
    }
    page = editor.post("/editor/new", data=form)
    assert page.status_code == 400, page.status_code
    assert _alert_count(r) == before


# -- titles are text ---------------------------------------------------------------------------
def test_a_script_title_stays_text_in_the_newsroom_ops_and_reader_pages(site: Site) -> None:
    admin = site.sessions[Role.ADMIN]
    escaped_script = "&lt;script&gt;alert("
    pages = {
        "newsroom history": admin.get("/editor"),
        "newsroom report": admin.get(f"/editor/alerts/{site.alert_id}"),
        "newsroom correction": admin.get(f"/editor/alerts/{site.alert_id}/correct"),
        "ops": admin.get("/ops"),
        "reader": site.rig.client.get("/"),
        "manage": site.rig.client.get("/manage"),
    }
    for name, answer in pages.items():
        assert answer.status_code == 200, (name, answer.status_code)
        html = answer.get_data(as_text=True)
        assert SCRIPT not in html and IMG not in html, f"raw markup in the {name} page"
        assert "<img src=x" not in html, name
    # Where the title is shown it is shown escaped (so the checks above looked at it).
    for name in ("newsroom history", "newsroom report"):
        assert escaped_script in pages[name].get_data(as_text=True), name
    manage = pages["manage"].get_data(as_text=True)
    assert "Breaking &lt;img src=x" in manage, "the topic name is not on the manage page"
    # The widget and the service worker build the prompt and the notification from JSON: they
    # must do it as text (textContent, Notification title/body), never as markup.
    markup_sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write")
    for script in sorted((ROOT / "service" / "static").glob("*.js")):
        assert not markup_sinks.search(script.read_text()), f"{script.name} renders markup"
