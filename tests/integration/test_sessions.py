"""Newsroom sessions end on the server (logout, password, role, disable, idle, lifetime) and
refused logins are summarised in the audit log, which pages and filters; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from core.accounts import Role, hash_token
from core.adapters import tables as t
from tests.support.newsroom import csrf_of
from tests.support.newsroom_site import Site, fresh_ip, logged_in, login, site_per_engine
from tests.support.services import (
    make_env,
    settings_from,
)

COOKIE = "newsflash_session"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, vapid_pem: str
) -> Iterator[Site]:
    yield from site_per_engine(request, tmp_path_factory, vapid_pem, "sessions")


def replay(site: Site, cookie: str) -> FlaskClient:
    """A fresh browser holding a copy of someone's session cookie."""
    client = site.app.test_client()
    client.set_cookie(COOKIE, cookie)
    return client


def cookie_of(client: FlaskClient) -> str:
    found = client.get_cookie(COOKIE)
    assert found is not None
    return found.value


def assert_logged_out(client: FlaskClient) -> None:
    page = client.get("/editor/scheduled")
    assert page.status_code == 302 and page.headers["Location"].startswith("/editor/login")
    assert client.get("/api/v1/alerts").status_code == 401


def assert_logged_in(client: FlaskClient) -> None:
    assert client.get("/editor/scheduled").status_code == 200
    assert client.get("/api/v1/alerts").status_code == 200


# -- sessions ---------------------------------------------------------------------------------
def test_a_cookie_copied_before_logout_is_worthless_after_it(site: Site) -> None:
    email = site.user()
    client = logged_in(site.app, email)
    stolen = cookie_of(client)
    assert_logged_in(replay(site, stolen))
    token = csrf_of(client.get("/editor/scheduled").text)
    assert client.post("/editor/logout", data={"csrf_token": token}).status_code == 302
    assert_logged_out(client)
    assert_logged_out(replay(site, stolen))
    # Logging in again is a new session; the old cookie stays dead.
    assert_logged_in(logged_in(site.app, email))
    assert_logged_out(replay(site, stolen))


@pytest.mark.parametrize(
    "change",
    [
        ("user", "role", "{email}", "--role", "admin"),
        ("user", "disable", "{email}"),
    ],
    ids=["role", "disable"],
)
def test_a_role_change_or_disabling_ends_every_session_of_that_user(
    site: Site, monkeypatch: pytest.MonkeyPatch, change: tuple[str, ...]
) -> None:
    email, bystander = site.user(), site.user()
    browsers = [logged_in(site.app, email), logged_in(site.app, email)]
    other = logged_in(site.app, bystander)
    assert site.cli(monkeypatch, *(a.format(email=email) for a in change)) == 0
    for browser in browsers:
        assert_logged_out(browser)
    assert_logged_in(other)


def test_a_password_change_ends_every_session_and_only_the_new_password_works(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    email = site.user()
    browser = logged_in(site.app, email)
    new_password = "a brand new passphrase"
    monkeypatch.setattr("sys.stdin", io.StringIO(new_password + "\n"))
    assert site.cli(monkeypatch, "user", "password", email, "--password-stdin") == 0
    assert_logged_out(browser)
    assert login(site.app.test_client(), email).status_code == 401
    assert login(site.app.test_client(), email, new_password).status_code == 302


def test_a_disabled_user_cannot_log_in_until_enabled(
    site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    email = site.user()
    assert site.cli(monkeypatch, "user", "disable", email.upper()) == 0
    assert "disabled" in capsys.readouterr().out
    assert login(site.app.test_client(), email).status_code == 401
    assert site.cli(monkeypatch, "user", "enable", email) == 0
    assert_logged_in(logged_in(site.app, email))
    assert site.cli(monkeypatch, "user", "disable", "nobody@news.example") == 2
    assert "no user with this email" in capsys.readouterr().err


def _age_session(site: Site, client: FlaskClient, **ago_s: float) -> None:
    with client.session_transaction() as session:
        digest = hash_token(session["sid"])
    now = time.time()
    with site.engine.begin() as conn:
        conn.execute(
            update(t.sessions)
            .where(t.sessions.c.id == digest)
            .values(**{column: now - s for column, s in ago_s.items()})
        )


def test_idle_sessions_expire_sooner_than_the_lifetime(site: Site) -> None:
    settings = site.app.extensions["newsflash"].settings
    assert (settings.session_idle_s, settings.session_lifetime_s) == (7200, 43200)
    email = site.user()
    idle, busy, old = (logged_in(site.app, email) for _ in range(3))
    _age_session(site, idle, created_at=7300, last_seen_at=7201)
    _age_session(site, busy, created_at=7300, last_seen_at=7000)
    _age_session(site, old, created_at=43201, last_seen_at=10)
    assert_logged_out(idle)
    assert_logged_in(busy)  # used within the idle limit: still in, and its last use refreshed
    assert_logged_out(old)
    with busy.session_transaction() as session:
        digest = hash_token(session["sid"])
    with site.engine.connect() as conn:
        seen = conn.execute(
            select(t.sessions.c.last_seen_at).where(t.sessions.c.id == digest)
        ).scalar_one()
    assert seen > time.time() - 60
    # A session past its lifetime can never count again: the next login deletes its row.
    with old.session_transaction() as session:
        expired = hash_token(session["sid"])
    logged_in(site.app, email)
    with site.engine.connect() as conn:
        rows = conn.execute(select(t.sessions.c.id).where(t.sessions.c.id == expired)).all()
    assert rows == []


# -- signing out of every other device (a lost phone) -----------------------------------------
SIGN_OUT = "/editor/account/sign-out-others"


def _account(client: FlaskClient) -> str:
    page = client.get("/editor/account")
    assert page.status_code == 200, page.text
    return page.text


def _sign_out_audits(site: Site, email: str) -> list[dict[str, Any]]:
    return [
        e
        for e in site.accounts.audit_entries(10_000, action="user.sign_out_others")
        if e["actor"] == email
    ]


def test_signing_out_of_all_other_devices_ends_only_this_users_other_sessions(
    site: Site,
) -> None:
    email, bystander = site.user(), site.user()
    here, lost_phone, tablet = (logged_in(site.app, email) for _ in range(3))
    stolen = cookie_of(lost_phone)
    other = logged_in(site.app, bystander)
    page = _account(here)
    assert email in page and "signed in on 2 other devices" in page
    assert "Sign out of all other devices" in page

    answer = here.post(SIGN_OUT, data={"csrf_token": csrf_of(page)})
    assert answer.status_code == 302, answer.text
    assert answer.headers["Location"].startswith("/editor/account")
    done = here.get(answer.headers["Location"]).text
    assert "Signed out of 2 other devices" in done
    assert "signed in on this device only" in done

    assert_logged_in(here)
    for browser in (lost_phone, tablet, replay(site, stolen)):
        assert_logged_out(browser)
    assert_logged_in(other)
    assert "signed in on this device only" in _account(other)
    audits = _sign_out_audits(site, email)
    assert len(audits) == 1 and audits[0]["target"] == email
    assert json.loads(audits[0]["detail"])["sessions_ended"] == 2
    # The audit log says it in words.
    admin = logged_in(site.app, site.user(Role.ADMIN))
    audit = admin.get(f"/editor/audit?actor={email}&action=user.sign_out_others").text
    assert f"{email} signed out of their other devices (2 sessions ended)." in audit


def test_an_ops_user_can_sign_out_their_other_devices_too(site: Site) -> None:
    email = site.user(Role.OPS)
    here, lost_phone = logged_in(site.app, email), logged_in(site.app, email)
    answer = here.post(SIGN_OUT, data={"csrf_token": csrf_of(_account(here))})
    assert answer.status_code == 302, answer.text
    assert here.get("/ops").status_code == 200
    page = lost_phone.get("/ops")
    assert page.status_code == 302 and page.headers["Location"].startswith("/editor/login")


def test_a_get_or_a_post_without_the_csrf_token_signs_nobody_out(site: Site) -> None:
    email = site.user()
    here, elsewhere = logged_in(site.app, email), logged_in(site.app, email)
    page = _account(here)
    assert here.get(SIGN_OUT).status_code == 405
    for data in ({}, {"csrf_token": "forged-" + uuid.uuid4().hex}):
        refused = here.post(SIGN_OUT, data=data)
        assert refused.status_code == 400
        assert "Nothing was sent or changed" in refused.text
    # Another site's form would carry the cookie but never this session's token.
    cross_site = elsewhere.post(SIGN_OUT, data={}, headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 400
    assert_logged_in(here)
    assert_logged_in(elsewhere)
    assert "signed in on 1 other device" in page and _sign_out_audits(site, email) == []


def test_an_api_token_has_no_devices_to_sign_out(site: Site) -> None:
    token = site.accounts.create_token("cms", Role.ADMIN)
    client = site.app.test_client()
    answer = client.get("/editor/account", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 403
    assert "log in" in answer.text.lower()
    # Without a session there is no CSRF token either: the post is refused before anything.
    posted = client.post(SIGN_OUT, headers={"Authorization": f"Bearer {token}"})
    assert posted.status_code == 400


# -- audit log ---------------------------------------------------------------------------------
def _audit_rows(site: Site, ip: str) -> list[dict[str, Any]]:
    return [e for e in site.accounts.audit_entries(10_000) if e["target"] == ip]


def test_200_refused_logins_are_a_handful_of_counted_rows(site: Site) -> None:
    email = site.user()
    ip = fresh_ip()
    client = site.app.test_client()
    token = csrf_of(client.get("/editor/login", environ_base={"REMOTE_ADDR": ip}).text)
    codes = [
        client.post(
            "/editor/login",
            data={"email": email, "password": f"guess-{i}", "csrf_token": token},
            environ_base={"REMOTE_ADDR": ip},
        ).status_code
        for i in range(200)
    ]
    assert set(codes) == {401, 429}  # the login rate limit (10 a minute) refused most
    rows = _audit_rows(site, ip)
    # One row per action and 10-minute window (two windows if the run crossed a boundary).
    assert 2 <= len(rows) <= 4, rows
    assert sum(r["count"] for r in rows) == 200
    assert sum(r["count"] for r in rows if r["action"] == "login.failed") == codes.count(401)
    assert {r["actor"] for r in rows} == {email}


def test_guessing_many_emails_from_one_address_is_still_one_row(site: Site) -> None:
    ip = "2001:db8:1:2:3::7"
    for i in range(5):
        site.accounts.audit_refusal(f"guess{i}@news.example", "login.failed", ip, 1_000_000.0 + i)
    site.accounts.audit_refusal("x@news.example", "login.failed", "2001:db8:1:2::99", 1_000_010.0)
    (row,) = _audit_rows(site, "2001:db8:1:2::/64")
    assert row["count"] == 6 and row["actor"] == "(several)"
    assert row["at"] == 1_000_000.0 and row["last_at"] == 1_000_010.0


def _audit_page(client: FlaskClient, query: str = "") -> tuple[int, str, list[str]]:
    page = client.get("/editor/audit" + query)
    rows = re.findall(r"<tr>\s*<td>.*?</tr>", page.text, re.S)
    return page.status_code, page.text, rows


def test_the_audit_page_pages_and_filters_so_real_entries_stay_visible(site: Site) -> None:
    admin = site.user(Role.ADMIN)
    client = logged_in(site.app, admin)
    flood_ip = "127.9.9.9"
    for i in range(300):
        site.accounts.audit_refusal(f"bot{i}@x.example", "login.failed", flood_ip, time.time())
    marker = f"alert-{uuid.uuid4().hex[:6]}"
    for i in range(120):
        site.accounts.audit(admin, "alert.send", f"{marker}-{i}", {"title": f"story {i}"})

    status, text, rows = _audit_page(client)
    assert status == 200 and len(rows) == 50
    assert f"{marker}-119" in text  # the newest real entry is on the first page

    # Every entry of the admin's is reachable through "Older", each exactly once.
    seen: list[str] = []
    query = f"?actor={admin.upper()}&action=alert.send"
    while True:
        status, text, rows = _audit_page(client, query)
        assert status == 200
        seen += re.findall(rf"{marker}-\d+", text)
        older = re.search(r'href="(/editor/audit\?[^"]+)" rel="next"', text)
        if older is None:
            break
        query = older.group(1).replace("&amp;", "&").removeprefix("/editor/audit")
    assert seen == [f"{marker}-{i}" for i in reversed(range(120))]

    # The flood is one row, its count shown.
    status, text, rows = _audit_page(client, "?action=login.*")
    flood = [r for r in rows if flood_ip in r]
    assert len(flood) == 1 and "\u00d7300" in flood[0]  # the count, as "x300"

    zone = site.app.extensions["newsflash"].settings.timezone
    today = datetime.now(zone).date()
    newest = f"?actor={admin}&action=alert.send"
    for query, shown in (
        (f"&from={today}&to={today}", True),
        (f"&from={today - timedelta(days=1)}", True),
        (f"&to={today - timedelta(days=1)}", False),
        (f"&from={today + timedelta(days=1)}", False),
    ):
        status, text, rows = _audit_page(client, newest + query)
        assert status == 200
        assert (f"{marker}-119" in text) is shown, query
        assert ("Nothing matches" in text) is not shown, query
    status, text, _ = _audit_page(client, "?from=yesterday")
    assert status == 400 and "YYYY-MM-DD" in text
    assert _audit_page(client, "?before=1e9")[0] == 400


@pytest.mark.parametrize("variable", ["NEWSFLASH_SESSION_LIFETIME_S", "NEWSFLASH_SESSION_IDLE_S"])
@pytest.mark.parametrize("value", ["2h", "0", "-5", "9999999"])
def test_malformed_session_limits_name_the_variable(
    tmp_path: Path, vapid_pem: str, variable: str, value: str
) -> None:
    from config.settings import SettingsError

    env = make_env(tmp_path, "sqlite:///x.db", "redis://127.0.0.1:6379/0", vapid_pem)
    with pytest.raises(SettingsError) as info:
        settings_from({**env, variable: value})
    assert str(info.value).startswith(f"{variable}: expected a whole number")
    field = variable.removeprefix("NEWSFLASH_").lower()
    assert getattr(settings_from({**env, variable: "900"}), field) == 900


def test_control_characters_in_login_and_audit_filters_are_refused_not_500(site: Site) -> None:
    """PostgreSQL refuses NUL in text: before this, a NUL in the login email was a 500 there."""
    ip = fresh_ip()
    client = site.app.test_client()
    token = csrf_of(client.get("/editor/login", environ_base={"REMOTE_ADDR": ip}).text)
    codes = [
        client.post(
            "/editor/login",
            data={"email": "a\x00@news.example", "password": "x" * 12, "csrf_token": token},
            environ_base={"REMOTE_ADDR": ip},
        ).status_code
        for _ in range(12)
    ]
    # Refused by the app-wide input guard before the view: no password is hashed, nothing reaches
    # the database (no audit row either), so there is nothing for the login limit to protect.
    assert codes == [400] * 12
    assert _audit_rows(site, ip) == []
    admin = logged_in(site.app, site.user(Role.ADMIN))
    for field, query in (("actor", "a%00b"), ("action", "log%0Ain"), ("from", "2026-01-01%00")):
        status, text, _ = _audit_page(admin, f"?{field}={query}")
        # Refused by the input guard (JSON naming the field) or the view (a page naming it).
        assert status == 400 and (f"{field}: " in text or f'"field":"{field}"' in text), query


def test_the_login_limit_counts_an_ipv6_host_by_its_64(site: Site) -> None:
    """One phone or home router owns a whole /64: stepping through it must not reset the limit."""
    client = site.app.test_client()
    n = uuid.uuid4().int
    prefix = f"2001:db8:{n % 0xFFFF:x}:{(n >> 16) % 0xFFFF:x}::"
    token = csrf_of(client.get("/editor/login", environ_base={"REMOTE_ADDR": prefix + "1"}).text)
    answers = [
        client.post(
            "/editor/login",
            data={"email": "editor@news.example", "password": f"guess-{i}", "csrf_token": token},
            environ_base={"REMOTE_ADDR": f"{prefix}{i + 1:x}"},
        )
        for i in range(12)
    ]
    assert [a.status_code for a in answers] == [401] * 10 + [429] * 2  # 10 per minute
    assert [0 < int(a.headers.get("Retry-After", 0)) <= 60 for a in answers] == [False] * 10 + [
        True
    ] * 2, "only the refusals say when to come back"


def test_a_form_sent_after_logging_out_in_another_tab_gets_the_newsroom_page(site: Site) -> None:
    """The refusal is the styled page (readable on a phone), saying that nothing went out."""
    client = logged_in(site.app, site.user())
    stale = csrf_of(client.get("/editor/new").text)
    client.post("/editor/logout", data={"csrf_token": stale})  # the other tab
    with site.engine.connect() as conn:
        before = conn.execute(select(t.alerts.c.id)).all()
    answer = client.post(
        "/editor/new",
        data={"csrf_token": stale, "action": "send", "confirm": "yes", "title": "Habari"},
    )
    assert answer.status_code == 400
    assert '<meta name="viewport" content="width=device-width' in answer.text
    assert 'data-error-page="400"' in answer.text
    assert "Nothing was sent" in answer.text and 'href="/editor/login"' in answer.text
    with site.engine.connect() as conn:
        assert conn.execute(select(t.alerts.c.id)).all() == before
