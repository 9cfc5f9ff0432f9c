"""The newsroom's door as an outside attacker and a careless editor on a phone test it: cookie
flags, session fixation, login throttling per address and per account (without locking out an
editor on a known device or a newsroom behind one address), one answer for every refused login,
password hashing, token revocation, tokens kept out of logs, and no 500 from any hostile body on
any route; SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from argon2 import extract_parameters
from flask import Flask
from sqlalchemy import select

from core.accounts import Role
from core.adapters import accounts_sql
from core.adapters import tables as t
from tests.support.newsroom import PASSWORD, csrf_of
from tests.support.newsroom_site import LOGIN, Site, fresh_ip, login, site_per_engine

COOKIE = "newsflash_session"
DEVICE = "newsflash_device"


def set_cookie(answer: Any, name: str) -> str:
    found = [c for c in answer.headers.getlist("Set-Cookie") if c.startswith(name + "=")]
    assert found, f"no {name} cookie set"
    return str(found[-1])


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, vapid_pem: str
) -> Iterator[Site]:
    yield from site_per_engine(request, tmp_path_factory, vapid_pem, "security")


def _dispose(app: Flask) -> None:
    app.extensions["newsflash"].container.engine.dispose()


# -- cookies and sessions ---------------------------------------------------------------------------
def test_the_session_cookie_is_httponly_lax_and_secure_whenever_https_is_in_play(
    site: Site,
) -> None:
    email = site.user()
    plain = set_cookie(login(site.app.test_client(), email), COOKIE)
    assert "HttpOnly" in plain and "SameSite=Lax" in plain
    assert "Secure" not in plain  # http://127.0.0.1 in development: a Secure cookie never returns
    # Behind the documented reverse proxy (NEWSFLASH_PROXY_HOPS=1) that terminates https, even
    # when the configured origins are loopback ones (a staging tunnel).
    proxied = site.app_with(PROXY_HOPS="1")
    try:
        client = proxied.test_client()
        answer = login(client, email, headers={"X-Forwarded-Proto": "https"})
        assert answer.status_code == 302
        cookie = set_cookie(answer, COOKIE)
        assert "; Secure" in cookie and "HttpOnly" in cookie
        assert "; Secure" in set_cookie(answer, DEVICE)
    finally:
        _dispose(proxied)
    # A public deployment: Secure whatever a request says.
    public = site.app_with(PUBLIC_ORIGINS="https://news.example")
    try:
        answer = login(public.test_client(), email, base_url="https://localhost")
        assert "; Secure" in set_cookie(answer, COOKIE)
    finally:
        _dispose(public)


def test_logging_in_replaces_a_planted_session(site: Site) -> None:
    """Session fixation: a cookie an attacker obtained before the login is worth nothing after."""
    attacker = site.app.test_client()
    attacker.get(LOGIN)
    planted = attacker.get_cookie(COOKIE)
    assert planted is not None
    victim = site.app.test_client()
    victim.set_cookie(COOKIE, planted.value)
    assert login(victim, site.user()).status_code == 302
    after = victim.get_cookie(COOKIE)
    assert after is not None and after.value != planted.value
    assert victim.get("/editor/scheduled").status_code == 200
    still = attacker.get("/editor/scheduled")
    assert still.status_code == 302 and still.headers["Location"].startswith(LOGIN)


# -- refused logins look alike ----------------------------------------------------------------------
def _normalised(answer: Any, email: str) -> str:
    text = re.sub(r'name="csrf_token" value="[^"]+"', "CSRF", answer.text)
    return text.replace(email, "EMAIL")


def test_unknown_disabled_and_wrong_password_logins_get_one_answer(site: Site) -> None:
    known, disabled = site.user(), site.user()
    site.accounts.set_disabled(disabled, True, time.time())
    unknown = f"nobody-{uuid.uuid4().hex[:6]}@news.example"
    answers = {
        "wrong password": (known, login(site.app.test_client(), known, "not the password!")),
        "no such user": (unknown, login(site.app.test_client(), unknown)),
        "disabled": (disabled, login(site.app.test_client(), disabled)),
    }
    assert {a.status_code for _, a in answers.values()} == {401}
    pages = {_normalised(a, email) for email, a in answers.values()}
    assert len(pages) == 1 and "Wrong email or password." in pages.pop()
    # Equally slow: "no such user" is checked against a hash of the same cost as a real one.
    with site.engine.connect() as conn:
        stored = conn.execute(select(t.users.c.password_hash).where(t.users.c.email == known))
        real = stored.scalar_one()
    assert extract_parameters(accounts_sql.dummy_hash()) == extract_parameters(real)


@pytest.mark.usefixtures("production_password_cost")
def test_passwords_are_stored_with_argon2id_at_the_rfc_9106_cost(site: Site) -> None:
    email = site.user()
    with site.engine.connect() as conn:
        stored = conn.execute(select(t.users.c.password_hash).where(t.users.c.email == email))
        hashed = stored.scalar_one()
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed
    cost = extract_parameters(hashed)
    # RFC 9106's second recommended option: 64 MiB, 3 passes.
    assert cost.memory_cost >= 65536 and cost.time_cost >= 3 and cost.salt_len >= 16


# -- login throttling ------------------------------------------------------------------------------
def test_a_newsroom_behind_one_address_is_not_locked_out_by_its_own_logins(site: Site) -> None:
    """Twelve editors behind one office or carrier address log in within a minute (the limit is
    10 a minute): only refused attempts spend the address's budget."""
    ip = fresh_ip()
    editors = [site.user() for _ in range(12)]
    codes = [login(site.app.test_client(), email, ip=ip).status_code for email in editors]
    assert codes == [302] * 12


def test_guessing_one_password_from_many_addresses_is_throttled_per_account(site: Site) -> None:
    owner = site.user()
    phone = site.app.test_client()
    assert login(phone, owner).status_code == 302  # the editor's own phone, logged in before
    phone.post("/editor/logout", data={"csrf_token": csrf_of(phone.get("/editor/account").text)})
    # A botnet: every guess from another address, so no address limit ever applies.
    codes = [
        login(site.app.test_client(), owner, f"guess-{i:04d}-xxxx").status_code for i in range(12)
    ]
    assert codes == [401] * 10 + [429] * 2
    # Even the right password from a new device waits now ...
    assert login(site.app.test_client(), owner).status_code == 429
    # ... but the editor's own phone is not locked out, and other accounts are not touched.
    assert login(phone, owner).status_code == 302
    assert phone.get("/editor/scheduled").status_code == 200
    assert login(site.app.test_client(), site.user()).status_code == 302


def test_an_attacker_sharing_a_carrier_address_cannot_lock_out_a_known_phone(site: Site) -> None:
    carrier = fresh_ip()
    owner = site.user()
    phone = site.app.test_client()
    assert login(phone, owner, ip=carrier).status_code == 302
    phone.post("/editor/logout", data={"csrf_token": csrf_of(phone.get("/editor/account").text)})
    attacker = site.app.test_client()
    codes = [
        login(attacker, f"x{i}@news.example", "guess-guess-guess", ip=carrier).status_code
        for i in range(11)
    ]
    assert codes == [401] * 10 + [429]
    assert login(site.app.test_client(), site.user(), ip=carrier).status_code == 429  # new device
    assert login(phone, owner, ip=carrier).status_code == 302  # the known phone gets in


def test_a_known_device_only_vouches_for_its_own_account_and_has_its_own_limit(
    site: Site,
) -> None:
    first, second = site.user(), site.user()
    phone = site.app.test_client()
    assert login(phone, first).status_code == 302
    phone.post("/editor/logout", data={"csrf_token": csrf_of(phone.get("/editor/account").text)})
    device = phone.get_cookie(DEVICE, path=LOGIN)
    assert device is not None
    # The first account's device cookie does not spare guesses at the second account.
    codes = [login(phone, second, f"guess-{i:04d}-xxxx").status_code for i in range(11)]
    assert codes == [401] * 10 + [429]
    # A tampered cookie vouches for nothing either.
    forged = site.app.test_client()
    forged.set_cookie(DEVICE, device.value[:-4] + "AAAA", path=LOGIN)
    assert login(forged, second).status_code == 429
    # The device's own account: guesses from it are limited per device (a stolen phone).
    codes = [login(phone, first, f"guess-{i:04d}-xxxx").status_code for i in range(11)]
    assert codes == [401] * 10 + [429]


# -- tokens ---------------------------------------------------------------------------------------
def test_a_token_revoked_at_the_cli_is_refused_at_once_and_never_logged(
    site: Site,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = f"cms-{uuid.uuid4().hex[:6]}"
    assert site.cli(monkeypatch, "token", "create", "--name", name, "--role", "editor") == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    client = site.app.test_client()
    bearer = {"Authorization": f"Bearer {token}"}
    caplog.set_level(logging.DEBUG)
    assert client.get("/api/v1/alerts", headers=bearer).status_code == 200
    token_id = next(r["id"] for r in site.accounts.list_tokens() if r["name"] == name)
    assert site.cli(monkeypatch, "token", "revoke", str(token_id)) == 0
    assert client.get("/api/v1/alerts", headers=bearer).status_code == 401
    assert client.get("/editor/scheduled", headers=bearer).status_code == 302
    assert client.get("/ops", headers=bearer).status_code == 302
    assert token not in caplog.text and token[10:] not in capsys.readouterr().out


# -- hostile bodies ---------------------------------------------------------------------------------
def _hostile(csrf: str) -> dict[str, dict[str, Any]]:
    form = "application/x-www-form-urlencoded"
    token = csrf.encode()
    return {
        "JSON where a form is expected": {
            "json": {"title": "x" * 5000, "email": 5, "password": []}
        },
        "a JSON array": {"data": "[1, 2]", "content_type": "application/json"},
        "not UTF-8": {
            "data": b"csrf_token=" + token + b"&title=\xff\xfe&body=\xc3&email=\xff&password=\xff"
            b"&url=%ff%fe&topics=\xff&name=\xff",
            "content_type": form,
        },
        "very long fields": {
            "data": {
                "csrf_token": csrf,
                "email": "e" * 3000 + "@news.example",
                "password": "p" * 3000,
                "title": "t" * 1000,
                "topics": "breaking",
            }
        },
        "text/plain": {"data": "csrf_token=" + csrf, "content_type": "text/plain"},
        "broken multipart": {
            "data": b'--x\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
            + token
            + b'\r\n--x\r\nContent-Disposition: form-data; name="title"\r\n\r\n\xff\xfe\r\n',
            "content_type": "multipart/form-data; boundary=x",
        },
    }


def test_hostile_bodies_on_every_route_are_never_a_500(site: Site) -> None:
    """An admin's session and CSRF token, so each body gets past the door to the view."""
    admin = site.app.test_client()
    assert login(admin, site.user(Role.ADMIN)).status_code == 302
    csrf = csrf_of(admin.get("/editor/account").text)
    token = site.accounts.create_token(f"hostile-{uuid.uuid4().hex[:6]}", Role.EDITOR)
    published = site.app.test_client().post(
        "/api/v1/alerts",
        json={"title": "Quake", "body": "b", "url": "http://127.0.0.1:8000/q", "send_at": None},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert published.status_code == 202, published.json
    alert_id = published.json["id"]
    failed = []
    for rule in site.app.url_map.iter_rules():
        url = re.sub(r"<int:[a-z_]+>", str(alert_id), rule.rule).replace("<key>", "no-story")
        url = url.replace("<path:filename>", "editor.css")
        for method in sorted((rule.methods or set()) - {"GET", "HEAD", "OPTIONS"}):
            if rule.endpoint == "editor.logout":
                continue  # would end the admin's session for the routes after it
            for name, body in _hostile(csrf).items():
                answer = admin.open(url, method=method, headers={"X-CSRF-Token": csrf}, **body)
                if answer.status_code >= 500:
                    failed.append(f"{method} {url} with {name}: {answer.status_code}")
        if "GET" in (rule.methods or set()):
            query = "next=%ff&topics=%ff%fe&weeks=99999999999999999999&before=%ff&from=%ff"
            answer = admin.get(f"{url}?{query}&limit=-1&status=%c3&actor=%ff")
            if answer.status_code >= 500:
                failed.append(f"GET {url} with a hostile query: {answer.status_code}")
    assert failed == []
