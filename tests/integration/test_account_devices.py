"""The account page lists a user's signed-in devices ("Chrome on Android", the address, when)
and signs out one of them: only that one ends, only the owner's own sessions can be named, this
browser's own is refused (that is Log out), and the User-Agent header is never stored as
written; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from core.accounts import Role, device_summary
from core.adapters import tables as t
from tests.support.newsroom import csrf_of
from tests.support.newsroom_site import Site, login, site_per_engine

PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)
LAPTOP_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
HOSTILE_UA = "<script>alert(1)</script> Firefox/1 \u202e"
SIGN_OUT = re.compile(r'action="(/editor/account/devices/([0-9a-f]{64})/sign-out)"')


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, vapid_pem: str
) -> Iterator[Site]:
    yield from site_per_engine(request, tmp_path_factory, vapid_pem, "devices")


def _browser(site: Site, email: str, agent: str, ip: str) -> FlaskClient:
    client = site.app.test_client()
    answer = login(client, email, ip=ip, headers={"User-Agent": agent})
    assert answer.status_code == 302, answer.text
    return client


def _account(client: FlaskClient) -> str:
    page = client.get("/editor/account")
    assert page.status_code == 200, page.text
    return page.text


def _logged_in(client: FlaskClient) -> bool:
    return client.get("/editor/scheduled").status_code == 200


def test_the_page_names_each_device_and_signs_out_just_the_one_picked(site: Site) -> None:
    email = site.user()
    laptop = _browser(site, email, LAPTOP_UA, "127.0.0.21")
    tablet = _browser(site, email, PHONE_UA, "127.0.0.23")
    here = _browser(site, email, PHONE_UA, "127.0.0.22")
    page = _account(here)
    assert "Besides this one, you are signed in on 2 other devices." in page
    assert page.count('data-device="this"') == 1 and page.count('data-device="other"') == 2
    assert "Firefox on Windows" in page and "127.0.0.21" in page
    assert 'Chrome on Android</strong> <span class="nf-chip">this device</span>' in page
    # Each other device has its own button; this one has none (that is Log out).
    buttons = SIGN_OUT.findall(page)
    assert len(buttons) == 2
    laptop_row = page[page.index("Firefox on Windows") :]
    path = SIGN_OUT.findall(laptop_row)[0][0]

    answer = here.post(path, data={"csrf_token": csrf_of(page)})
    assert answer.status_code == 302 and answer.headers["Location"] == "/editor/account"
    done = _account(here)
    assert "Signed out Firefox on Windows. This one stays signed in." in done
    assert "signed in on 1 other device" in done
    assert "Firefox on Windows" not in done[done.index('id="devices"') :]
    assert not _logged_in(laptop)
    assert _logged_in(tablet) and _logged_in(here)
    (row,) = [
        e
        for e in site.accounts.audit_entries(10_000, action="user.sign_out_device")
        if e["actor"] == email
    ]
    assert json.loads(row["detail"]) == {"device": "Firefox on Windows", "ip": "127.0.0.1"}
    admin = _browser(site, site.user(Role.ADMIN), LAPTOP_UA, "127.0.0.24")
    audit = admin.get(f"/editor/audit?actor={email}&action=user.sign_out_device").text
    assert f"{email} signed out one of their devices (Firefox on Windows)." in audit
    # The same handle again ends nothing more: 404, the page says so.
    again = here.post(path, data={"csrf_token": csrf_of(done)})
    assert again.status_code == 404
    assert _logged_in(tablet)


def test_no_one_else_s_device_and_not_this_one(site: Site) -> None:
    owner, other = site.user(), site.user()
    owners_phone = _browser(site, owner, PHONE_UA, "127.0.0.31")
    theirs = _browser(site, other, LAPTOP_UA, "127.0.0.32")
    # The other user's laptop, as their phone's account page names it.
    handle = SIGN_OUT.findall(_account(_browser(site, other, PHONE_UA, "127.0.0.33")))[0][1]
    page = _account(owners_phone)
    # Another user's device (its handle learned somehow): 404, it stays signed in.
    refused = owners_phone.post(
        f"/editor/account/devices/{handle}/sign-out", data={"csrf_token": csrf_of(page)}
    )
    assert refused.status_code == 404
    assert _logged_in(theirs)
    # This browser's own handle: refused in words, still signed in.
    with site.engine.connect() as conn:
        mine = conn.execute(
            select(t.sessions.c.id)
            .join(t.users)
            .where(t.users.c.email == owner, t.sessions.c.revoked_at.is_(None))
        ).scalar_one()
    own = owners_phone.post(
        f"/editor/account/devices/{mine}/sign-out", data={"csrf_token": csrf_of(page)}
    )
    assert own.status_code == 400 and "log out instead" in own.text
    assert _logged_in(owners_phone)
    # Not a handle at all, no CSRF token, a GET: nothing ends.
    for bad in ("x" * 64, "0" * 63, "../../logout"):
        assert (
            owners_phone.post(
                f"/editor/account/devices/{bad}/sign-out", data={"csrf_token": csrf_of(page)}
            ).status_code
            == 404
        )
    assert owners_phone.post(f"/editor/account/devices/{handle}/sign-out").status_code == 400
    assert owners_phone.get(f"/editor/account/devices/{handle}/sign-out").status_code == 405
    assert _logged_in(owners_phone) and _logged_in(theirs)


def test_the_user_agent_is_stored_as_fixed_words_only(site: Site) -> None:
    email = site.user()
    client = _browser(site, email, HOSTILE_UA, "127.0.0.41")
    with site.engine.connect() as conn:
        stored: Any = conn.execute(
            select(t.sessions.c.device, t.sessions.c.address)
            .join(t.users)
            .where(t.users.c.email == email)
        ).one()
    assert tuple(stored) == ("Firefox", "127.0.0.41")
    page = _account(client)
    assert "<script>alert(1)" not in page and "\u202e" not in page


@pytest.mark.parametrize(
    ("agent", "words"),
    [
        (PHONE_UA, "Chrome on Android"),
        (LAPTOP_UA, "Firefox on Windows"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            "Safari on iPhone",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like "
            "Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
            "Samsung Internet on Android",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            "Edge on Windows",
        ),
        ("curl/8.5.0", "a browser"),
        ("", "a browser"),
    ],
)
def test_device_words(agent: str, words: str) -> None:
    assert device_summary(agent) == words
