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
from flask import Blueprint, request
from flask.testing import FlaskClient
from sqlalchemy import func, select

from core import webhooks
from core.accounts import Role
from core.adapters import tables as t
from core.adapters.accounts_sql import SqlAccounts
from service.app import create_app
from service.auth import require_role
from tests.reliability.harness import ORIGIN, Rig, rig
from tests.support.stack import ROOT

pytestmark = pytest.mark.timeout(180)

PASSWORD = "correct horse battery staple"
SCRIPT = "<script>alert('pwned')</script>"
IMG = '<img src=x onerror="alert(1)">'

# Who may call each route, in one table: every endpoint of app.url_map must be named here, so a
# route added tomorrow fails test_every_route_is_in_the_access_table until someone decides who
# may call it (and the tests below then check that the route enforces it).
ANYONE = "anyone"  # the reader's pages and API (ownership proved by the auth secret), health
SIGNED = "signed"  # no login, but a Standard Webhooks signature (tested below)
LOGGED_IN = "logged in"  # any role: their own account and devices
EDITORS = "editor"
OPS = "ops"
ADMINS = "admin"
ROLES: dict[str, frozenset[Role]] = {
    ANYONE: frozenset(),
    SIGNED: frozenset(),
    LOGGED_IN: frozenset(Role),
    EDITORS: frozenset({Role.EDITOR, Role.ADMIN}),
    OPS: frozenset({Role.OPS, Role.ADMIN}),
    ADMINS: frozenset({Role.ADMIN}),
}
ACCESS: dict[str, str] = {
    # reader pages, scripts and the public API
    "static": ANYONE,
    "reader.home": ANYONE,
    "reader.manage": ANYONE,
    "reader.manage_script": ANYONE,
    "reader.manage_choices_script": ANYONE,
    "reader.widget": ANYONE,
    "reader.service_worker": ANYONE,
    "reader.manifest": ANYONE,
    "health.healthz": ANYONE,
    "health.readyz": ANYONE,
    "api.config": ANYONE,
    "api.openapi": ANYONE,
    "api.subscribe": ANYONE,
    "api.update_subscription": ANYONE,
    "api.lookup_subscription": ANYONE,
    "api.unsubscribe": ANYONE,
    "api.change_subscription": ANYONE,
    "api.event": ANYONE,
    # A reader's choices and follows prove ownership with the subscription's auth secret, like
    # the subscription routes above; open stories are public headlines.
    "readers_choice.get_preferences": ANYONE,
    "readers_choice.set_preferences": ANYONE,
    "readers_choice.open_stories": ANYONE,
    "readers_choice.public_story": ANYONE,
    "readers_choice.follow_story": ANYONE,
    "readers_choice.unfollow_story": ANYONE,
    "readers_choice.followed_stories": ANYONE,
    # the newsroom's door (each POST needs the form's CSRF token)
    "editor.login": ANYONE,
    "editor.login_submit": ANYONE,
    "editor.logout": ANYONE,
    "webhooks.cms": SIGNED,
    "editor.account": LOGGED_IN,
    "editor.sign_out_others": LOGGED_IN,
    "editor.change_password": LOGGED_IN,
    "editor.sign_out_device": LOGGED_IN,
    # ops
    "ops.dashboard": OPS,
    "ops.queues": OPS,
    "ops.health": OPS,
    "ops.prometheus": OPS,
    # admins
    "editor.audit": ADMINS,
    "editor.team": ADMINS,
    "editor.team_add": ADMINS,
    "editor.team_role": ADMINS,
    "editor.team_disable": ADMINS,
    "editor.team_enable": ADMINS,
    "editor.team_password": ADMINS,
    "templates.listing": ADMINS,
    "templates.create": ADMINS,
    "templates.edit": ADMINS,
    "templates.save": ADMINS,
    "templates.delete": ADMINS,
    "feeds.add": ADMINS,
    "feeds.remove": ADMINS,
    "feeds.mode": ADMINS,
    # editors: the editor API and the newsroom's pages
    "api.publish_alert": EDITORS,
    "api.list_alerts": EDITORS,
    "api.get_alert": EDITORS,
    "api.cancel_alert": EDITORS,
    "api.correct_alert": EDITORS,
    "api.test_alert": EDITORS,
    "feeds_api.api_send_anyway": EDITORS,
    "readers_choice.list_stories": EDITORS,
    "readers_choice.post_update": EDITORS,
    "readers_choice.close_story": EDITORS,
    "templates.api_list": EDITORS,
    "editor.history": EDITORS,
    "editor.report": EDITORS,
    "editor.cancel": EDITORS,
    "editor.charts": EDITORS,
    "editor.live": EDITORS,
    "editor.milestones": EDITORS,
    "editor.correct_form": EDITORS,
    "editor.send_correction": EDITORS,
    "editor.edit_scheduled": EDITORS,
    "editor.save_scheduled": EDITORS,
    "editor.compose": EDITORS,
    "editor.compose_action": EDITORS,
    "editor.prefill": EDITORS,
    "editor.audience": EDITORS,
    "editor.scheduled": EDITORS,
    "editor.test_device": EDITORS,
    "feeds.page": EDITORS,
    "feeds.gate": EDITORS,
    "feeds.send_anyway": EDITORS,
    "feeds.poll": EDITORS,
    "feeds.dismiss": EDITORS,
    "stories.listing": EDITORS,
    "stories.close": EDITORS,
    "stories.post_update": EDITORS,
}
PUBLIC = frozenset(e for e, who in ACCESS.items() if who in (ANYONE, SIGNED))


def allowed_roles(endpoint: str) -> frozenset[Role]:
    return ROLES[ACCESS[endpoint]]


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
    every_route: list[Route]

    @property
    def routes(self) -> list[Route]:
        """The routes that ask for credentials."""
        return [r for r in self.every_route if r.endpoint not in PUBLIC]

    @property
    def public(self) -> list[Route]:
        return [r for r in self.every_route if r.endpoint in PUBLIC]


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
            # No such account: a post that got through would change nobody.
            url = url.replace("<int:user_id>", "999999").replace("<handle>", "0" * 64)
            url = url.replace("<key>", "no-such-story").replace("<path:filename>", "editor.css")
            if "<" in url:
                continue
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                routes.append(Route(rule.endpoint, method, url))
        yield Site(r, tokens, sessions, alert_id, routes)
    redis.Redis.from_url(redis_url).flushdb()


def test_every_route_is_in_the_access_table(site: Site) -> None:
    rules = list(site.rig.app.url_map.iter_rules())
    endpoints = {rule.endpoint for rule in rules}
    unlisted = sorted(endpoints - ACCESS.keys())
    assert unlisted == [], f"say in ACCESS who may call {unlisted}"
    assert sorted(ACCESS.keys() - endpoints) == [], "ACCESS names routes that no longer exist"
    # Every rule got a URL to call: one with a new kind of parameter would be skipped silently,
    # so it fails here until the fixture learns to fill it in.
    expected = {
        (rule.endpoint, method)
        for rule in rules
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert expected - {(r.endpoint, r.method) for r in site.every_route} == set()
    assert {"ops.prometheus", "api.publish_alert", "editor.audit"} <= {
        r.endpoint for r in site.routes
    }


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
    refused = []
    for route in site.routes:
        if route.method != "GET":
            continue  # a post would act (cancel the alert, delete a template)
        for role in allowed_roles(route.endpoint):
            answer = site.sessions[role].get(route.url)
            if answer.status_code in (401, 403) or "/editor/login" in answer.headers.get(
                "Location", ""
            ):
                refused.append(f"{route.url} as {role}: {answer.status_code}")
    assert refused == []
    ops = site.rig.app.test_client()
    metrics = ops.get("/metrics", headers={"Authorization": f"Bearer {site.tokens[Role.OPS]}"})
    assert metrics.status_code == 200


def test_public_routes_need_no_login(site: Site) -> None:
    """The reader's pages and API are public by design: no credentials asked, none needed."""
    anonymous = site.rig.app.test_client()
    wrong = []
    for route in site.public:
        answer = _call(anonymous, route)
        status = answer.status_code
        if route.endpoint in ("editor.login_submit", "editor.logout"):
            ok = status == 400  # the form's CSRF token, not a login, is what they ask for
        elif ACCESS[route.endpoint] == SIGNED:
            ok = status == 401 and answer.json["error"]["field"].startswith("webhook-")
        else:
            ok = (
                status < 500
                and status not in (401, 403)
                and "/editor/login" not in (answer.headers.get("Location", ""))
            )
        if not ok:
            wrong.append(f"{route.method} {route.url}: {status}")
    assert wrong == []


def test_a_disabled_users_session_opens_nothing(site: Site) -> None:
    """`newsflash user disable`: the cookie the user still holds opens no route at all."""
    accounts = SqlAccounts(site.rig.engine)
    email = f"leaver-{uuid.uuid4().hex[:6]}@news.example"
    accounts.create_user(email, PASSWORD, Role.ADMIN)
    session = _login(site.rig, email)
    token = csrf_of(session)
    assert session.get("/editor/audit").status_code == 200
    accounts.set_disabled(email, True, time.time())
    opened = []
    for route in site.routes:
        answer = _call(session, route, {"X-CSRF-Token": token})
        to_login = answer.status_code == 302 and "/editor/login" in answer.headers["Location"]
        if not (answer.status_code == 401 or to_login):
            opened.append(f"{route.method} {route.url}: {answer.status_code}")
    assert opened == []
    again = session.post(
        "/editor/login", data={"email": email, "password": PASSWORD, "csrf_token": token}
    )
    assert again.status_code == 401 and "Wrong email or password." in again.text


def test_every_state_changing_route_refuses_a_session_post_without_the_csrf_token(
    site: Site,
) -> None:
    """Every POST/PUT/DELETE a session may make, newsroom form or API, whatever its blueprint."""
    admin = site.sessions[Role.ADMIN]
    writes = [r for r in site.every_route if r.method != "GET" and ACCESS[r.endpoint] != SIGNED]
    writes = [r for r in writes if r.endpoint not in PUBLIC or r.endpoint.startswith("editor.")]
    assert len(writes) >= 25, len(writes)
    before = _alert_count(site.rig)
    wrong = []
    for route in writes:
        for data in ({}, {"csrf_token": "forged-" + uuid.uuid4().hex}):
            answer = admin.open(route.url, method=route.method, data=data)
            if answer.status_code != 400:
                wrong.append(f"{route.method} {route.url} {data}: {answer.status_code}")
    assert wrong == []
    assert _alert_count(site.rig) == before
    # Still logged in: a forged logout or sign-out did not log anyone out.
    assert admin.get("/editor").status_code == 200


def test_a_route_added_tomorrow_refuses_a_session_form_post_without_the_token(
    site: Site,
) -> None:
    """The CSRF rule lives in require_role, not in each blueprint: a new blueprint that forgets
    its own check is still covered. Another site's form can post urlencoded, multipart or
    text/plain with the editor's cookie; only the page's token or a JSON body (which needs a CORS
    preflight no such route grants) get through."""
    app = create_app(site.rig.settings)
    acted: list[str] = []
    tomorrow = Blueprint("tomorrow", __name__)

    @tomorrow.post("/tomorrow/act")
    @require_role({Role.EDITOR, Role.ADMIN})
    def act() -> str:
        acted.append(request.mimetype)
        return "done"

    app.register_blueprint(tomorrow)
    try:
        editor = app.test_client()
        cookie = site.sessions[Role.EDITOR].get_cookie("newsflash_session")
        assert cookie is not None
        editor.set_cookie("newsflash_session", cookie.value)
        token = csrf_of(site.sessions[Role.EDITOR])
        for body in (
            {"data": {"x": "1"}},
            {"data": {"x": "1"}, "content_type": "multipart/form-data"},
            {"data": "x=1", "content_type": "text/plain"},
            {"data": {"x": "1", "csrf_token": "forged"}},
        ):
            assert editor.post("/tomorrow/act", **body).status_code == 400, body
        assert acted == []
        assert editor.post("/tomorrow/act", data={"csrf_token": token}).status_code == 200
        assert editor.post("/tomorrow/act", json={"x": 1}).status_code == 200
        bearer = {"Authorization": f"Bearer {site.tokens[Role.EDITOR]}"}
        assert app.test_client().post("/tomorrow/act", data={}, headers=bearer).status_code == 200
        assert len(acted) == 3
    finally:
        app.extensions["newsflash"].container.engine.dispose()


def _csp(answer: Any) -> dict[str, str]:
    policy = answer.headers.get("Content-Security-Policy", "")
    parts = (p.strip().split(None, 1) for p in policy.split(";") if p.strip())
    return {p[0]: p[1] if len(p) > 1 else "" for p in parts}


def test_private_answers_are_never_cached_and_newsroom_pages_cannot_be_framed(
    site: Site,
) -> None:
    """A shared phone's back button or a proxy must not keep a newsroom page; no other site may
    frame one (clickjacking the Send button); and the pages run only their own scripts."""
    wrong = []
    pages = [Route("editor.login", "GET", "/editor/login")]
    for route in [r for r in site.routes if r.method == "GET"] + pages:
        role = min(allowed_roles(route.endpoint) or {Role.ADMIN})
        for how, client, headers in (
            ("session", site.sessions[role], {}),
            ("token", site.rig.app.test_client(), {"Authorization": f"Bearer {site.tokens[role]}"}),
        ):
            answer = client.get(route.url, headers=headers)
            if answer.status_code >= 300:
                continue  # a token on a page: the login redirect, nothing private
            if "no-store" not in answer.headers.get("Cache-Control", ""):
                wrong.append(
                    f"{route.url} ({how}): Cache-Control {answer.headers.get('Cache-Control')}"
                )
            if answer.mimetype != "text/html":
                continue
            csp = _csp(answer)
            if answer.headers.get("X-Frame-Options") != "DENY" or csp.get("frame-ancestors") != (
                "'none'"
            ):
                wrong.append(f"{route.url} ({how}): may be framed")
            scripts = csp.get("script-src", csp.get("default-src", "*"))
            if scripts != "'self'" or "object-src" not in csp or "form-action" not in csp:
                wrong.append(f"{route.url} ({how}): Content-Security-Policy {csp}")
    assert wrong == []
    # The reader's pages are public and cacheable, and not framed either.
    home = site.rig.app.test_client().get("/")
    assert "no-store" not in home.headers.get("Cache-Control", "")
    assert _csp(home).get("frame-ancestors") == "'none'"


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
