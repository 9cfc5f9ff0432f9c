"""An editor changes their own password from the account page (a phone is enough): proved by
the current password, every other device signed out, this browser kept under a new session id;
each bad field named with nothing changed; wrong current passwords limited per account, so a
borrowed or stolen session cannot guess its owner's password; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from core.accounts import Role
from tests.support.newsroom import PASSWORD, csrf_of
from tests.support.newsroom_site import Site, logged_in, login, site_per_engine

COOKIE = "newsflash_session"
CHANGE = "/editor/account/password"
NEW = "three unrelated words plus"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, vapid_pem: str
) -> Iterator[Site]:
    yield from site_per_engine(request, tmp_path_factory, vapid_pem, "password-change")


def _change(client: FlaskClient, current: str, new: str, repeat: str | None = None) -> Any:
    page = client.get("/editor/account")
    assert page.status_code == 200, page.text
    data = {
        "csrf_token": csrf_of(page.text),
        "current_password": current,
        "new_password": new,
        "new_password_repeat": new if repeat is None else repeat,
    }
    return client.post(CHANGE, data=data)


def _logged_in(client: FlaskClient) -> bool:
    return client.get("/editor/scheduled").status_code == 200


def _copy(site: Site, client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of this one's cookie as it is now."""
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    thief = site.app.test_client()
    thief.set_cookie(COOKIE, cookie.value)
    return thief


def _audits(site: Site, email: str, action: str) -> list[dict[str, Any]]:
    entries = site.accounts.audit_entries(10_000, action=action)
    return [e for e in entries if e["actor"] == email]


def test_an_editor_changes_their_password_and_every_other_device_is_signed_out(
    site: Site,
) -> None:
    email, bystander = site.user(), site.user()
    here, lost_phone = logged_in(site.app, email), logged_in(site.app, email)
    copied = _copy(site, here)
    other = logged_in(site.app, bystander)

    answer = _change(here, PASSWORD, NEW)
    assert answer.status_code == 302, answer.text
    assert answer.headers["Location"].startswith("/editor/account")
    done = here.get(answer.headers["Location"]).text
    assert "Your password is changed. Signed out of 1 other device; this one stays" in done
    assert "signed in on this device only" in done
    # Said once: a reload does not repeat it.
    assert "Your password is changed" not in here.get("/editor/account").text

    assert _logged_in(here)
    # The lost phone is out, and so is a copy of this browser's cookie taken before the change.
    assert not _logged_in(lost_phone) and not _logged_in(copied)
    assert _logged_in(other)
    assert login(site.app.test_client(), email).status_code == 401
    assert login(site.app.test_client(), email, NEW).status_code == 302

    (audit,) = _audits(site, email, "user.password")
    detail = json.loads(audit["detail"])
    assert audit["target"] == email and detail["sessions_ended"] == 1 and detail["own"] is True
    admin = logged_in(site.app, site.user(Role.ADMIN))
    page = admin.get(f"/editor/audit?actor={email}&action=user.password").text
    assert f"{email} changed their own password (1 session on other devices ended)." in page
    assert NEW not in page and PASSWORD not in page


@pytest.mark.parametrize(
    ("current", "new", "repeat", "status", "field", "words"),
    [
        ("", NEW, NEW, 400, "current_password", "Type your current password."),
        ("not the password at all", NEW, NEW, 403, "current_password", "current password is wrong"),
        (PASSWORD, NEW, NEW + "x", 400, "new_password_repeat", "The two new passwords differ."),
        (PASSWORD, "short one", "short one", 400, "new_password", "at least 12 characters"),
        (PASSWORD, PASSWORD, PASSWORD, 400, "new_password", "the one you have now"),
    ],
    ids=["no-current", "wrong-current", "repeat-differs", "too-short", "unchanged"],
)
def test_a_bad_field_is_named_under_it_and_nothing_changes(
    site: Site, current: str, new: str, repeat: str, status: int, field: str, words: str
) -> None:
    email = site.user()
    here, elsewhere = logged_in(site.app, email), logged_in(site.app, email)
    answer = _change(here, current, new, repeat)
    assert answer.status_code == status, answer.text
    assert f'data-field-error="{field}"' in answer.text and words in answer.text
    assert f'id="{field}" name="{field}"' in answer.text
    assert 'aria-invalid="true"' in answer.text
    # Nothing typed comes back in the page: a password is never echoed.
    for typed in {current, new, repeat} - {""}:
        assert f'value="{typed}"' not in answer.text
    assert _logged_in(here) and _logged_in(elsewhere)
    assert login(site.app.test_client(), email).status_code == 302
    assert _audits(site, email, "user.password") == []
    refused = _audits(site, email, "password.failed")
    assert len(refused) == (1 if status == 403 else 0)


def test_wrong_current_passwords_are_limited_per_account(site: Site) -> None:
    app = site.app_with(RATE_LIMIT_LOGIN="3 per minute")
    email, other_email = site.user(), site.user()
    thief = logged_in(app, email)
    for _ in range(3):
        assert _change(thief, "guess " + uuid.uuid4().hex, NEW).status_code == 403
    # The budget is spent: even the right password waits, and the page says why.
    limited = _change(thief, PASSWORD, NEW)
    assert limited.status_code == 429, limited.text
    assert 0 < int(limited.headers["Retry-After"]) <= 60  # the page's answer says when, too
    assert "too many wrong current passwords" in limited.text.lower()
    assert login(app.test_client(), email).status_code == 302  # unchanged
    assert len(_audits(site, email, "password.rate_limited")) == 1
    # Another account, and the owner's login on a new device, are not held by it.
    assert _change(logged_in(app, other_email), PASSWORD, NEW).status_code == 302
    # Fields refused before the password is checked spend nothing.
    again = logged_in(app, other_email, NEW)
    for _ in range(4):
        assert _change(again, NEW, NEW, "differs").status_code == 400
    assert _change(again, NEW, NEW + " again").status_code == 302


def test_no_csrf_token_no_get_and_no_api_token_change_anything(site: Site) -> None:
    email = site.user()
    here = logged_in(site.app, email)
    assert here.get(CHANGE).status_code == 405
    data = {"current_password": PASSWORD, "new_password": NEW, "new_password_repeat": NEW}
    for token in ({}, {"csrf_token": "forged-" + uuid.uuid4().hex}):
        refused = here.post(CHANGE, data={**data, **token})
        assert refused.status_code == 400
        assert "Nothing was sent or changed" in refused.text
    api = site.accounts.create_token("cms", Role.ADMIN)
    posted = site.app.test_client().post(
        CHANGE, data=data, headers={"Authorization": f"Bearer {api}"}
    )
    assert posted.status_code in (400, 403)
    assert login(site.app.test_client(), email).status_code == 302
    assert _logged_in(here)
    assert _audits(site, email, "user.password") == []
