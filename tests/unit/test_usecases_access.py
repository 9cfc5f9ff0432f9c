"""The Access use cases on an in-memory account store: one audit row per action, refusals summed."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from core.accounts import Principal, Role
from core.errors import ValidationError
from core.usecases.access import Access, WrongPassword
from tests.support.usecase_fakes import Clock, FakeAudit


@dataclass
class FakeAccounts(FakeAudit):
    users: dict[str, tuple[str, Role]] = field(default_factory=dict)
    refusals: list[tuple[str | None, str, str | None]] = field(default_factory=list)
    tokens: list[tuple[str, Role, str | None]] = field(default_factory=list)
    ended: list[tuple[int, str | None]] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def authenticate(self, email: str, password: str) -> Principal | None:
        found = self.users.get(email)
        if found is None or found[0] != password:
            return None
        return Principal(email, found[1], user_id=1)

    def create_user(self, email: str, password: str, role: Role) -> int:
        self.users[email] = (password, role)
        return len(self.users)

    def set_disabled(self, email: str, disabled: bool, now: float) -> int:
        return 2

    def set_role(self, email: str, role: Role, now: float) -> int:
        return 1

    def set_password(self, email: str, password: str, now: float) -> int:
        return 3

    def end_user_sessions(self, user_id: int, now: float, keep: str | None = None) -> int:
        self.ended.append((user_id, keep))
        return 2

    def change_own_password(
        self, user_id: int, current: str, new: str, now: float, keep: str
    ) -> int | None:
        self.checked.append(current)
        email = next(iter(self.users))
        if self.users[email][0] != current:
            return None
        self.users[email] = (new, self.users[email][1])
        self.ended.append((user_id, keep))
        return 1

    def create_token(self, name: str, role: Role, created_by: str | None = None) -> str:
        self.tokens.append((name, role, created_by))
        return f"nf_{len(self.tokens)}"

    def revoke_token(self, token_id: int) -> None:
        pass

    def audit_refusal(
        self, actor: str | None, action: str, address: str | None, now: float
    ) -> None:
        self.refusals.append((actor, action, address))


@pytest.fixture
def store() -> FakeAccounts:
    return FakeAccounts()


def test_a_login_is_audited_and_a_refused_one_only_summed(store: FakeAccounts) -> None:
    access = Access(store, clock=Clock())
    access.create_user("anna@news.example", "correct horse battery", "editor")
    assert access.login("anna@news.example", "wrong", "127.0.0.1") is None
    assert access.login("", "", "127.0.0.1") is None
    principal = access.login("anna@news.example", "correct horse battery", "127.0.0.1")
    assert principal is not None and principal.role is Role.EDITOR
    assert store.refusals == [
        ("anna@news.example", "login.failed", "127.0.0.1"),
        (None, "login.failed", "127.0.0.1"),
    ]
    access.logout(principal)
    assert store.actions() == ["user.create", "login", "logout"]
    assert store.rows[1][3] == {"ip": "127.0.0.1"}


def test_tokens_and_account_changes_write_one_row_each(store: FakeAccounts) -> None:
    access = Access(store, clock=Clock())
    token, role = access.create_token("cms", "editor")
    assert token == "nf_1" and role is Role.EDITOR and store.tokens == [("cms", role, "cli")]
    access.revoke_token(1)
    access.create_user("Bo@News.example", "x" * 12, "ops")
    assert access.set_disabled(" Bo@News.example ", True) == 2
    assert access.set_role("bo@news.example", "admin") == (Role.ADMIN, 1)
    assert access.set_password("bo@news.example", "y" * 12) == 3
    assert store.actions() == [
        "token.create",
        "token.revoke",
        "user.create",
        "user.disable",
        "user.role",
        "user.password",
    ]
    assert {row[2] for row in store.rows[3:]} == {"bo@news.example"}
    assert all(row[0] == "cli" for row in store.rows)


def test_an_unknown_role_changes_nothing(store: FakeAccounts) -> None:
    access = Access(store)
    with pytest.raises(ValidationError):
        access.create_token("cms", "root")
    with pytest.raises(ValidationError):
        access.create_user("c@news.example", "x" * 12, "root")
    assert store.rows == [] and store.tokens == [] and store.users == {}


def test_signing_out_elsewhere_keeps_the_asking_session_and_is_audited(
    store: FakeAccounts,
) -> None:
    access = Access(store, clock=Clock())
    me = Principal("Anna@news.example", Role.OPS, user_id=7)
    assert access.sign_out_elsewhere(me, "this-browser", "127.0.0.1") == 2
    assert store.ended == [(7, "this-browser")]
    assert store.actions() == ["user.sign_out_others"]
    assert store.rows[0][0] == "Anna@news.example" and store.rows[0][2] == "anna@news.example"
    assert store.rows[0][3] == {"sessions_ended": 2, "ip": "127.0.0.1"}
    # An API token is no login: it has no other devices, and nothing ends.
    with pytest.raises(ValidationError):
        access.sign_out_elsewhere(Principal("token:cms", Role.ADMIN, token_id=1), "x", None)
    assert store.ended == [(7, "this-browser")] and len(store.rows) == 1


def test_an_own_password_change_checks_the_fields_before_the_password(
    store: FakeAccounts,
) -> None:
    access = Access(store, clock=Clock())
    access.create_user("anna@news.example", "correct horse battery", "editor")
    anna = Principal("anna@news.example", Role.EDITOR, user_id=1)
    new = "staple gun river lamp"
    bad = [
        ("", new, new, "current_password"),
        ("correct horse battery", new, new + "!", "new_password_repeat"),
        ("correct horse battery", "too short", "too short", "new_password"),
        ("correct horse battery", "correct horse battery", "correct horse battery", "new_password"),
    ]
    for current, typed, repeat, name in bad:
        with pytest.raises(ValidationError) as refused:
            access.change_own_password(anna, "this-session", current, typed, repeat, "127.0.0.9")
        assert refused.value.field == name and refused.value.status == 400
    # None of them reached the store: a field error costs no password check and no budget.
    assert store.checked == [] and store.refusals == []

    with pytest.raises(WrongPassword) as wrong:
        access.change_own_password(anna, "this-session", "guess", new, new, "127.0.0.9")
    assert wrong.value.status == 403 and wrong.value.field == "current_password"
    assert store.refusals == [("anna@news.example", "password.failed", "127.0.0.9")]

    ended = access.change_own_password(
        anna, "this-session", "correct horse battery", new, new, "127.0.0.9"
    )
    assert ended == 1 and store.ended == [(1, "this-session")]
    assert store.actions()[-1] == "user.password"
    assert store.rows[-1][3] == {"sessions_ended": 1, "ip": "127.0.0.9", "own": True}


def test_an_api_token_has_no_password_to_change(store: FakeAccounts) -> None:
    token = Principal("cms", Role.ADMIN, token_id=4)
    with pytest.raises(ValidationError) as refused:
        Access(store).change_own_password(token, "s", "a" * 12, "b" * 12, "b" * 12, None)
    assert refused.value.field == "session" and store.checked == []
