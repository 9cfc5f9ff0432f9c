"""The Team page (/editor/team): an admin adds a person (an issued password shown once, never
stored or logged), changes a role, disables and enables, issues a new password, each audited
under the admin's name with the person's sessions ended; an admin never changes their own
account there (so the last admin cannot be lost from a browser); editors, ops and API tokens are
refused; bad input is named; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from core.accounts import Role
from tests.support.newsroom import PASSWORD, csrf_of
from tests.support.newsroom_site import Site, logged_in, login, site_per_engine

ISSUED = re.compile(r'id="issued-password">([a-z2-9]{4}(?:-[a-z2-9]{4}){3})<')


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, vapid_pem: str
) -> Iterator[Site]:
    yield from site_per_engine(request, tmp_path_factory, vapid_pem, "team")


def _post(client: FlaskClient, path: str, **data: str) -> Any:
    page = client.get("/editor/team")
    assert page.status_code == 200, page.text
    return client.post(path, data={"csrf_token": csrf_of(page.text), **data})


def _id_of(site: Site, email: str) -> int:
    return next(u["id"] for u in site.accounts.list_users(0, 1, 1) if u["email"] == email)


def _audits(site: Site, action: str, target: str) -> list[dict[str, Any]]:
    return [e for e in site.accounts.audit_entries(10_000, action=action) if e["target"] == target]


def _new_email() -> str:
    return f"Reporter-{uuid.uuid4().hex[:8]}@News.Example"


def test_an_admin_adds_a_person_who_logs_in_with_the_password_shown_once(site: Site) -> None:
    admin_email = site.user(Role.ADMIN)
    admin = logged_in(site.app, admin_email)
    typed = _new_email()
    answer = _post(admin, "/editor/team", email=typed, role="editor")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    email = typed.lower()
    found = ISSUED.search(answer.text)
    assert found is not None, answer.text
    password = found.group(1)
    assert f"{email} can log in now." in answer.text
    assert f'data-person="{email}"' in answer.text

    assert login(site.app.test_client(), email, password).status_code == 302
    # Shown once: the page itself never shows it again.
    assert password not in admin.get("/editor/team").text
    (row,) = _audits(site, "user.create", email)
    assert row["actor"] == admin_email and json.loads(row["detail"]) == {"role": "editor"}
    audit_page = admin.get("/editor/audit?action=user.create").text
    assert f"{admin_email} added {email} as editor." in audit_page and password not in audit_page


@pytest.mark.parametrize(
    ("email", "role", "status", "field"),
    [
        ("not an email", "editor", 400, "email"),
        ("someone@news.example\x00", "editor", 400, "email"),
        ("fine@news.example", "owner", 400, "role"),
        ("", "editor", 400, "email"),
    ],
    ids=["not-email", "nul", "bad-role", "empty"],
)
def test_a_bad_person_is_named_under_its_field_and_nobody_is_added(
    site: Site, email: str, role: str, status: int, field: str
) -> None:
    admin = logged_in(site.app, site.user(Role.ADMIN))
    before = len(site.accounts.list_users(0, 1, 1))
    answer = _post(admin, "/editor/team", email=email, role=role)
    assert answer.status_code == status, answer.text
    if answer.is_json:  # the app-wide guard refuses a control character in any form field
        assert answer.json["error"]["field"] == field
    else:
        assert f'data-field-error="{field}"' in answer.text
    assert ISSUED.search(answer.text) is None
    assert len(site.accounts.list_users(0, 1, 1)) == before


def test_adding_an_existing_email_is_a_conflict_under_the_email(site: Site) -> None:
    admin = logged_in(site.app, site.user(Role.ADMIN))
    taken = site.user()
    answer = _post(admin, "/editor/team", email=taken.upper(), role="admin")
    assert answer.status_code == 409, answer.text
    assert 'data-field-error="email"' in answer.text
    assert "already has an account. If they lost their password, use New password" in answer.text
    assert ISSUED.search(answer.text) is None
    # The existing account is untouched: same role, same password.
    assert login(site.app.test_client(), taken).status_code == 302


def test_role_disable_enable_and_a_new_password_each_end_the_persons_sessions(
    site: Site,
) -> None:
    admin_email = site.user(Role.ADMIN)
    admin = logged_in(site.app, admin_email)
    email = site.user()
    person, user_id = logged_in(site.app, email), _id_of(site, email)

    # Save on an unchanged role changes nothing and signs nobody out.
    answer = _post(admin, f"/editor/team/{user_id}/role", role="editor")
    assert (
        answer.status_code == 200 and f"{email} is already editor; nothing changed." in answer.text
    )
    assert person.get("/editor/scheduled").status_code == 200
    answer = _post(admin, f"/editor/team/{user_id}/role", role="ops")
    assert (
        answer.status_code == 200 and f"{email} is now ops. Signed out of 1 device." in answer.text
    )
    assert person.get("/editor/scheduled").status_code == 302  # signed out
    person = logged_in(site.app, email)
    assert person.get("/ops").status_code == 200 and person.get("/editor/new").status_code == 403

    answer = _post(admin, f"/editor/team/{user_id}/disable")
    assert f"{email} cannot log in any more. Signed out of 1 device." in answer.text
    assert person.get("/ops").status_code == 302
    assert login(site.app.test_client(), email).status_code == 401
    answer = _post(admin, f"/editor/team/{user_id}/enable")
    assert f"{email} can log in again." in answer.text
    person = logged_in(site.app, email)

    answer = _post(admin, f"/editor/team/{user_id}/password")
    found = ISSUED.search(answer.text)
    assert found is not None and answer.headers["Cache-Control"] == "no-store"
    assert f"{email} has a new password. Signed out of 1 device." in answer.text
    assert person.get("/ops").status_code == 302
    assert login(site.app.test_client(), email).status_code == 401
    assert login(site.app.test_client(), email, found.group(1)).status_code == 302

    for action in ("user.role", "user.disable", "user.enable", "user.password"):
        (row,) = _audits(site, action, email)
        assert row["actor"] == admin_email, row


def test_an_admin_cannot_change_their_own_account_here(site: Site) -> None:
    admin_email = site.user(Role.ADMIN)
    admin = logged_in(site.app, admin_email)
    user_id = _id_of(site, admin_email)
    page = admin.get("/editor/team").text
    assert f'action="/editor/team/{user_id}/' not in page  # no forms on their own row
    for path, data in (
        ("role", {"role": "editor"}),
        ("disable", {}),
        ("password", {}),
    ):
        answer = _post(admin, f"/editor/team/{user_id}/{path}", **data)
        assert answer.status_code == 403, answer.text
        assert 'id="team-error"' in answer.text and "another admin or the CLI" in answer.text
        assert ISSUED.search(answer.text) is None
    assert admin.get("/editor/team").status_code == 200  # still an admin, still signed in
    assert login(site.app.test_client(), admin_email).status_code == 302
    assert _audits(site, "user.role", admin_email) == []


def test_only_a_logged_in_admin_may_see_or_change_the_team(site: Site) -> None:
    email = site.user()
    user_id = _id_of(site, email)
    for role in (Role.EDITOR, Role.OPS):
        other = logged_in(site.app, site.user(role))
        assert other.get("/editor/team").status_code == 403
        page = other.get("/editor/account").text
        refused = other.post(f"/editor/team/{user_id}/disable", data={"csrf_token": csrf_of(page)})
        assert refused.status_code == 403
    token = site.accounts.create_token("cms", Role.ADMIN)
    bearer = {"Authorization": f"Bearer {token}"}
    client = site.app.test_client()
    assert client.get("/editor/team", headers=bearer).status_code == 403
    # A token's form post is refused (no CSRF token, and no login): nobody added or disabled.
    before = len(site.accounts.list_users(0, 1, 1))
    added = client.post(
        "/editor/team", data={"email": _new_email(), "role": "admin"}, headers=bearer
    )
    assert added.status_code in (400, 403)
    assert client.post(f"/editor/team/{user_id}/disable", headers=bearer).status_code in (400, 403)
    assert len(site.accounts.list_users(0, 1, 1)) == before
    # An admin's form without this session's CSRF token changes nothing either.
    admin = logged_in(site.app, site.user(Role.ADMIN))
    assert admin.post(f"/editor/team/{user_id}/disable", data={}).status_code == 400
    assert admin.get(f"/editor/team/{user_id}/disable").status_code == 405
    assert (
        admin.post(
            "/editor/team/999999/disable",
            data={"csrf_token": csrf_of(admin.get("/editor/team").text)},
        ).status_code
        == 404
    )
    assert login(site.app.test_client(), email).status_code == 302  # never disabled
    assert login(site.app.test_client(), email, PASSWORD).status_code == 302


def test_the_cli_lists_the_same_people(
    site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    email = site.user(Role.OPS)
    logged_in(site.app, email)
    capsys.readouterr()
    assert site.cli(monkeypatch, "user", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["EMAIL", "ROLE", "STATE", "LAST", "LOGIN", "SIGNED", "IN"]
    (row,) = [line for line in lines if line.startswith(email + " ")]
    assert row.split()[1:3] == ["ops", "active"] and row.split()[-1] == "1", row
    assert site.cli(monkeypatch, "user", "list", "--json") == 0
    people = json.loads(capsys.readouterr().out)["users"]
    (me,) = [p for p in people if p["email"] == email]
    assert me["role"] == "ops" and me["sessions"] == 1 and me["disabled"] is False
    assert me["last_login_at"].endswith("Z") and "password_hash" not in me
